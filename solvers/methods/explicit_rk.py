"""``ExplicitRK``: an explicit Runge-Kutta method on a grid (euler, midpoint, rk4, ...)."""
from __future__ import annotations

import functools
from typing import Optional, Sequence

from solvers.explicit import rk_step
from solvers.implicit import NewtonOptions
from solvers.methods.base import Stepper
from solvers.methods.tableau_method import TableauMethod
from solvers.tableaus import ButcherTableau


class ExplicitRK(TableauMethod):
    kind = "fixed"

    @property
    def explicit_tableau(self) -> Optional[ButcherTableau]:
        return self.tableau

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        self.check_options(partition=partition, newton=newton)
        return Stepper(functools.partial(rk_step, tableau=self.tableau))
