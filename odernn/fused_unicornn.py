"""The fused symplectic Euler scan of stacked independent oscillators (UnICORNN), with a hand-written BPTT.

On ``fields.base.IndependentOscillatorForm``, partitioned Euler over the blocks [z_1, y_1, ..., z_L, y_L]
(the UnICORNN authors' update) lets each layer read the new positions of the layer below, so the scan runs
layer by layer over the whole sequence: layer l's drive u_l = V_l y_{l-1} + b_l is one large product over
all steps (layer 1: the held input), and its recurrence is elementwise (w_l, c_l per neuron; delta = dt
sigmoid(c)):

    a = tanh(w y + u),   z' = z - delta (a + alpha y),   y' = y + delta z'.

The adjoint walks each layer in reverse, top layer first, with (gz', gy') = dL/d(z', y') and q = gz' + delta gy':

    g = -delta tanh'(a) q,   gz = q,   gy = gy' - delta alpha q + w g,

where g = dL/du is also the gradient of the layer's drive: dL/dV_l, dL/db_l and the gradient of the layer
below's positions (g V_l) are large products after the walk, and dL/dw = sum g y, dL/d delta = sum (gy' z' -
q (a + alpha y)) are sums over all steps (per row in the walk, then over the rows). Per step: no matrix
product, one elementwise pass each way in the compiled walk (``csrc/family_walks.cpp``). It computes what ``SteppedScan`` computes for ``partitioned_euler`` /
``symplectic_euler`` on the field (tested equal to 1e-10 in float64, values and gradients).
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .fused import POOL, per_sample, project, tanh_backward, walks


class IndependentOscillatorWalks:
    """One layer's time loops in Python; ``csrc/family_walks.cpp`` holds the same walks compiled, with the same
    names and signatures (``fused.walks`` picks one). Every walk writes into the caller's buffers."""

    @staticmethod
    def independent_forward(zs: Tensor, ys: Tensor, acts: Tensor, drive: Tensor, w: Tensor, delta: Tensor,
                            alpha: float, hold: int) -> None:
        """zs, ys (steps + 1, B, n) with step 0 set; acts a (steps, B, n); drive u (samples, B, n), sample
        j // hold at step j."""
        for j in range(acts.shape[0]):
            a = torch.addcmul(drive[j // hold], w, ys[j], out=acts[j]).tanh_()
            z_new = torch.add(a, ys[j], alpha=alpha, out=zs[j + 1])
            torch.addcmul(zs[j], delta, z_new, value=-1.0, out=z_new)
            torch.addcmul(ys[j], delta, z_new, out=ys[j + 1])

    @staticmethod
    def independent_backward(gz: Tensor, gy: Tensor, grad_states: Optional[Tensor], start: int,
                             from_above: Optional[Tensor], zs: Tensor, ys: Tensor, acts: Tensor, w: Tensor,
                             delta: Tensor, alpha: float, substeps: int, g: Tensor, sums: Tensor) -> None:
        """gz, gy (B, n): dL/d(z, y)_steps in, dL/d(z, y)_0 out; grad_states (T, B, S) the returned states'
        gradients (this layer's z from column ``start``, y from start + n); from_above (steps, B, n) the
        gradient of y_{j+1} through the layer above's drive; g (steps, B, n) receives g; sums (2, B, n) the
        per-row sums for dL/dw and dL/d delta."""
        steps, n = acts.shape[0], w.shape[0]
        q, gy_next = torch.empty_like(acts), torch.empty_like(acts)
        for j in range(steps - 1, -1, -1):
            if grad_states is not None and (j + 1) % substeps == 0:
                row = grad_states[(j + 1) // substeps - 1]
                gz += row[:, start:start + n]
                gy += row[:, start + n:start + 2 * n]
            if from_above is not None:
                gy += from_above[j]
            gy_next[j] = gy
            q_j = torch.addcmul(gz, delta, gy, out=q[j])
            g_j = tanh_backward(q_j, acts[j], grad_input=g[j]).mul_(-delta)
            gy.addcmul_(q_j, delta, value=-alpha).addcmul_(g_j, w)
            gz.copy_(q_j)
        torch.sum(g * ys[:-1], 0, out=sums[0])
        torch.sum(gy_next * zs[1:], 0, out=sums[1]).sub_((q * torch.add(acts, ys[:-1], alpha=alpha)).sum(0))


class IndependentOscillatorScan(torch.autograd.Function):
    """``apply(h0 (B, S), x (T, B, m), alpha, dt, substeps, V_1, b_1, w_1, c_1, ..., V_L, b_L, w_L, c_L)``
    ``-> (states (T, B, S), h_T)`` with S = 2 (n_1 + ... + n_L), the state [z_1, y_1, ..., z_L, y_L]."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, alpha: float, dt: float, substeps: int, *params: Tensor):
        length, batch = x.shape[0], h0.shape[0]
        steps = length * substeps
        layers = [params[i:i + 4] for i in range(0, len(params), 4)]
        walker = walks(h0.device, IndependentOscillatorWalks)
        states = POOL.take((steps + 1, batch, h0.shape[1]), h0)  # every layer's (z, y), written by the walks
        states[0] = h0
        acts, start, below = [], 0, None
        for weight, bias, w, c in layers:
            n = w.shape[0]
            delta = torch.sigmoid(c) * dt
            if below is None:  # the held input, one sample per substeps steps
                drive, hold = project(x, weight, bias), substeps
            else:
                drive, hold = project(below[1:], weight, bias), 1
            zs, ys = states[:, :, start:start + n], states[:, :, start + n:start + 2 * n]
            acts.append(POOL.take((steps, batch, n), h0))
            walker.independent_forward(zs, ys, acts[-1], drive, w.contiguous(), delta, alpha, hold)
            POOL.give(drive)
            below, start = ys, start + 2 * n
        for buffer in (states, *acts):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(x, *params, states, *acts)
        ctx.alpha, ctx.dt, ctx.substeps, ctx.layers = alpha, dt, substeps, len(layers)
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        x, *rest = ctx.saved_tensors
        count = ctx.layers
        params, states, acts_of = rest[:4 * count], rest[4 * count], rest[4 * count + 1:]
        alpha, dt, substeps = ctx.alpha, ctx.dt, ctx.substeps
        steps, batch = acts_of[0].shape[0], acts_of[0].shape[1]
        widths = [params[4 * l + 2].shape[0] for l in range(count)]
        starts = [2 * sum(widths[:l]) for l in range(count)]
        walker = walks(x.device, IndependentOscillatorWalks)
        if grad_states is not None:
            grad_states = grad_states.contiguous()
        grad_h0 = x.new_zeros(batch, 2 * sum(widths))
        grad_params: list[Optional[Tensor]] = [None] * (4 * count)
        grad_x, from_above = None, None
        for l in range(count - 1, -1, -1):
            weight, bias, w, c = params[4 * l:4 * l + 4]
            n, start = widths[l], starts[l]
            zs, ys, acts = states[:, :, start:start + n], states[:, :, start + n:start + 2 * n], acts_of[l]
            sig = torch.sigmoid(c)
            if grad_last is None:
                gz, gy = x.new_zeros(batch, n), x.new_zeros(batch, n)
            else:
                gz = grad_last[:, start:start + n].contiguous()
                gy = grad_last[:, start + n:start + 2 * n].contiguous()
            g, sums = POOL.take((steps, batch, n), acts), x.new_empty(2, batch, n)
            walker.independent_backward(gz, gy, grad_states, start, from_above, zs, ys, acts, w.contiguous(),
                                        sig * dt, alpha, substeps, g, sums)
            if from_above is not None:
                POOL.give(from_above)
            grad_h0[:, start:start + n], grad_h0[:, start + n:start + 2 * n] = gz, gy
            grad_params[4 * l + 2] = sums[0].sum(0)  # dL/dw
            grad_params[4 * l + 3] = sums[1].sum(0) * dt * sig * (1 - sig)  # dL/dc from dL/d delta
            flat = g.view(-1, n)
            if l == 0:
                per_input = per_sample(g.unsqueeze(0), x.shape[0]).reshape(-1, n)
                grad_params[0] = per_input.T @ x.reshape(-1, x.shape[-1])
                grad_params[1] = per_input.sum(0)
                if ctx.needs_input_grad[1]:
                    grad_x = (per_input @ weight).view(x.shape)
                from_above = None
            else:
                below = states[1:, :, start - widths[l - 1]:start].reshape(-1, widths[l - 1])  # y of layer l - 1
                grad_params[4 * l] = flat.T @ below
                grad_params[4 * l + 1] = flat.sum(0)
                from_above = POOL.take((steps, batch, widths[l - 1]), g)
                torch.mm(flat, weight, out=from_above.view(-1, widths[l - 1]))
            POOL.give(g)
        return (grad_h0, grad_x, None, None, None, *grad_params)


def independent_oscillator_scan(h0: Tensor, x: Tensor, weights, biases, w, c, alpha: float, dt: float,
                                substeps: int = 1) -> tuple[Tensor, Tensor]:
    """(states (T, B, S), h_T) of symplectic Euler on stacked independent oscillators (module docstring);
    ``x`` time-major (T, B, m); per layer V_l (n_l, n_{l-1}), b_l, w_l and c_l (n_l,)."""
    layers = len(w)
    if not (len(weights) == len(biases) == len(c) == layers) or layers == 0:
        raise ValueError("weights, biases, w and c need one entry per layer")
    widths = [int(v.shape[0]) for v in w]
    if h0.dim() != 2 or x.dim() != 3 or x.shape[1] != h0.shape[0] or h0.shape[1] != 2 * sum(widths):
        raise ValueError(f"expected h0 (B, {2 * sum(widths)}) and time-major x (T, B, m) with the same B, got h0 "
                         f"{tuple(h0.shape)} and x {tuple(x.shape)}")
    below = [x.shape[-1], *widths[:-1]]
    for l in range(layers):
        for name, tensor, shape in (("weight", weights[l], (widths[l], below[l])), ("bias", biases[l], (widths[l],)),
                                    ("c", c[l], (widths[l],))):
            if tuple(tensor.shape) != shape:
                raise ValueError(f"layer {l + 1}: {name} must be {shape}, got {tuple(tensor.shape)}")
    params = [t for l in range(layers) for t in (weights[l], biases[l], w[l], c[l])]
    return IndependentOscillatorScan.apply(h0, x.contiguous(), float(alpha), float(dt), int(substeps), *params)
