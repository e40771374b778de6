"""``TableauMethod``: a Runge-Kutta method driven by its Butcher tableau; its stability function
R(z) = P(z) / Q(z) is computed exactly from the tableau (``solvers.stability``)."""
from __future__ import annotations

import numpy as np

from solvers.methods.base import Method
from solvers.tableaus import ButcherTableau


class TableauMethod(Method):
    """Explicit, embedded or implicit Runge-Kutta: the one-step map of dh/dt = J h is R(dt J)."""

    def __init__(self, name: str, tableau: ButcherTableau) -> None:
        super().__init__(name, tableau.order, tableau)

    def amplification(self, z: np.ndarray) -> np.ndarray:
        from solvers.stability import stability_function
        return np.abs(np.asarray(stability_function(self.tableau)(np.asarray(z, dtype=complex))))

    def outside(self, z: np.ndarray) -> np.ndarray:
        """|P(z)| > |Q(z)|: a pole of R counts as outside without a division by zero."""
        from solvers.stability import in_stability_region
        return ~np.asarray(in_stability_region(self.tableau, z), dtype=bool)

    @property
    def criterion(self) -> str:
        return "|R(z)| <= 1"
