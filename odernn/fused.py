"""Fused explicit Runge-Kutta scan for fields of the form f(h, u) = tanh(A h + u), u = V x + b held per sample.

One step of size dt of the tableau (c, A_rk, b_rk) with s stages (written a_il, b_i), ``substeps`` steps per
input sample, every stage seeing the held input u_k of its sample (DESIGN.md section 8):

    Y_i = y + dt * sum_{l<i} a_il k_l,   k_i = tanh(Y_i A^T + u_k),   y' = y + dt * sum_i b_i k_i.

Forward Euler (s = 1, Y_1 = y) is the papers' recurrence (eq. 10 / 12); it is the one-stage case of the same
code. A ``torch.autograd.Function`` whose backward is hand-written BPTT: it saves every state, every stage
input Y_i (i > 1) and every tanh output k_i, and walks each step's stages in reverse, with gy' = dL/dy':

    gk_i = dt * (b_i gy' + sum_{l>i} a_li gY_l),   gs_i = gk_i * (1 - k_i^2),   gY_i = gs_i A,
    gy = gy' + sum_i gY_i,

one matmul and one fused elementwise pass (aten's tanh_backward) per stage. The gradients of A, V and b are
sums over all steps and stages of gs_i^T Y_i, gs_i^T x_k and gs_i: single large matmuls at the end. The last
state is a separate output, so a loss on h_T alone (a classifier) adds nothing per step. The input
projection happens inside, so the work buffers (projected inputs, stage inputs, tanh outputs, pre-activation
gradients) never leave this module and are reused across calls from a small pool: fresh buffers of this
size cost page faults on every call (DESIGN.md section 8). Saved buffers return to the pool only when the
autograd node that saved them is freed, so retained graphs and repeated backward passes stay correct. The
scan equals the generic ``solvers.rk_step`` scan (tested to rounding, and by gradcheck in float64).
"""
from __future__ import annotations

import math
import weakref
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from solvers import ButcherTableau

tanh_backward = torch.ops.aten.tanh_backward.grad_input


class BufferPool:
    """Free work buffers (whole storages) by dtype and device; at most ``capacity`` kept, the oldest dropped
    first. A request takes the smallest free buffer with room for it, so scans of different lengths, stage
    counts and batch sizes share the same few buffers instead of each faulting in fresh pages."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self.free: list[Tensor] = []

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        size = math.prod(shape)
        fits = [i for i, buffer in enumerate(self.free)
                if 0 < size <= buffer.numel() and buffer.dtype == like.dtype and buffer.device == like.device]
        if not fits:
            return like.new_empty(shape)
        best = min(fits, key=lambda i: self.free[i].numel())
        return self.free.pop(best)[:size].view(shape)

    def give(self, buffer: Tensor) -> None:
        """Keep the whole storage of ``buffer`` for reuse; empty ones (Euler's stage inputs) are not kept."""
        if buffer.numel():
            self.free.append(buffer.new_empty(0).set_(buffer.untyped_storage()))
            del self.free[:-self.capacity]


POOL = BufferPool()


def combine(terms: Sequence[tuple[float, Tensor]], out: Tensor, alias: bool = False) -> Tensor:
    """sum_i c_i t_i over the terms with c_i != 0 (zero if none), written into ``out`` with one elementwise
    kernel per term (a term with c = 1 goes first, to be the ``input`` of a fused add); with ``alias`` a lone
    term with c = 1 is returned itself (no kernel)."""
    terms = sorted(((c, t) for c, t in terms if c != 0.0), key=lambda term: term[0] != 1.0)
    if not terms:
        return out.zero_()
    (c0, t0), rest = terms[0], terms[1:]
    if c0 == 1.0 and not rest and alias:
        return t0
    if c0 == 1.0 and rest:
        torch.add(t0, rest[0][1], alpha=rest[0][0], out=out)
        rest = rest[1:]
    else:
        torch.mul(t0, c0, out=out)
    for c, t in rest:
        out.add_(t, alpha=c)
    return out


class TanhRKScan(torch.autograd.Function):
    """``apply(h0 (B, n), x (T, B, m), V (n, m), b (n,), A (n, n), dt, tableau, substeps)``
    ``-> (states (T, B, n), h_T)``."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                tableau: ButcherTableau, substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], h0.shape[1]
        steps, stages = length * substeps, tableau.stages
        projected = POOL.take((length, batch, n), h0)
        torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.T, out=projected.view(-1, n))
        states = h0.new_empty(steps + 1, batch, n)
        stage_inputs = POOL.take((stages - 1, steps, batch, n), h0)  # Y_2..Y_s of every step
        acts = POOL.take((stages, steps, batch, n), h0)  # k_1..k_s of every step
        states[0] = h0
        matrix_t = matrix.T
        ys, us = states.unbind(0), projected.unbind(0)
        ks, inputs = [k.unbind(0) for k in acts], [None, *(y.unbind(0) for y in stage_inputs)]
        rows = [[(dt * a, l) for l, a in enumerate(row[:i]) if a != 0.0] for i, row in enumerate(tableau.A)]
        weights = [(dt * w, i) for i, w in enumerate(tableau.b) if w != 0.0]
        for j in range(steps):
            y, u = ys[j], us[j // substeps]
            for i in range(stages):
                stage_input = y if i == 0 else combine([(1.0, y)] + [(c, ks[l][j]) for c, l in rows[i]],
                                                       inputs[i][j])
                torch.addmm(u, stage_input, matrix_t, out=ks[i][j])
                ks[i][j].tanh_()
            combine([(1.0, y)] + [(c, ks[i][j]) for c, i in weights], ys[j + 1])
        POOL.give(projected)
        weakref.finalize(ctx, POOL.give, acts)
        weakref.finalize(ctx, POOL.give, stage_inputs)
        ctx.save_for_backward(states, stage_inputs, acts, x, weight, matrix)
        ctx.dt, ctx.tableau, ctx.substeps = dt, tableau, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        """Per step, gy' in ``grad_h`` and gy accumulated into ``grad_next`` (two buffers, swapped); ``grad_pre``
        holds gs_i / dt. A stage whose gY_i enters some gk_p (a_ip != 0, p < i) keeps scale_i * gY_i / dt in
        ``kept``, scale_i = dt * a_ip for the largest such p, so gk_p / dt = b_p gy' + kept_i is one fused add."""
        states, stage_inputs, acts, x, weight, matrix = ctx.saved_tensors
        dt, tableau, substeps = ctx.dt, ctx.tableau, ctx.substeps
        stages, steps, batch, n = acts.shape
        a, b = tableau.A, tableau.b
        scale = [dt * next((c for c in reversed(row[:i]) if c != 0.0), 0.0) for i, row in enumerate(a)]
        uses = [[(dt * a[l][i] / scale[l], l) for l in range(i + 1, stages) if a[l][i] != 0.0]
                for i in range(stages)]  # gk_i / dt = b_i gy' + sum_l uses * kept_l
        grad_h = torch.zeros_like(states[0]) if grad_last is None else grad_last.clone()
        grad_next = torch.empty_like(grad_h)
        grad_pre = POOL.take(acts.shape, acts)  # gs_i / dt: (1 - k_i^2) gk_i / dt
        kept = grad_h.new_empty(stages, batch, n)
        grad_k = grad_h.new_empty(batch, n)
        ks, gs = [k.unbind(0) for k in acts], [g.unbind(0) for g in grad_pre]
        for j in reversed(range(steps)):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            grad_next.copy_(grad_h)
            for i in reversed(range(stages)):
                terms = [(b[i], grad_h)] + [(c, kept[l]) for c, l in uses[i]]
                tanh_backward(combine(terms, grad_k, alias=True), ks[i][j], grad_input=gs[i][j])
                if scale[i]:
                    torch.addmm(kept[i], gs[i][j], matrix, beta=0.0, alpha=scale[i], out=kept[i])
                    grad_next.add_(kept[i], alpha=dt / scale[i])
                else:
                    grad_next.addmm_(gs[i][j], matrix, alpha=dt)
            grad_h, grad_next = grad_next, grad_h
        blocks = grad_pre.view(stages, -1, substeps, batch, n)
        per_sample = blocks[0, :, 0] if stages * substeps == 1 else blocks.sum((0, 2))
        flat = per_sample.reshape(-1, n)
        m = x.shape[-1]
        grads = [grad_h, None, None, None, None]
        if ctx.needs_input_grad[1]:
            grads[1] = (flat @ weight).mul_(dt).view(x.shape)
        if ctx.needs_input_grad[2]:
            grads[2] = (flat.T @ x.reshape(-1, m)).mul_(dt)
        if ctx.needs_input_grad[3]:
            grads[3] = flat.sum(0).mul_(dt)
        if ctx.needs_input_grad[4]:
            first = grad_pre[0].reshape(-1, n).T @ states[:-1].reshape(-1, n)
            later = torch.addmm(first, grad_pre[1:].reshape(-1, n).T, stage_inputs.reshape(-1, n))
            grads[4] = later.mul_(dt)
        POOL.give(grad_pre)
        return (*grads, None, None, None)


def tanh_rk_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                 tableau: ButcherTableau, substeps: int = 1) -> tuple[Tensor, Tensor]:
    """(states (T, B, n), h_T) of the fused scan; ``x`` is time-major (T, B, m), the projection V x + b; steps
    of size ``dt`` of the explicit ``tableau``, ``substeps`` per sample."""
    return TanhRKScan.apply(h0, x.contiguous(), weight, bias, matrix, float(dt), tableau, int(substeps))
