"""``AdaptiveDIRK``: an embedded diagonally implicit pair (kvaerno3, kvaerno4, trbdf2) run by the adaptive loop
(``solvers.adaptive``) with its stages solved by simplified Newton (``solvers.dirk``): the adaptive method for
stiff problems, where explicit pairs stop with ``StiffnessError``."""
from __future__ import annotations

import numpy as np

from solvers.controller import StepController
from solvers.dirk import DirkPair
from solvers.methods.implicit_rk import ImplicitRK
from solvers.pytree import Norm, rms_norm

L_STABLE_AT = -1e8
"""|R(z)| at this z stands in for |R(-inf)| in the L-stability test."""


class AdaptiveDIRK(ImplicitRK):
    """Its fixed ``stepper`` (the propagated tableau at a given size, e.g. for step maps) is the implicit
    Runge-Kutta step of ``ImplicitRK``; solves use ``pair``."""

    kind = "adaptive_implicit"
    adaptive = True
    options = ("batch_rows",)
    callbacks = ("callback_step", "callback_accept_step", "callback_reject_step")

    @property
    def properties(self) -> tuple[str, ...]:
        """A-stable, and L-stable when also |R(z)| -> 0 as z -> -inf."""
        stable = super().properties
        damped = float(self.amplification(np.array([L_STABLE_AT]))[0]) < 1e-6
        return stable + (("L-stable",) if "A-stable" in stable and damped else ())

    def pair(self, controller: StepController, norm: Norm = rms_norm, rows: bool = False) -> DirkPair:
        return DirkPair(self.tableau, controller, norm, rows)
