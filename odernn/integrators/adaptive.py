"""Adaptive solves of a sequence: one ``solvers.odeint`` call over the grid, the grid times declared as
jumps of the held input, so no step straddles a sample boundary and every stage sees its own interval's
sample. With ``adjoint`` the solve goes to torchdiffeq's ``odeint_adjoint`` (its ``jump_t``), and the
right-hand side projects the raw inputs itself so that the adjoint reaches the input projection's
parameters."""
from __future__ import annotations

import solvers

from ..fields.base import VectorField
from .base import Integrator, Settings, Solution
from .rhs import SequenceRHS


class AdaptiveSolve(Integrator):
    """Embedded Runge-Kutta pairs with error control (``solvers.available("adaptive")``)."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return method.kind == "adaptive"

    def integrate(self, field: VectorField, h0, x, settings: Settings) -> Solution:
        times = settings.grid(x.shape[0], x)
        rhs = SequenceRHS(field, x, times, settings.interpolation, project_per_call=settings.adjoint)
        ys, stats = solvers.odeint(rhs, h0, times, method=self.method.name, rtol=settings.rtol, atol=settings.atol,
                                   adjoint=settings.adjoint, return_stats=True, check_finite=False,
                                   max_steps=settings.max_steps, jumps=times[1:-1])
        return Solution(ys[1:], ys[-1], stats)
