"""Failures of a solve: one step that could not be completed, a problem too stiff for an explicit method."""
from __future__ import annotations

import copy


class StepFailure(RuntimeError):
    """A step could not be completed (e.g. Newton's method did not converge for an implicit stage system).

    The stepper raises it naming the time; the loop that drives the steps calls :meth:`at_step` to add which
    step of how many it was.
    """

    def at_step(self, step: int, total: int) -> "StepFailure":
        """A copy of this error (same class and attributes) whose message starts with 'step k of n: '."""
        failure = copy.copy(self)
        failure.args = (f"step {step} of {total}: {self.args[0] if self.args else ''}", *self.args[1:])
        return failure


class StiffnessError(RuntimeError):
    """An explicit adaptive solve detected that its step size is limited by stability, not accuracy.

    ``t`` is the time reached, ``h`` the step size there and ``h_lambda`` the last estimate of h * |lambda|
    (``solvers.stiffness``).
    """

    def __init__(self, message: str, t: float = float("nan"), h: float = float("nan"),
                 h_lambda: float = float("nan")) -> None:
        super().__init__(message)
        self.t, self.h, self.h_lambda = t, h, h_lambda
