"""The fused implicit Runge-Kutta scan of k = tanh(C h + u), its stages found by functional iteration, with a
backward by the implicit function theorem.

For a tableau (A, b) with s stages, step j solves the stage equations (``solvers.implicit``, Hairer & Wanner II,
section IV.8)

    K = G(K),   G_i(K) = tanh(Y_i C^T + u),   Y_i = y + dt sum_l a_il k_l,      y' = y + dt sum_i b_i k_i,

by the functional iteration K <- G(K) from k_i = tanh(y C^T + u), as ``solvers.implicit`` does first: the
same start, the same stopping rule (the update's max-norm below tol (1 + max|G|) of the first iterate, tol
``NewtonOptions.tol`` raised to 10 eps), the same test of contraction (each update below the one before,
from the third on), and the stages taken as G of the last iterate (where the stepped scan evaluates G once
more to tie them to the parameters). Each iteration is one (B s, n) x (n, n) product for all stages. Where it does not
contract (a large dt |C|, where Newton's method is needed) the scan raises :class:`NotContracting` and the
integrator hands the sequence to the generic stepped scan, which takes Newton's method from there.

Backward, per step in reverse, with gy' = dL/dy': the stages' gradient v = dL/dG at the solution solves
v = dt b gy' + (dG/dK)^T v, found by the same iteration (it contracts where the forward did, as for deep
equilibrium models), with ((dG/dK)^T v)_l = dt sum_i a_il w_i and w_i = (tanh'_i v_i) C one product for all
stages; then g_i = tanh'_i v_i is the gradient of stage i's pre-activation, dL/dy = gy' + sum_i w_i, dL/du =
sum_i g_i, and dL/dC = sum g_i^T Y_i is one large product after the walk. Where the backward iteration does
not contract, that step's v comes from a dense solve of (I - dG/dK)^T v = dt b gy'. It computes what
``SteppedScan`` computes for the method (the same fixed points, to the iteration's tolerance).
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from solvers import ButcherTableau, functional_iteration

from .fused import POOL, gradient_start, input_gradients, per_sample, project


class NotContracting(Exception):
    """The functional iteration of a step did not converge: Newton's method is needed (the generic scan)."""


def _iterate(step, start: Tensor, bound) -> tuple[Tensor, int]:
    """``solvers.functional_iteration``, raising :class:`NotContracting` where it does not converge."""
    x, iterations = functional_iteration(step, start, bound)
    if x is None:
        raise NotContracting
    return x, iterations


class TanhImplicitScan(torch.autograd.Function):
    """``apply(h0 (B, n), x (T, B, m), V (n, m), b (n,), C (n, n), dt, tableau, substeps, tol, counts)``
    ``-> (states (T, B, n), h_T)``; ``counts`` (a list) receives the forward's functional iterations."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                tableau: ButcherTableau, substeps: int, tol: float, counts: list) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], h0.shape[1]
        steps, stages = length * substeps, tableau.stages
        a = torch.tensor(tableau.A, dtype=h0.dtype, device=h0.device) * dt
        b = torch.tensor(tableau.b, dtype=h0.dtype, device=h0.device) * dt
        u = project(x, weight, bias)
        states = POOL.take((steps + 1, batch, n), h0)
        solved = POOL.take((steps, batch, stages, n), h0)  # K* of every step
        states[0] = h0
        matrix_t = matrix.T
        for j in range(steps):
            y, held = states[j], u[j // substeps].unsqueeze(1)

            def stage_map(K: Tensor, y: Tensor = y, held: Tensor = held) -> Tensor:
                Y = torch.einsum("il,bln->bin", a, K).add_(y.unsqueeze(1))
                return (Y.reshape(-1, n) @ matrix_t).view(batch, stages, n).add_(held).tanh_()

            start = torch.tanh(y @ matrix_t + held[:, 0]).unsqueeze(1).expand(batch, stages, n)
            K, iterations = _iterate(stage_map, start, lambda G: tol * (1.0 + float(G.abs().amax())))
            counts.append(iterations)
            K = stage_map(K)  # G(K), as the stepped scan's implicit-function stages return
            solved[j] = K
            torch.add(y, torch.einsum("i,bin->bn", b, K), out=states[j + 1])
        POOL.give(u)
        for buffer in (states, solved):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, solved, x, weight, matrix, a, b)
        ctx.substeps, ctx.tol = substeps, tol
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        states, solved, x, weight, matrix, a, b = ctx.saved_tensors
        substeps, tol = ctx.substeps, ctx.tol
        steps, batch, stages, n = solved.shape
        grad_h = gradient_start(grad_last, states[0])
        grad_pre = POOL.take((steps, batch, stages, n), solved)  # g_i of every step
        stage_inputs = POOL.take((steps, batch, stages, n), solved)  # Y_i at the solution
        for j in range(steps - 1, -1, -1):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            K, y = solved[j], states[j]
            slope = 1.0 - K * K  # tanh' of every stage
            direct = b.view(1, stages, 1) * grad_h.unsqueeze(1)  # dL/dK through y' = y + dt sum b_i k_i

            def products(v: Tensor, slope: Tensor = slope) -> Tensor:  # w_i = (tanh'_i v_i) C
                return ((slope * v).reshape(-1, n) @ matrix).view(batch, stages, n)

            def adjoint_map(v: Tensor, direct: Tensor = direct) -> Tensor:
                return torch.einsum("il,bin->bln", a, products(v)).add_(direct)

            try:
                v, _ = _iterate(adjoint_map, direct, lambda _: tol * (1.0 + float(direct.abs().amax())))
            except NotContracting:
                v = _dense_adjoint(a, slope, matrix, direct)
            torch.mul(slope, v, out=grad_pre[j])
            grad_h.add_(products(v).sum(1))
            torch.add(torch.einsum("il,bln->bin", a, K), y.unsqueeze(1), out=stage_inputs[j])
        grad_u = per_sample(grad_pre.sum(2).unsqueeze(0), x.shape[0])
        grads = [grad_h, *input_gradients(ctx, grad_u, x, weight, 1.0)]
        grads.append(grad_pre.view(-1, n).T @ stage_inputs.view(-1, n) if ctx.needs_input_grad[4] else None)
        for buffer in (grad_pre, stage_inputs):
            POOL.give(buffer)
        return (*grads, None, None, None, None, None)


def _dense_adjoint(a: Tensor, slope: Tensor, matrix: Tensor, direct: Tensor) -> Tensor:
    """v with v = direct + (dG/dK)^T v for one step, by a dense solve per sample: dG_i/dk_l = diag(tanh'_i) C dt a_il,
    so block (l, i) of (dG/dK)^T is dt a_il C^T diag(tanh'_i)."""
    batch, stages, n = slope.shape
    transposed = torch.einsum("il,pq,bip->blqip", a, matrix, slope).reshape(batch, stages * n, stages * n)
    eye = torch.eye(stages * n, dtype=slope.dtype, device=slope.device)
    return torch.linalg.solve(eye - transposed, direct.reshape(batch, stages * n)).view(batch, stages, n)


def tanh_implicit_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                       tableau: ButcherTableau, substeps: int, tol: float, counts: list) -> tuple[Tensor, Tensor]:
    """(states (T, B, n), h_T) of the implicit tableau on tanh(C h + V x + b) by functional iteration (module
    docstring); raises :class:`NotContracting` where Newton's method is needed."""
    return TanhImplicitScan.apply(h0, x.contiguous(), weight, bias, matrix, float(dt), tableau, int(substeps),
                                  float(tol), counts)
