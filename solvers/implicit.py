"""One implicit Runge-Kutta step: the stage equations solved by Newton's method, gradients by the implicit
function theorem.

For a tableau (c, A, b) with s stages the stage derivatives K = (k_1, ..., k_s) solve

    k_i = f(t + c_i dt, y + dt * sum_j a_ij k_j),   i = 1..s,          i.e.  K = G(K),
    y_{n+1} = y_n + dt * sum_i b_i k_i

(Hairer, Wanner, *Solving ODEs II*, section IV.8, written for the k_i instead of z_i = dt sum_j a_ij k_j).
Newton's method on F(K) = K - G(K) uses the Jacobian

    dF/dK = I - dt * [a_ij J_i]_{ij},   J_i = df/dy (t + c_i dt, Y_i),   Y_i = y + dt sum_j a_ij k_j,

re-evaluated at the current stage values in every iteration (full Newton, section IV.8). The state is a
batch y of shape (B, n) whose rows are independent samples, so the Jacobian is (B, s n, s n) and one batched
LU factorisation per iteration solves all rows. Iterations start from k_i = f(t, y) for every stage.

Gradients: the converged K* is a function of y, t, dt and whatever tensors f closes over through K* =
G(K*). By the implicit function theorem dK*/dtheta = (I - dG/dK)^{-1} dG/dtheta, so a vector-Jacobian product
with an output gradient g is one transposed solve (I - dG/dK)^T v = g (reusing the LU factors of the last
Newton iteration) followed by backpropagation of v through one evaluation of G(K*) with K* held constant.
The Newton iterations themselves are not recorded by autograd.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from solvers.errors import StepFailure
from solvers.explicit import weighted_sum
from solvers.tableaus import ButcherTableau

Time = Union[float, Tensor]
Field = Callable[[Time, Tensor], Tensor]
Jacobian = Callable[[Time, Tensor], Tensor]


@dataclass(frozen=True)
class NewtonOptions:
    """Stopping rule of Newton's method for the stage equations.

    Iterations stop once the max-norm of the Newton update is at most ``tol * (1 + max|K|)`` (``tol`` is
    raised to ``10 * eps`` of the state's dtype when smaller, since no update can get below rounding). After
    ``max_iters`` iterations without that, the step fails with ``NewtonError``. ``simplified``: the Jacobian
    df/dy is evaluated once per step, at (t, y), for every stage and iteration, and the matrix is factorised
    once (simplified Newton, Hairer & Wanner II, eq. IV.8.4): linear instead of quadratic convergence, but no
    Jacobian per iteration, the expensive part when autograd forms it. Gradients stay exact: with autograd on,
    the implicit-function backward factorises the matrix at the solution. ``functional``: first try the
    functional iteration K <- G(K) (no Jacobian, no factorisation; it converges in the non-stiff regime, where
    dt times f's Lipschitz constant is small) and use Newton's method only where it does not contract.
    """

    tol: float = 1e-10
    max_iters: int = 20
    simplified: bool = False
    functional: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or not (
                math.isfinite(self.tol) and self.tol > 0.0):
            raise ValueError(f"NewtonOptions.tol must be a finite number > 0, got {self.tol!r}")
        if isinstance(self.max_iters, bool) or not isinstance(self.max_iters, int) or self.max_iters < 1:
            raise ValueError(f"NewtonOptions.max_iters must be an int >= 1, got {self.max_iters!r}")
        for name in ("simplified", "functional"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"NewtonOptions.{name} must be True or False, got {getattr(self, name)!r}")

    def stage_tolerance(self, dtype: torch.dtype) -> float:
        """The stopping tolerance of the stage iterations in ``dtype``: ``tol``, raised to 10 eps of the dtype
        (no update gets below rounding)."""
        return max(self.tol, 10.0 * torch.finfo(dtype).eps)


@dataclass
class NewtonCounter:
    """Work done by Newton's method, added to by every ``implicit_rk_step`` it is passed to.

    ``iterations``: Newton iterations (each one linear solve); ``jacobians``: evaluations of df/dy, one per
    stage with a non-zero row of A per iteration, whether from autograd or the caller's ``jacobian``;
    ``continued``: steps whose stages needed the continuation in the step size (plain Newton failed);
    ``factorisations``: LU factorisations of the Newton matrix; ``subdivided``: steps split in two halves
    because their stage equations were not found (``solvers.methods.implicit_rk``); ``functional``: functional
    iterations K <- G(K) (forward) and v <- g + (dG/dK)^T v (backward), tried before Newton's method.
    """

    iterations: int = 0
    jacobians: int = 0
    continued: int = 0
    factorisations: int = 0
    subdivided: int = 0
    functional: int = 0


class NewtonError(StepFailure):
    """Newton's method did not converge (or produced non-finite values) for the stages of one step.

    ``t`` and ``dt`` are the step's start and size as floats. The loop driving the steps adds the step index
    (``StepFailure.at_step``).
    """

    def __init__(self, message: str, t: float = math.nan, dt: float = math.nan):
        super().__init__(message)  # t, dt default only so that copies (StepFailure.at_step) can rebuild it
        self.t, self.dt = t, dt


def implicit_rk_step(f: Field, t: Time, y: Tensor, dt: Time, tableau: ButcherTableau,
                     newton: NewtonOptions = NewtonOptions(), jacobian: Optional[Jacobian] = None,
                     counter: Optional[NewtonCounter] = None) -> Tensor:
    """One step of size ``dt`` from (t, y) of the Runge-Kutta method ``tableau`` (implicit or explicit).

    Same call as ``solvers.rk_step(f, t, y, dt, tableau)``, plus:

    - ``y`` is (B, n): rows are independent samples and ``f(t, y)`` maps (B, n) to (B, n) row by row (row b of
      the result depends on row b of y only). ``t`` and ``dt`` are floats or 0-d tensors, or (B, 1) tensors
      (each row its own time and step, as in a batch of sequences with their own observation times).
    - ``newton``: tolerance and iteration limit (``NewtonOptions``).
    - ``jacobian(t, y)``, when given, returns df/dy of every row as (B, n, n). By default it comes from
      autograd (``torch.func.jacrev`` of the batch-summed f, which evaluates f once per stage and Jacobian),
      so f must then be ``torch.func`` compatible.
    - ``counter`` accumulates the Newton iterations and Jacobian evaluations.

    Cost per Newton iteration: one evaluation of f and of df/dy per stage with a non-zero row of A (a zero
    row is the explicit stage k_i = f(t, y), evaluated once), one batched LU factorisation of (B, s n, s n)
    and one host synchronisation for the convergence test.

    Differentiable (first order) with respect to y, t, dt and the tensors f closes over, by the implicit
    function theorem (see the module docstring): with autograd enabled, f is evaluated once more per stage
    at the solution with a graph, and the backward pass adds one batched triangular solve with the LU
    factors of the last iteration (whose Jacobian differs from the one at the solution by the last update,
    at most ``tol``) to backpropagation through those evaluations.

    Raises ``NewtonError`` when the iterations do not converge within ``newton.max_iters`` or turn non-finite,
    ``ValueError`` for a state that is not a 2-D floating-point tensor, or an f or Jacobian of the wrong shape.
    """
    if not isinstance(y, Tensor) or not y.is_floating_point() or y.dim() != 2:
        got = f"shape {tuple(y.shape)} and dtype {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"implicit_rk_step needs y as a 2-D floating-point tensor (batch, n) whose rows are "
                         f"independent samples, got {got}; reshape a single state to (1, n)")
    if not isinstance(newton, NewtonOptions):
        raise ValueError(f"newton must be a NewtonOptions(tol, max_iters), got {type(newton).__name__}")
    s = tableau.stages
    A, b = _coefficients(tableau, y.dtype, y.device)
    times = [t if ci == 0.0 else t + ci * dt for ci in tableau.c]
    counter = NewtonCounter() if counter is None else counter
    with torch.no_grad():
        K, LU, pivots = _solve_stages(f, t, y.detach(), _detach(dt), tableau, A, [_detach(ti) for ti in times],
                                      newton, jacobian, counter)
    if torch.is_grad_enabled() and LU is None:  # functional iteration converged: no Newton matrix at hand
        K = _functional_stages(f, y, dt, A, times, K, newton, jacobian, tableau, counter)
    elif torch.is_grad_enabled():
        Y = y.unsqueeze(1) + _stagewise(dt) * torch.einsum("ij,bjn->bin", A, K)
        G = torch.stack([f(times[i], Y[:, i]) for i in range(s)], dim=1)
        if G.requires_grad:
            if newton.simplified:  # the backward needs I - dG/dK at the solution
                with torch.no_grad():
                    LU, pivots = _factor_at(f, jacobian, Y.detach(), _detach(dt), tableau, A,
                                            [_detach(ti) for ti in times], counter)
            K = _ImplicitStages.apply(G, K, LU, pivots)
    return y + dt * torch.einsum("i,bin->bn", b, K)


@functools.lru_cache(maxsize=64)
def _coefficients(tableau: ButcherTableau, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """A and b as tensors, made once per tableau, dtype and device (a copy to an accelerator would
    synchronise with the host at every step). Never modified in place; normal tensors even when first made
    under ``torch.inference_mode`` (autograd may save b later)."""
    with torch.inference_mode(False):
        return (torch.tensor(tableau.A, dtype=dtype, device=device),
                torch.tensor(tableau.b, dtype=dtype, device=device))


def _detach(v: Time) -> Time:
    return v.detach() if isinstance(v, Tensor) else v


MIN_CONTINUATION_STEP = 2.0 ** -10
"""The smallest fraction of the step by which the continuation in the step size advances before it gives up."""


def _solve_stages(f: Field, t: Time, y: Tensor, dt: Time, tableau: ButcherTableau, A: Tensor, times: list,
                  newton: NewtonOptions, jacobian: Optional[Jacobian], counter: NewtonCounter
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """The stages K (B, s, n) of the step and the LU factors (with pivots) of the last iteration's matrix
    I - dG/dK, (B, s n, s n) (no autograd); (K, None, None) when the functional iteration converged.

    The functional iteration K <- G(K) from k_i = f(t, y) is tried first (``_functional``); where it does not
    contract, Newton's method starts from k_i = f(t, y). Where it fails (no convergence within ``max_iters``, non-finite
    values, a singular or non-finite matrix), the same full step is reached by continuation in the step size:
    the stage equations of the steps tau dt for increasing tau in (0, 1] are solved in turn, each from the
    solution at the tau before (at tau -> 0 the solution is f(t, y), and along the path it moves a little at a
    time, so Newton starts near it). tau advances by 1/2 at first, by half as much after a failure and twice
    as much after a success, down to ``MIN_CONTINUATION_STEP``. The result is the stage solution of the step dt
    itself, the same method; only the work differs (``counter.continued`` counts such steps). A tanh field is
    bounded, so its stage equations have a solution; for the A-stable methods on a field whose Jacobian has
    eigenvalues with Re <= 0 the linearised stage matrix stays invertible along the path, and the continuation
    finds the solution where plain Newton diverges at large dt * |J|. ``NewtonError`` when tau cannot advance
    by ``MIN_CONTINUATION_STEP``, naming where it stopped."""
    k0 = f(t, y)
    if not isinstance(k0, Tensor) or k0.shape != y.shape:
        got = tuple(k0.shape) if isinstance(k0, Tensor) else type(k0).__name__
        raise ValueError(f"f(t, y) returned {got} for y of shape {tuple(y.shape)}; implicit_rk_step needs f to "
                         f"return a tensor of the state's shape (batch, n), row b depending on row b of y only")
    start = k0.unsqueeze(1).expand(y.shape[0], tableau.stages, y.shape[1]).contiguous()
    K = _functional(f, y, dt, tableau.A, times, newton, counter, start) if newton.functional else None
    if K is not None:
        return K, None, None
    try:
        return _newton(f, t, y, dt, tableau, A, times, newton, jacobian, counter, k0, start)
    except NewtonError as failure:
        first = failure
    tau, advance, K = 0.0, 0.5, start
    while True:
        target = min(1.0, tau + advance)
        part = dt * target
        stage_times = [t if ci == 0.0 else t + ci * part for ci in tableau.c]
        try:
            K_next, LU, pivots = _newton(f, t, y, part, tableau, A, stage_times, newton, jacobian, counter, k0, K,
                                         patience=2)
        except NewtonError:
            advance /= 2.0
            if advance < MIN_CONTINUATION_STEP:
                raise NewtonError(f"{first} Continuation in the step size (the stage equations of tau * dt, tau "
                                  f"rising from 0, each from the last solution) reached only tau={tau:.4g}: it could "
                                  f"not advance by {MIN_CONTINUATION_STEP:g} of the step.", first.t, first.dt) from None
            continue
        tau, K, advance = target, K_next, min(1.0, 2.0 * advance)
        if tau == 1.0:
            counter.continued += 1
            return K, LU, pivots


def _newton(f: Field, t: Time, y: Tensor, dt: Time, tableau: ButcherTableau, A: Tensor, times: list,
            newton: NewtonOptions, jacobian: Optional[Jacobian], counter: NewtonCounter, k0: Tensor, K: Tensor,
            patience: Optional[int] = None) -> tuple[Tensor, Tensor, Tensor]:
    """Newton's method for K = G(K) from the starting stages K; k0 = f(t, y). With ``patience``, it gives up
    once the update has not shrunk in that many iterations in a row (the continuation then takes a shorter
    advance instead of spending all ``max_iters`` on a start too far from the solution)."""
    batch, n = y.shape
    s = tableau.stages
    implicit = [any(a != 0.0 for a in row) for row in tableau.A]
    tol = newton.stage_tolerance(y.dtype)
    eye = torch.eye(s * n, dtype=y.dtype, device=y.device)
    zero_jac = torch.zeros(batch, n, n, dtype=y.dtype, device=y.device)
    update = bound = math.nan
    growing = 0
    where = f"at t={_float(t):g}, dt={_float(dt):g}"
    if newton.simplified:
        _, J0 = _value_and_jacobian(f, jacobian, t, y)
        counter.jacobians += 1
        LU, pivots = _factor(A, [J0 if implicit[i] else zero_jac for i in range(s)], dt, eye, tableau, where, t)
        counter.factorisations += 1
    for iteration in range(1, newton.max_iters + 1):
        Y = y.unsqueeze(1) + _stagewise(dt) * torch.einsum("ij,bjn->bin", A, K)
        G, J = [], []
        for i in range(s):
            if not implicit[i]:  # a zero row of A: the stage is f(t, y) (c_i = 0, the row sum), constant in K
                g, jac = k0, zero_jac
            elif newton.simplified:
                g, jac = f(times[i], Y[:, i]), None
            else:
                g, jac = _value_and_jacobian(f, jacobian, times[i], Y[:, i])
                counter.jacobians += 1
            G.append(g)
            J.append(jac)
        if not newton.simplified:
            LU, pivots = _factor(A, J, dt, eye, tableau, where, t)
            counter.factorisations += 1
        delta = _lu_solve(LU, pivots, (torch.stack(G, dim=1) - K).reshape(batch, s * n, 1))
        K = K + delta.view(batch, s, n)
        counter.iterations += 1
        previous = update
        update, k_max = torch.stack([delta.abs().amax(), K.abs().amax()]).tolist()
        bound = tol * (1.0 + k_max)
        if not (math.isfinite(update) and math.isfinite(k_max)):
            raise NewtonError(
                f"Newton's method for the stages of {tableau.name!r} produced non-finite values in iteration "
                f"{iteration} {where} (update max-norm {update:.3e}, max|K| {k_max:.3e}); use a smaller step "
                f"(the state or f may blow up).", _float(t), _float(dt))
        if update <= bound:
            return K, LU, pivots
        growing = growing + 1 if update >= previous else 0
        if patience is not None and growing >= patience:
            break
    raise NewtonError(
        f"Newton's method for the stages of {tableau.name!r} did not converge in max_iters={newton.max_iters} "
        f"iterations {where}: the last update has max-norm {update:.3e} > tol * (1 + max|K|) = {bound:.3e} "
        f"with tol={tol:g}; use a smaller step, a larger max_iters or a looser tol (NewtonOptions).", _float(t),
        _float(dt))


FUNCTIONAL_ITERS = 40
"""Functional iterations K <- G(K) tried before Newton's method (they stop earlier when the update grows)."""


def _stage_map(f: Field, y: Tensor, dt: Time, rows: tuple[tuple[float, ...], ...], times: list, K: Tensor) -> Tensor:
    """G(K): the stages' right-hand sides at the stage values y + dt sum_j a_ij k_j, (B, s, n), the sums
    written out over the tableau's rows (zero coefficients skipped; s is 1 or 2)."""
    ks = K.unbind(1)
    G = []
    for i, row in enumerate(rows):
        incr = weighted_sum(row, ks)
        G.append(f(times[i], y if incr is None else y + dt * incr))
    return torch.stack(G, dim=1)


def _contracting(deltas: list[float]) -> bool:
    """Whether the functional iteration still contracts: each update below the one before (after the first)."""
    return len(deltas) < 3 or deltas[-1] < deltas[-2]


def functional_iteration(step: Callable[[Tensor], Tensor], start: Tensor, bound: Callable[[Tensor], float]
                         ) -> tuple[Optional[Tensor], int]:
    """The fixed-point iteration x <- step(x) from ``start`` (Hairer & Wanner II, section IV.8) as the stage
    solves and their adjoints run it: (x, iterations) once an update's max-norm is at most ``bound`` of the
    first iterate; (None, iterations) as soon as an update is not finite or stops shrinking (``_contracting``),
    or after ``FUNCTIONAL_ITERS`` iterations."""
    x, deltas, limit = start, [], None
    for iteration in range(1, FUNCTIONAL_ITERS + 1):
        new = step(x)
        if limit is None:  # the scale of the iterates, once: they move by far less than their size from here on
            limit = bound(new)
        update = float((new - x).abs().amax())
        x = new
        if not math.isfinite(update):
            return None, iteration
        if update <= limit:
            return x, iteration
        deltas.append(update)
        if not _contracting(deltas):
            return None, iteration
    return None, FUNCTIONAL_ITERS


def _functional(f: Field, y: Tensor, dt: Time, rows: tuple[tuple[float, ...], ...], times: list,
                newton: NewtonOptions, counter: NewtonCounter, K: Tensor) -> Optional[Tensor]:
    """Functional (fixed-point) iteration K <- G(K) from K (``functional_iteration``): no Jacobian and no
    factorisation, converging when dt * Lipschitz(f) * |A| < 1 (the non-stiff regime, e.g. a tanh field at a
    small step). Same stopping rule as Newton's method; None as soon as the updates stop shrinking or after
    ``FUNCTIONAL_ITERS`` iterations (Newton takes over). Counted in ``counter.functional``."""
    tol = newton.stage_tolerance(y.dtype)
    K, iterations = functional_iteration(lambda K: _stage_map(f, y, dt, rows, times, K), K,
                                         lambda G: tol * (1.0 + float(G.abs().amax())))
    counter.functional += iterations
    return K


def _functional_stages(f: Field, y: Tensor, dt: Time, A: Tensor, times: list, K: Tensor, newton: NewtonOptions,
                       jacobian: Optional[Jacobian], tableau: ButcherTableau, counter: NewtonCounter) -> Tensor:
    """The converged stages K* tied to y, t, dt and f's tensors by the implicit function theorem without a Newton
    matrix: G(K*) is evaluated with K* held constant, and its gradient g is replaced in the backward by the
    solution of v = g + (dG/dK)^T v, found by the same functional iteration on vector-Jacobian products of a
    second evaluation of G in K alone (as deep equilibrium models do; it contracts where the forward did); where
    it does not, the matrix I - dG/dK at the solution is factorised and solved."""
    G = _stage_map(f, y, dt, tableau.A, times, K.detach())
    if not G.requires_grad:
        return K
    leaf = K.detach().requires_grad_()  # a second graph, of G in K alone, for the vector-Jacobian products
    G_of_K = _stage_map(f, y.detach(), _detach(dt), tableau.A, [_detach(ti) for ti in times], leaf)
    tol = newton.stage_tolerance(y.dtype)

    def adjoint(grad: Optional[Tensor]) -> Optional[Tensor]:
        if grad is None:  # an undefined gradient stays undefined
            return None
        bound = tol * (1.0 + float(grad.abs().amax()))
        v, iterations = functional_iteration(
            lambda v: grad + torch.autograd.grad(G_of_K, leaf, v, retain_graph=True)[0], grad, lambda _: bound)
        counter.functional += iterations
        if v is not None:
            return v
        with torch.no_grad():
            Y = y.unsqueeze(1) + _stagewise(_detach(dt)) * torch.einsum("ij,bjn->bin", A, K)
            LU, pivots = _factor_at(f, jacobian, Y.detach(), _detach(dt), tableau, A,
                                    [_detach(ti) for ti in times], counter)
            return _adjoint_solve(LU, pivots, grad)

    G.register_hook(adjoint)
    return G


def _factor(A: Tensor, J: list[Tensor], dt: Time, eye: Tensor, tableau: ButcherTableau, where: str, t: Time
            ) -> tuple[Tensor, Tensor]:
    """LU factors of I - dG/dK, blocks delta_ij I - dt a_ij J_i: entry [b, (i, k), (j, l)] = ... - dt a_ij J_i[b, k, l].

    The factorisation is checked (finite, non-singular, valid pivots) before it is used: a batched LU of a
    single-precision matrix that a library factorised badly is redone in float64 (``_lu_solve`` then solves in
    float64); a matrix that is not finite, or singular, is a ``NewtonError`` (which the caller answers with the
    continuation), never a crash inside the triangular solve."""
    batch, n, s = J[0].shape[0], J[0].shape[1], A.shape[0]
    blocks = A[None, :, None, :, None] * torch.stack(J, dim=1)[:, :, :, None, :]
    matrix = eye - _stagewise(dt) * blocks.reshape(batch, s * n, s * n)
    LU, pivots, info = torch.linalg.lu_factor_ex(matrix)
    if _factored(LU, pivots, info):
        return LU, pivots
    if matrix.dtype != torch.float64:
        LU, pivots, info = torch.linalg.lu_factor_ex(matrix.double())
        if _factored(LU, pivots, info):
            return LU, pivots
    finite = bool(torch.isfinite(matrix).all())
    raise NewtonError(f"the Newton matrix I - dt (A x J) of {tableau.name!r} {where} is "
                      f"{'singular' if finite else 'not finite'}; the field's Jacobian may blow up there.",
                      _float(t), math.nan)


def _factored(LU: Tensor, pivots: Tensor, info: Tensor) -> bool:
    """A usable factorisation: no zero pivot (info 0), pivots in 1..size, finite factors (one host sync)."""
    size = LU.shape[-1]
    return bool(((info == 0).all() & (pivots >= 1).all() & (pivots <= size).all() & torch.isfinite(LU).all()))


def _lu_solve(LU: Tensor, pivots: Tensor, rhs: Tensor) -> Tensor:
    """Solve with factors that may be in float64 while the right-hand side is in float32."""
    return torch.linalg.lu_solve(LU, pivots, rhs.to(LU.dtype)).to(rhs.dtype)


def _adjoint_solve(LU: Tensor, pivots: Tensor, grad: Tensor) -> Tensor:
    """v with (I - dG/dK)^T v = grad for stages grad (B, s, n), from the LU factors of I - dG/dK (float64
    factors serve a float32 gradient)."""
    rhs = grad.reshape(grad.shape[0], -1, 1)
    return torch.linalg.lu_solve(LU, pivots, rhs.to(LU.dtype), adjoint=True).to(grad.dtype).view_as(grad)


def _factor_at(f: Field, jacobian: Optional[Jacobian], Y: Tensor, dt: Time, tableau: ButcherTableau, A: Tensor,
               times: list, counter: NewtonCounter) -> tuple[Tensor, Tensor]:
    """LU factors of I - dG/dK with the Jacobians at the stage values Y (B, s, n) of the solution."""
    J = []
    for i, row in enumerate(tableau.A):
        if any(a != 0.0 for a in row):
            J.append(_value_and_jacobian(f, jacobian, times[i], Y[:, i])[1])
            counter.jacobians += 1
        else:
            J.append(torch.zeros_like(Y[:, 0]).unsqueeze(-1).expand(*Y[:, 0].shape, Y.shape[-1]))
    eye = torch.eye(Y.shape[1] * Y.shape[2], dtype=Y.dtype, device=Y.device)
    counter.factorisations += 1
    return _factor(A, J, dt, eye, tableau, "at the solution", times[0])


def _value_and_jacobian(f: Field, jacobian: Optional[Jacobian], t: Time, y: Tensor) -> tuple[Tensor, Tensor]:
    """f(t, y) (B, n) and df/dy per row (B, n, n), from ``jacobian`` or autograd."""
    if jacobian is not None:
        value, jac = f(t, y), jacobian(t, y)
        if not isinstance(jac, Tensor) or jac.shape != (*y.shape, y.shape[1]):
            got = tuple(jac.shape) if isinstance(jac, Tensor) else type(jac).__name__
            raise ValueError(f"jacobian(t, y) returned {got} for y of shape {tuple(y.shape)}; it must return df/dy "
                             f"of every row, shape {(*y.shape, y.shape[1])}")
        return value, jac.to(y.dtype)

    def summed(x: Tensor) -> tuple[Tensor, Tensor]:
        out = f(t, x)
        return out.sum(0), out

    jac, value = torch.func.jacrev(summed, has_aux=True)(y)  # jac[k, b, l] = d f(t, y)[b, k] / d y[b, l]
    return value, jac.permute(1, 0, 2)


def _stagewise(dt: Time) -> Time:
    """dt shaped to multiply (B, s, n) stage arrays: a per-row (B, 1) step becomes (B, 1, 1)."""
    return dt.unsqueeze(-1) if isinstance(dt, Tensor) and dt.dim() == 2 else dt


def _float(v: Time) -> float:
    """A time or step for messages: per-row values (B, 1) are reported by their first row."""
    return float(v.detach().reshape(-1)[0]) if isinstance(v, Tensor) else float(v)


class _ImplicitStages(torch.autograd.Function):
    """Identity on the converged stages K*, with the implicit function theorem in backward.

    Inputs: G = G(K*) evaluated with autograd (K* held constant), K*, and the LU factors of I - dG/dK.
    Forward returns K*; backward solves (I - dG/dK)^T v = g and hands v to G, whose graph carries it on to
    y, t, dt and the tensors f closes over.
    """

    @staticmethod
    def forward(ctx, G: Tensor, K: Tensor, LU: Tensor, pivots: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(LU, pivots)
        return K.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # noqa: D102
        LU, pivots = ctx.saved_tensors
        return _adjoint_solve(LU, pivots, grad), None, None, None
