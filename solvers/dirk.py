"""``DirkPair``: an embedded diagonally implicit Runge-Kutta pair (ESDIRK: kvaerno3, kvaerno4, trbdf2) for the
adaptive loop, its stage equations solved one at a time by simplified Newton.

With a lower-triangular tableau whose diagonal is 0 (an explicit stage) or one value gamma, stage i solves

    k_i = f(t + c_i dt, Z_i),   Z_i = y + dt sum_{j<i} a_ij k_j + dt gamma k_i

(Hairer & Wanner, *Solving ODEs II*, section IV.6, written for k_i). Simplified Newton (section IV.8):

    (I - dt gamma J) delta = f(t + c_i dt, Z_i) - k_i,   k_i <- k_i + delta,

with one Jacobian J = df/dy for all stages, taken at the start of an attempt and kept for later steps while
Newton converges fast, and one LU factorisation of I - dt gamma J for all stages, redone only when dt or J
changes. Each stage starts from the previous stage's k. Stopping rule (eqs. IV.8.10-8.13, as in scipy's Radau):
with ||.|| the error norm of the step-size controller (1 = the tolerance; scaled by atol + rtol |y| at the
step's start), the contraction rate
theta = ||dt gamma delta_m|| / ||dt gamma delta_{m-1}|| and the converged iterate is accepted once
theta / (1 - theta) ||dt gamma delta_m|| <= kappa, kappa = max(10 eps / rtol, min(0.03, sqrt(rtol))); Newton
fails when theta >= 1, when the remaining iterations cannot reach kappa at that rate, after ``NEWTON_ITERS``
iterations, or on non-finite values. A failure with an old Jacobian retries the attempt with a fresh one; a
failure with a fresh Jacobian hands the step back to the loop, which halves it; after ``CONTINUE_AFTER`` such
attempts in a row, the failing stage is solved by full Newton with the continuation in the step size of the
fixed-step implicit methods (``solvers.implicit``: a Jacobian per iteration, for fields such as tanh(C h + u)
whose Jacobian changes a lot between y and the stage value) before the step is handed back. The continuation
costs tens of Jacobians per stage, a halved step a few simplified iterations: halving comes first (on a
saturating tanh field with gamma 1e5 the continuation took 10 s per stage, the halvings 4 s for the whole
solve). After an attempt whose Newton
iterations contracted slowly (theta > ``REFRESH_RATE`` in a stage that took more than 2 iterations), the next
attempt takes a fresh Jacobian.

The state is (B, n) with independent rows when ``rows`` (J is (B, n, n), block by block), else flattened to
one row (any f). J comes from ``f.jacobian`` when f has one, else from ``torch.func.jacrev``.

Gradients: the iterations run without autograd. With autograd on, each stage is rebuilt at its solution
k_i* by the implicit function theorem (as ``solvers.implicit``): G = f(t_i, base_i + dt gamma k_i*) is
evaluated with a graph and the backward solves (I - dt gamma J(Z_i*))^T v = g with J at the solution, one
Jacobian and LU per stage and step, so gradients are exact for the accepted steps whatever Jacobian the
iterations used.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from solvers.controller import StepController
from solvers.errors import StepFailure
from solvers.explicit import Field, Time, weighted_sum
from solvers.implicit import (NewtonCounter, NewtonOptions, _detach, _factor, _float, _ImplicitStages, _lu_solve,
                              _solve_stages, _value_and_jacobian)
from solvers.pytree import Norm, rms_norm
from solvers.stiffness import StiffnessDetector
from solvers.tableaus import BACKWARD_EULER, ButcherTableau

NEWTON_ITERS = 7
"""Simplified Newton iterations per stage before the attempt fails (scipy's Radau takes 6, diffrax 10)."""
CONTINUE_AFTER = 12
"""Attempts in a row whose stages failed with a fresh Jacobian (each halving the step, to 1/4096 of the first)
before a failing stage is solved by the continuation instead. Simplified Newton fails where the field's
Jacobian at the stage solution differs from J at (t, y) by more than J itself (a tanh(C h + u) field with
|C| ~ 1e5 whose input jumps: tanh' moves from ~0.3 to ~1); a few halvings bring the step to where it
converges, at a fraction of one continuation's cost (ten halvings after each of 19 input jumps: 4 s for the
whole solve; with the continuation after three, 70 s)."""
REFRESH_RATE = 1e-3
"""A contraction rate above this (in a stage that needed more than 2 iterations) refreshes J for the next
attempt (scipy's Radau uses the same)."""


def singly_diagonal(tableau: ButcherTableau) -> float:
    """The common non-zero diagonal gamma of a diagonally implicit tableau; ``ValueError`` otherwise."""
    diagonal = {tableau.A[i][i] for i in range(tableau.stages)} - {0.0}
    if not tableau.is_diagonally_implicit or len(diagonal) != 1 or tableau.b_err is None:
        raise ValueError(f"tableau {tableau.name!r} is not a singly diagonally implicit pair (A lower triangular, "
                         f"one non-zero diagonal value, b_err given)")
    return diagonal.pop()


class DirkPair:
    """The attempts of one adaptive solve with an ESDIRK/SDIRK pair; keeps J and its LU between attempts."""

    def __init__(self, tableau: ButcherTableau, controller: StepController, norm: Norm = rms_norm,
                 rows: bool = False) -> None:
        self.tableau, self.gamma = tableau, singly_diagonal(tableau)
        self.controller, self.norm, self.rows = controller, norm, rows
        self.reuse_last = tableau.is_stiffly_accurate
        self.err_weights = [b - be for b, be in zip(tableau.b, tableau.b_err)]
        self.implicit = [tableau.A[i][i] != 0.0 for i in range(tableau.stages)]
        self.counter = NewtonCounter()
        self.J: Optional[Tensor] = None
        self.fresh, self.refresh = False, True
        self.lu: Optional[tuple[Tensor, Tensor]] = None
        self.lu_step = math.nan
        self.failed = 0  # attempts in a row whose stages failed with a fresh Jacobian

    def detector(self, interval: Optional[int]) -> Optional[StiffnessDetector]:
        """None: an L-stable pair has no stability limit to detect."""
        return None

    def counts(self) -> dict[str, int]:
        return dict(n_newton=self.counter.iterations, n_jacobians=self.counter.jacobians,
                    n_lu=self.counter.factorisations, n_continued=self.counter.continued,
                    n_functional=self.counter.functional)

    def error(self, dt: Time, ks: list[Tensor]) -> Tensor:
        return dt * weighted_sum(self.err_weights, ks)

    def stages(self, f: Field, t: Time, y: Tensor, dt: Time, k0: Optional[Tensor]
               ) -> Optional[tuple[Tensor, list[Tensor]]]:
        """(y1, [k_1..k_s]) of the step dt from (t, y), or None when Newton fails even with a fresh J."""
        shape = y.shape
        if self.rows:
            g, Y = f, y
        else:
            g, Y = (lambda t_, r: f(t_, r.view(shape)).reshape(1, -1)), y.reshape(1, -1)
        k1 = (f(t, y) if k0 is None else k0).reshape(Y.shape)
        with torch.no_grad():
            ks = self._solve(g, _detach(t), Y.detach(), _detach(dt), k1.detach())
        self.failed = self.failed + 1 if ks is None else 0
        if ks is None:
            return None
        if torch.is_grad_enabled():
            ks = self._with_gradients(g, t, Y, dt, k1, ks)
        else:
            ks[0] = k1
        y1 = Y + dt * weighted_sum(self.tableau.b, ks)
        return y1.view(shape), [k.view(shape) for k in ks]

    # ------------------------------------------------------------------------------------------ Newton
    def _solve(self, g: Field, t: Time, Y: Tensor, dt: Time, k1: Tensor) -> Optional[list[Tensor]]:
        self.fresh = False  # J was taken at an earlier attempt's (t, y) unless refreshed below
        for _ in range(2):
            if self.J is None or self.refresh:
                self.J = _value_and_jacobian(g, getattr(g, "jacobian", None), t, Y)[1]
                self.counter.jacobians += 1
                self.fresh, self.refresh, self.lu_step = True, False, math.nan
            ks = self._stages(g, t, Y, dt, k1)
            if ks is not None or self.fresh:
                return ks
            self.refresh = True  # failed with an old Jacobian: once more with a fresh one
        return None

    def _stages(self, g: Field, t: Time, Y: Tensor, dt: Time, k1: Tensor) -> Optional[list[Tensor]]:
        h = dt * self.gamma
        if _float(h) != self.lu_step:
            try:
                self.lu = _factor(torch.tensor([[self.gamma]], dtype=Y.dtype, device=Y.device), [self.J], dt,
                                  torch.eye(Y.shape[1], dtype=Y.dtype, device=Y.device), self.tableau,
                                  f"at t={_float(t):g}, dt={_float(dt):g}", t)
            except StepFailure:
                self.lu_step = math.nan
                return None
            self.counter.factorisations += 1
            self.lu_step = _float(h)
        eps = torch.finfo(Y.dtype).eps
        kappa = max(10.0 * eps / self.controller.rtol, min(0.03, math.sqrt(self.controller.rtol)))
        scale = self.controller.atol + self.controller.rtol * Y.abs()

        def solve(i: int, ti: Time, base: Tensor, ks: list[Tensor]) -> Optional[Tensor]:
            k = self._newton(g, ti, scale, base, h, ks[-1], kappa)
            if k is None and self.fresh and self.failed >= CONTINUE_AFTER:
                return self._continued(g, ti, base, h)
            return k

        return self._walk(g, t, Y, dt, k1, solve)

    def _walk(self, g: Field, t: Time, Y: Tensor, dt: Time, k1: Tensor,
              solve: Callable[[int, Time, Tensor, list[Tensor]], Optional[Tensor]]) -> Optional[list[Tensor]]:
        """The stages in order from k_1: an explicit one evaluated at its stage value, an implicit one
        ``solve(i, t_i, base_i, ks)`` with base_i = y + dt sum_{j<i} a_ij k_j; None as soon as a solve fails."""
        ks = [k1]
        for i, (ci, row) in enumerate(zip(self.tableau.c, self.tableau.A)):
            if i == 0:
                continue
            incr = weighted_sum(row[:i], ks)
            base = Y if incr is None else Y + dt * incr
            ti = t + ci * dt
            k = solve(i, ti, base, ks) if self.implicit[i] else g(ti, base)
            if k is None:
                return None
            ks.append(k)
        return ks

    def _newton(self, g: Field, ti: Time, scale: Tensor, base: Tensor, h: Time, k: Tensor, kappa: float
                ) -> Optional[Tensor]:
        """Simplified Newton for one stage from k; sizes in the error norm with the step's ``scale``
        (atol + rtol |y|); None when it fails (see the module docstring)."""
        previous = None
        for iteration in range(1, NEWTON_ITERS + 1):
            Z = base + h * k
            delta = _lu_solve(*self.lu, (g(ti, Z) - k).unsqueeze(-1)).squeeze(-1)
            k = k + delta
            self.counter.iterations += 1
            size = float(self.norm(h * delta / scale))
            if not math.isfinite(size):
                return None
            if size == 0.0:
                return k
            if previous is not None:
                rate = size / previous
                if rate >= 1.0 or rate ** (NEWTON_ITERS - iteration) / (1.0 - rate) * size > kappa:
                    return None
                if rate / (1.0 - rate) * size <= kappa:
                    if iteration > 2 and rate > REFRESH_RATE:
                        self.refresh = True
                    return k
            previous = size
        return None

    def _continued(self, g: Field, ti: Time, base: Tensor, h: Time) -> Optional[Tensor]:
        """Stage i as the backward Euler step of size dt gamma from ``base`` at time t_i, solved by full Newton
        with the continuation in the step size of the fixed-step implicit methods (``solvers.implicit``); None
        when that fails too."""
        one = torch.ones(1, 1, dtype=base.dtype, device=base.device)
        try:
            k, _, _ = _solve_stages(g, ti, base, h, BACKWARD_EULER, one, [ti], NewtonOptions(), None, self.counter)
        except StepFailure:
            return None
        self.refresh = True  # J at (t, y) was far off: take a fresh one next attempt
        return k[:, 0]

    # ---------------------------------------------------------------------------------------- gradients
    def _with_gradients(self, g: Field, t: Time, Y: Tensor, dt: Time, k1: Tensor, solved: list[Tensor]
                        ) -> list[Tensor]:
        """The stages again, each tied to y, t, dt and f's parameters by the implicit function theorem."""
        eye = torch.eye(Y.shape[1], dtype=Y.dtype, device=Y.device)
        gamma = torch.tensor([[self.gamma]], dtype=Y.dtype, device=Y.device)

        def tie(i: int, ti: Time, base: Tensor, ks: list[Tensor]) -> Tensor:
            G = g(ti, base + dt * self.gamma * solved[i])
            if not G.requires_grad:
                return solved[i]
            with torch.no_grad():
                jac = _value_and_jacobian(g, getattr(g, "jacobian", None), _detach(ti),
                                          (base + dt * self.gamma * solved[i]).detach())[1]
                self.counter.jacobians += 1
                lu = _factor(gamma, [jac], _detach(dt), eye, self.tableau, "at the solution", _detach(t))
                self.counter.factorisations += 1
            return _ImplicitStages.apply(G, solved[i], *lu)

        return self._walk(g, t, Y, dt, k1, tie)

