"""The generic scan: the one fixed-step loop of ``solvers`` driving any non-adaptive method on any field.

Explicit Runge-Kutta (any tableau), implicit Runge-Kutta (Newton on the stage system, gradients by the
implicit function theorem; a field with a ``TanhForm`` supplies its Jacobian in closed form) and
partitioned Euler over the field's blocks all run here: the method's own ``stepper`` is the step and
``solvers.integrate_fixed`` takes ceil(width / (step_size / substeps)) of them on every
grid interval of every sample (``substeps`` on ODERNN's uniform grid), asking ``SequenceRHS`` for the
field on that interval (its sample). Any field works; fields with a ``TanhForm`` usually take a fused scan
instead (``odernn.integrators.fused``), which computes the same numbers.
"""
from __future__ import annotations

from dataclasses import replace

import solvers

from ..fields.base import VectorField
from .base import Integrator, Settings, Solution
from .grid import Grid
from .rhs import SequenceRHS


class SteppedScan(Integrator):
    """Every non-adaptive method on every field, through ``solvers``' fixed-step loop."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return not method.adaptive and not method.reversible  # a reversible step of 0 is not the identity

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        times = grid.times
        rhs = SequenceRHS(field, x, grid, settings.interpolation)
        stepper = self.method.stepper(rows=True, state_size=field.state_size, **self.method.select(
            partition=[b.stop - b.start for b in field.blocks], newton=settings.newton))
        ys, stats = solvers.integrate_fixed(rhs, h0, times, stepper, settings.step_size / settings.substeps,
                                    check_finite=False)
        return Solution(ys[1:], ys[-1], replace(stats, nfe=rhs.nfe, **stepper.counts()))
