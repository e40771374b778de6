"""The generic scan: the one fixed-step loop of ``solvers`` driving any non-adaptive method on any field.

Explicit Runge-Kutta (any tableau), implicit Runge-Kutta (Newton on the stage system, gradients by the
implicit function theorem; a field with a ``TanhForm`` supplies its Jacobian in closed form) and
partitioned Euler over the field's blocks all run here: ``solvers.make_stepper`` turns the method into a
step and ``solvers.explicit.integrate_fixed`` takes ceil(width / (step_size / substeps)) of them on every
grid interval of every sample (``substeps`` on ODERNN's uniform grid), asking ``SequenceRHS`` for the
field on that interval (its sample). Any field works; fields with a ``TanhForm`` usually take a fused scan
instead (``odernn.integrators.fused``), which computes the same numbers.
"""
from __future__ import annotations

from dataclasses import replace

import solvers
from solvers.explicit import integrate_fixed
from solvers.steppers import make_stepper

from ..fields.base import VectorField
from .base import Integrator, Settings, Solution
from .grid import Grid
from .rhs import SequenceRHS


class SteppedScan(Integrator):
    """Every non-adaptive method on every field, through ``solvers``' fixed-step loop."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return method.kind not in ("adaptive", "reversible")  # a reversible step of 0 is not the identity

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        times = grid.times
        rhs = SequenceRHS(field, x, grid, settings.interpolation)
        partitioned = self.method.kind == "partitioned"
        stepper = make_stepper(self.method, rows=True, state_size=field.state_size,
                               partition=[b.stop - b.start for b in field.blocks] if partitioned else None,
                               newton=settings.newton if self.method.kind == "implicit" else None)
        ys, stats = integrate_fixed(rhs, h0, times, stepper, settings.step_size / settings.substeps,
                                    check_finite=False)
        return Solution(ys[1:], ys[-1], replace(stats, nfe=rhs.nfe, **stepper.counts()))
