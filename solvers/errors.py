"""Failures of one step, re-raised by the loop that drives the steps with the step's position."""
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
