"""Fused forward-Euler scan for fields of the form f(h, u) = tanh(A h + V x + b) with a held input.

h_{j+1} = h_j + dt * tanh(A h_j + V x_{k(j)} + b), ``substeps`` steps per input sample (DESIGN.md section 8):
a ``torch.autograd.Function`` whose backward is hand-written BPTT. It saves every state and every tanh
output, so each backward step costs one matmul and one fused elementwise pass (aten's tanh_backward); the
gradients of A, V and b are single large matmuls over all steps at the end. The last state is a separate
output, so a loss on h_T alone (a classifier) adds nothing per step. The input projection happens inside,
so the three (T, B, n) work buffers (projected inputs, tanh outputs, pre-activation gradients) never leave
this module and are reused across calls from a small pool: fresh buffers of this size cost page faults on
every call (DESIGN.md section 8). The tanh outputs return to the pool only when the autograd node that saved
them is freed, so retained graphs and repeated backward passes stay correct. It is the papers' recurrence (eq. 10 / 12) and equals the generic ``rk_step`` scan
(tested to rounding, and by gradcheck in float64).
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor

tanh_backward = torch.ops.aten.tanh_backward.grad_input


class BufferPool:
    """Free work buffers by (shape, dtype, device); at most ``capacity`` kept, the oldest dropped first."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self.free: list[Tensor] = []

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        for i, buffer in enumerate(self.free):
            if buffer.shape == shape and buffer.dtype == like.dtype and buffer.device == like.device:
                return self.free.pop(i)
        return like.new_empty(shape)

    def give(self, buffer: Tensor) -> None:
        self.free.append(buffer)
        del self.free[:-self.capacity]


POOL = BufferPool()


class TanhEulerScan(torch.autograd.Function):
    """``apply(h0 (B, n), x (T, B, m), V (n, m), b (n,), A (n, n), dt, substeps) -> (states (T, B, n), h_T)``."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], h0.shape[1]
        steps = length * substeps
        projected = POOL.take((length, batch, n), h0)
        torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.T, out=projected.view(-1, n))
        states = h0.new_empty(steps + 1, batch, n)
        acts = POOL.take((steps, batch, n), h0)
        states[0] = h0
        matrix_t = matrix.T
        for j in range(steps):
            torch.addmm(projected[j // substeps], states[j], matrix_t, out=acts[j])
            acts[j].tanh_()
            torch.add(states[j], acts[j], alpha=dt, out=states[j + 1])
        POOL.give(projected)
        weakref.finalize(ctx, POOL.give, acts)
        ctx.save_for_backward(states, acts, x, weight, matrix)
        ctx.dt, ctx.substeps = dt, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        states, acts, x, weight, matrix = ctx.saved_tensors
        dt, substeps = ctx.dt, ctx.substeps
        n, m = matrix.shape[0], x.shape[-1]
        grad_h = torch.zeros_like(states[0]) if grad_last is None else grad_last.clone()
        grad_pre = POOL.take(acts.shape, acts)  # (1 - tanh^2) dL/dh_{j+1}, without the factor dt
        for j in reversed(range(acts.shape[0])):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h = grad_h + grad_states[(j + 1) // substeps - 1]
            tanh_backward(grad_h, acts[j], grad_input=grad_pre[j])
            grad_h = torch.addmm(grad_h, grad_pre[j], matrix, alpha=dt)
        per_sample = grad_pre if substeps == 1 else grad_pre.view(-1, substeps, *acts.shape[1:]).sum(1)
        flat = per_sample.reshape(-1, n)
        grads = [grad_h, None, None, None, None]
        if ctx.needs_input_grad[1]:
            grads[1] = (flat @ weight).mul_(dt).view(x.shape)
        if ctx.needs_input_grad[2]:
            grads[2] = (flat.T @ x.reshape(-1, m)).mul_(dt)
        if ctx.needs_input_grad[3]:
            grads[3] = flat.sum(0).mul_(dt)
        if ctx.needs_input_grad[4]:
            grads[4] = (grad_pre.reshape(-1, n).T @ states[:-1].reshape(-1, n)).mul_(dt)
        POOL.give(grad_pre)
        return (*grads, None, None)


def tanh_euler_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, matrix: Tensor, dt: float,
                    substeps: int = 1) -> tuple[Tensor, Tensor]:
    """(states (T, B, n), h_T) of the fused scan; ``x`` is time-major (T, B, m), the projection V x + b."""
    return TanhEulerScan.apply(h0, x.contiguous(), weight, bias, matrix, float(dt), int(substeps))
