"""``EmbeddedRK``: an embedded Runge-Kutta pair (dopri5, bosh3, adaptive_heun) run by the adaptive loop
(``solvers.adaptive``) with a step-size controller; its stability verdict is for the nominal step."""
from __future__ import annotations

import functools
from typing import Optional, Sequence

from solvers.controller import StepController
from solvers.explicit import rk_step
from solvers.implicit import NewtonOptions
from solvers.methods.base import Stepper
from solvers.methods.tableau_method import TableauMethod
from solvers.pair import ExplicitPair
from solvers.pytree import Norm, rms_norm


class EmbeddedRK(TableauMethod):
    kind = "adaptive"
    adaptive = True
    callbacks = ("callback_step", "callback_accept_step", "callback_reject_step")

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        """The step of its propagating tableau at a given size, without the controller (whose steps depend
        on the data): what a fixed-step analysis of the method (its step map) uses. Solves use the adaptive
        loop."""
        self.check_options(partition=partition, newton=newton)
        return Stepper(functools.partial(rk_step, tableau=self.tableau))

    def pair(self, controller: StepController, norm: Norm = rms_norm, rows: bool = False) -> ExplicitPair:
        return ExplicitPair(self.tableau)
