"""Fused scans with hand-written BPTT (``odernn.fused``, ``odernn.fused_oscillator``) for fields with a
``TanhForm`` or one of the family's forms (``OscillatorForm``, ``IndependentOscillatorForm``, ``LEMForm``,
``LinearTanhForm``).

They compute exactly what ``SteppedScan`` computes for the same method (tested equal to 1e-10 in float64,
values and gradients), with the input projection, every stage and the backward pass fused:
- ``FusedRKScan``: any explicit tableau, plain (tanh) or gated (eq. 13) activation, every stage seeing the
  held sample of its interval;
- ``FusedGaussSeidelScan``: partitioned (Gauss-Seidel) Euler over the field's blocks;
- ``FusedOscillatorScan``: partitioned (symplectic) Euler over (z, y) of coupled damped oscillators (coRNN),
  and IMEX Euler with their damping implicit (the coRNN paper's eq. 3);
- ``FusedIndependentOscillatorScan``: the same over stacked layers of independent oscillators (UnICORNN);
- ``FusedLEMScan``: partitioned Euler over LEM's (z, y);
- ``FusedLinearTanhEulerScan``: forward Euler on h L + tanh(h W + U x + b) (Lipschitz RNN);
- ``FusedImplicitScan``: any fixed-step implicit tableau on tanh(C h + V x + b), the stages by functional
  iteration (``odernn.fused_implicit``); a sequence where it does not contract goes to the stepped scan,
  whose Newton's method takes over.
Their backward is differentiable once; ``ODERNN(fast_path=False)`` selects the generic scan instead.
"""
from __future__ import annotations

import torch

import solvers

from ..fields.base import VectorField
from ..fused import tanh_gauss_seidel_scan, tanh_rk_scan
from ..fused_implicit import NotContracting, tanh_implicit_scan
from ..fused_oscillator import oscillator_scan
from ..fused_lem import lem_scan
from ..fused_lipschitz import linear_tanh_euler_scan
from ..fused_unicornn import independent_oscillator_scan
from .base import Integrator, Settings, Solution, fixed_stats, held_input_everywhere
from .grid import Grid
from .stepped import SteppedScan


class _Fused(Integrator):
    """A fused scan needs one step for the whole batch: other grids (the caller's times) go to the stepped
    scan of the same method, which computes the same numbers."""

    def __init__(self, method: solvers.Method) -> None:
        super().__init__(method)
        self.general = SteppedScan(method)


class FusedRKScan(_Fused):
    """Explicit Runge-Kutta on act(C h + V x + b)."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return (method.explicit_tableau is not None and field.tanh_form() is not None
                and held_input_everywhere(method, settings))

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        if grid.step is None:
            return self.general.integrate(field, h0, x, grid, settings)
        form = field.tanh_form()
        tableau, n = self.method.explicit_tableau, settings.substeps
        states, last = tanh_rk_scan(h0, x, form.weight, form.bias, form.matrix, grid.step / n, tableau,
                                    n, gated=form.gated)
        return Solution(states, last, fixed_stats(x.shape[0] * n, tableau.stages))


class FusedImplicitScan(_Fused):
    """A fixed-step implicit tableau on tanh(C h + V x + b), its stages by functional iteration; where that does
    not contract, the stepped scan of the same method (functional iteration, then Newton's method)."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        form = field.tanh_form()
        return (method.implicit_tableau is not None and not method.adaptive and form is not None
                and not form.gated and settings.newton.functional and held_input_everywhere(method, settings))

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        if grid.step is None:
            return self.general.integrate(field, h0, x, grid, settings)
        form, tableau, n = field.tanh_form(), self.method.implicit_tableau, settings.substeps
        counts: list[int] = []
        try:
            states, last = tanh_implicit_scan(h0, x, form.weight, form.bias, form.matrix, grid.step / n, tableau,
                                              n, settings.newton.stage_tolerance(h0.dtype), counts)
        except NotContracting:
            return self.general.integrate(field, h0, x, grid, settings)
        steps, iterations = x.shape[0] * n, sum(counts)
        stats = fixed_stats(steps, 1) + solvers.SolveStats(nfe=iterations * tableau.stages,
                                                           n_functional=iterations)
        return Solution(states, last, stats)


class FusedGaussSeidelScan(_Fused):
    """Partitioned Euler on tanh(C h + V x + b) over the field's blocks."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        form = field.tanh_form()
        return (method.partitioned and form is not None and not form.gated
                and settings.interpolation == "hold")

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        if grid.step is None:
            return self.general.integrate(field, h0, x, grid, settings)
        form, n = field.tanh_form(), settings.substeps
        sizes = [block.stop - block.start for block in field.blocks]
        states, last = tanh_gauss_seidel_scan(h0, x, form.weight, form.bias, form.matrix, grid.step / n,
                                              sizes, n)
        return Solution(states, last, fixed_stats(x.shape[0] * n, 1))


class _FamilyScan(_Fused):
    """A family field's fused scan of one evaluation per step: subclasses give ``scan(field, h0, x, dt, n)``."""

    def scan(self, field: VectorField, h0, x, dt: float, substeps: int):
        raise NotImplementedError

    def integrate(self, field: VectorField, h0, x, grid: Grid, settings: Settings) -> Solution:
        if grid.step is None:
            return self.general.integrate(field, h0, x, grid, settings)
        n = settings.substeps
        states, last = self.scan(field, h0, x, grid.step / n, n)
        return Solution(states, last, fixed_stats(x.shape[0] * n, 1))


class FusedOscillatorScan(_FamilyScan):
    """Partitioned (symplectic) Euler over (z, y) of z' = tanh(C [z, y] + V x + b) - gamma y - epsilon z, y' = z:
    the coRNN authors' update; and IMEX Euler with the form's linear part (the damping and y' = z) implicit:
    the coRNN paper's eq. 3."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        form = field.oscillator_form()
        if form is None or settings.interpolation != "hold":
            return False
        linear = field.linear_part
        return method.partitioned or (method.imex_pair == solvers.IMEX_EULER and linear is not None
                                      and torch.equal(linear, form.linear_part()))

    def scan(self, field: VectorField, h0, x, dt: float, substeps: int):
        form = field.oscillator_form()
        return oscillator_scan(h0, x, form.weight, form.bias, form.coupling, form.gamma, form.epsilon, dt, substeps,
                               implicit_damping=self.method.imex_pair is not None)


class FusedIndependentOscillatorScan(_FamilyScan):
    """Partitioned (symplectic) Euler over [z_1, y_1, ..., z_L, y_L] of stacked independent oscillators: the
    UnICORNN authors' update, layer by layer."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return (method.partitioned and field.independent_oscillator_form() is not None
                and settings.interpolation == "hold")

    def scan(self, field: VectorField, h0, x, dt: float, substeps: int):
        form = field.independent_oscillator_form()
        return independent_oscillator_scan(h0, x, form.weights, form.biases, form.w, form.c, form.alpha, dt,
                                           substeps)


class FusedLEMScan(_FamilyScan):
    """Partitioned Euler over LEM's (z, y): the LEM authors' update."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return method.partitioned and field.lem_form() is not None and settings.interpolation == "hold"

    def scan(self, field: VectorField, h0, x, dt: float, substeps: int):
        form = field.lem_form()
        return lem_scan(h0, x, form.weight, form.bias, form.w_h, form.b_h, form.w_z, form.b_z, dt, substeps)


class FusedLinearTanhEulerScan(_FamilyScan):
    """Forward Euler on h L + tanh(h W + U x + b): the Lipschitz RNN authors' update."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        tableau = method.explicit_tableau
        return (tableau is not None and tableau.stages == 1 and field.linear_tanh_form() is not None
                and held_input_everywhere(method, settings))

    def scan(self, field: VectorField, h0, x, dt: float, substeps: int):
        form = field.linear_tanh_form()
        return linear_tanh_euler_scan(h0, x, form.weight, form.bias, form.linear, form.matrix, dt, substeps)
