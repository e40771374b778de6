"""Adaptive solves of a sequence: one ``solvers.odeint`` call in interval time (``RescaledRHS``: on every
sample, interval k of its own grid becomes [k, k + 1]), the integers declared as jumps of the held input, so
every step lands on every sample's observation times, none straddles a sample boundary, and every stage
sees its own interval's sample. The error control is over the whole batch, as for a shared grid; an implicit pair
solves each sample's stage equations as its own row (``batch_rows``). With ``adjoint`` the solve goes to torchdiffeq's ``odeint_adjoint`` (its ``jump_t``), and the
right-hand side projects the raw inputs itself so that the adjoint reaches the input projection's
parameters."""
from __future__ import annotations

import torch

import solvers

from ..fields.base import VectorField
from .base import Integrator, Settings, Solution
from .grid import Grid
from .rhs import RescaledRHS


class AdaptiveSolve(Integrator):
    """Embedded Runge-Kutta pairs with error control, explicit (``solvers.available("adaptive")``) or diagonally
    implicit (``solvers.available("adaptive_implicit")``)."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return method.adaptive

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        rhs = RescaledRHS(field, x, grid, settings.interpolation, project_per_call=settings.adjoint)
        s = torch.arange(grid.length + 1, dtype=h0.dtype, device=h0.device)
        ys, stats = solvers.odeint(rhs, h0, s, method=self.method.name, rtol=settings.rtol, atol=settings.atol,
                                   adjoint=settings.adjoint, return_stats=True, check_finite=False,
                                   max_steps=settings.max_steps, jumps=s[1:-1],
                                   **self.method.select(batch_rows=not settings.adjoint))
        return Solution(ys[1:], ys[-1], stats)
