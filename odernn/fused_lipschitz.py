"""The fused forward Euler scan of h' = h L + tanh(h W + u) (Lipschitz RNN), with a hand-written BPTT.

On ``fields.base.LinearTanhForm`` (row state h; u = U x + b held per sample), forward Euler at step eps is the
Lipschitz RNN authors' update:

    [p, s] = h [L | W],      h' = h + eps (p + tanh(s + u)).

Its adjoint, with g' = dL/dh' and a = tanh(s + u): g_s = eps tanh'(a) g', and gh = g' + [eps g', g_s] [L | W]^T,
one product per step each way; the gradients of L and W are one large product after the walk
(dL/d[L | W] = sum h^T [eps g', g_s]), those of U, b and x from g_s per sample. It computes what
``SteppedScan`` computes for ``euler`` on the field (tested equal to 1e-10 in float64, values and gradients).
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .fused import POOL, gradient_start, held_inputs, input_gradients, per_sample, tanh_backward, walks


class LinearTanhWalks:
    """The scan's time loops in Python; ``csrc/family_walks.cpp`` holds the same walks compiled, with the same
    names and signatures (``fused.walks`` picks one). Every walk writes into the caller's buffers."""

    @staticmethod
    def linear_tanh_forward(states: Tensor, inputs: Tensor, input_weight: Optional[Tensor], both: Tensor,
                            acts: Tensor, eps: float, substeps: int) -> None:
        """states (steps + 1, B, n) with states[0] = h0; inputs the projected u (T, B, n), or with
        ``input_weight`` the augmented [x, 1] (``fused.held_inputs``); both [L | W] (n, 2n); acts a
        (steps, B, n)."""
        projected = inputs if input_weight is None else inputs @ input_weight
        n = both.shape[0]
        work = states.new_empty(states.shape[1], 2 * n)
        for j in range(acts.shape[0]):
            h = states[j]
            torch.mm(h, both, out=work)
            a = torch.add(work[:, n:], projected[j // substeps], out=acts[j]).tanh_()
            torch.add(work[:, :n], a, out=states[j + 1]).mul_(eps).add_(h)

    @staticmethod
    def linear_tanh_backward(grad_h: Tensor, grad_states: Optional[Tensor], acts: Tensor, both: Tensor,
                             grad_ps: Tensor, eps: float, substeps: int) -> None:
        """grad_h (B, n): dL/dh_steps in, dL/dh0 out; grad_ps (steps, B, 2n) receives [eps g', g_s] of every
        step."""
        n = both.shape[0]
        for j in range(acts.shape[0] - 1, -1, -1):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            g = grad_ps[j]
            torch.mul(grad_h, eps, out=g[:, :n])
            tanh_backward(g[:, :n], acts[j], grad_input=g[:, n:])
            grad_h.addmm_(g, both.T)


class LinearTanhEulerScan(torch.autograd.Function):
    """``apply(h0 (B, n), x (T, B, m), U (n, m), b (n,), L (n, n), W (n, n), eps, substeps)``
    ``-> (states (T, B, n), h_T)``."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, linear: Tensor, matrix: Tensor,
                eps: float, substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], h0.shape[1]
        steps = length * substeps
        walker = walks(h0.device, LinearTanhWalks)
        inputs, input_weight = held_inputs(x, weight, bias, walker)
        both = torch.cat([linear, matrix], 1)  # [L | W] (n, 2n)
        states = POOL.take((steps + 1, batch, n), h0)
        acts = POOL.take((steps, batch, n), h0)
        states[0] = h0
        walker.linear_tanh_forward(states, inputs, input_weight, both, acts, eps, substeps)
        if input_weight is None:
            POOL.give(inputs)
        for buffer in (states, acts):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, acts, x, weight, both)
        ctx.eps, ctx.substeps = eps, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        states, acts, x, weight, both = ctx.saved_tensors
        eps, substeps = ctx.eps, ctx.substeps
        steps, batch, n = acts.shape
        grad_h = gradient_start(grad_last, states[0])
        if grad_states is not None:
            grad_states = grad_states.contiguous()
        grad_ps = POOL.take((steps, batch, 2 * n), acts)  # [eps g', g_s] of every step
        walks(grad_h.device, LinearTanhWalks).linear_tanh_backward(grad_h, grad_states, acts, both, grad_ps, eps,
                                                                   substeps)
        grad_s = grad_ps[..., n:]
        grads = [grad_h, *input_gradients(ctx, per_sample(grad_s.unsqueeze(0), x.shape[0]), x, weight, 1.0)]
        if ctx.needs_input_grad[4] or ctx.needs_input_grad[5]:
            total = states[:-1].reshape(-1, n).T @ grad_ps.view(-1, 2 * n)
            grads += [total[:, :n], total[:, n:]]
        else:
            grads += [None, None]
        POOL.give(grad_ps)
        return (*grads, None, None)


def linear_tanh_euler_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, linear: Tensor, matrix: Tensor,
                           eps: float, substeps: int = 1) -> tuple[Tensor, Tensor]:
    """(states (T, B, n), h_T) of forward Euler on h' = h L + tanh(h W + U x + b) (module docstring); ``x``
    time-major (T, B, m), U (n, m), b (n,), L and W (n, n); ``substeps`` steps of size ``eps`` per sample."""
    n = linear.shape[0]
    if h0.dim() != 2 or x.dim() != 3 or x.shape[1] != h0.shape[0] or h0.shape[1] != n:
        raise ValueError(f"expected h0 (B, {n}) and time-major x (T, B, m) with the same B, got h0 "
                         f"{tuple(h0.shape)} and x {tuple(x.shape)}")
    expected = {"weight": (n, x.shape[-1]), "bias": (n,), "linear": (n, n), "matrix": (n, n)}
    for name, tensor in zip(expected, (weight, bias, linear, matrix)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(f"{name} must be {expected[name]}, got {tuple(tensor.shape)}")
    return LinearTanhEulerScan.apply(h0, x.contiguous(), weight, bias, linear, matrix, float(eps), int(substeps))
