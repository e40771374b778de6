"""The fused partitioned Euler scan of LEM (``fields.lem``), with a hand-written BPTT.

On h = [z, y], with u = [u_1, u_2, u_3, u_4] = inp2hid(x) held per sample (the authors' chunk order), one step
of partitioned Euler over (z, y) is the LEM authors' update:

    [r_1, r_2, a] = [sigmoid, sigmoid, tanh](y W_h^T + b_h + [u_1, u_2, u_4]),
    z' = z + dt r_2 (a - z),      b = tanh(z' W_z^T + b_z + u_3),      y' = y + dt r_1 (b - y).

Its adjoint, with (gz', gy') = dL/d(z', y'):

    gQ = tanh'(b) dt r_1 gy',                 gP_1 = sigmoid'(r_1) dt (b - y) gy',
    q = gz' + gQ W_z,                         gP_3 = tanh'(a) dt r_2 q,     gP_2 = sigmoid'(r_2) dt (a - z) q,
    gz = (1 - dt r_2) q,                      gy = (1 - dt r_1) gy' + gP W_h,

two products per step each way (the rates and z's target from y, y's target from z'); the weights' gradients
are large products after the walk (dL/dW_h = sum gP^T y, dL/dW_z = sum gQ^T z'), and the input's from
[gP, gQ] per sample. The walks read the drives [P | Q] = [u_1, u_2, u_4, u_3] + [b_h, b_z] from one
projection by inp2hid with its rows in that order and the biases folded in, so neither the drives nor their
gradients are ever gathered from the authors' chunk order. It computes what ``SteppedScan`` computes for ``partitioned_euler`` /
``symplectic_euler`` on the field (tested equal to 1e-10 in float64, values and gradients).
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .fused import (POOL, gradient_start, held_inputs, input_gradients, per_sample, sigmoid_backward,
                    tanh_backward, walks)


class LEMWalks:
    """The scan's time loops in Python; ``csrc/family_walks.cpp`` holds the same walks compiled, with the same
    names and signatures (``fused.walks`` picks one). Every walk writes into the caller's buffers."""

    @staticmethod
    def lem_forward(states: Tensor, drives: Tensor, drive_weight: Optional[Tensor], w_h: Tensor, w_z: Tensor,
                    rates: Tensor, targets: Tensor, dt: float, substeps: int) -> None:
        """states (steps + 1, B, 2n) with states[0] = h0; drives [P | Q] (T, B, 4n), what y W_h^T and z' W_z^T
        add to, or with ``drive_weight`` the augmented [x, 1] (``fused.held_inputs``); rates [r_1, r_2, a]
        (steps, B, 3n) and targets b (steps, B, n)."""
        if drive_weight is not None:
            drives = drives @ drive_weight
        n = w_z.shape[0]
        spare = states.new_empty(states.shape[1], n)
        w_h_t, w_z_t = w_h.T, w_z.T
        for j in range(targets.shape[0]):
            h, new, drive = states[j], states[j + 1], drives[j // substeps]
            z, y, z_new, y_new = h[:, :n], h[:, n:], new[:, :n], new[:, n:]
            p = torch.addmm(drive[:, :3 * n], y, w_h_t, out=rates[j])
            p[:, :2 * n].sigmoid_()
            a = p[:, 2 * n:].tanh_()
            torch.addcmul(z, p[:, n:2 * n], torch.sub(a, z, out=spare), value=dt, out=z_new)
            b = torch.addmm(drive[:, 3 * n:], z_new, w_z_t, out=targets[j]).tanh_()
            torch.addcmul(y, p[:, :n], torch.sub(b, y, out=spare), value=dt, out=y_new)

    @staticmethod
    def lem_backward(grad_h: Tensor, grad_states: Optional[Tensor], states: Tensor, rates: Tensor, targets: Tensor,
                     w_h: Tensor, w_z: Tensor, grad_drives: Tensor, dt: float, substeps: int) -> None:
        """grad_h (B, 2n): dL/dh_steps in, dL/dh0 out; grad_drives (steps, B, 4n) receives dL/d[P | Q] of
        every step."""
        steps, batch, n = targets.shape
        work, q = grad_h.new_empty(batch, n), grad_h.new_empty(batch, n)
        for j in range(steps - 1, -1, -1):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            z, y = states[j][:, :n], states[j][:, n:]
            r1, r2, a, b = rates[j][:, :n], rates[j][:, n:2 * n], rates[j][:, 2 * n:], targets[j]
            gz, gy = grad_h[:, :n], grad_h[:, n:]
            gp, gq = grad_drives[j][:, :3 * n], grad_drives[j][:, 3 * n:]
            tanh_backward(torch.mul(gy, r1, out=work).mul_(dt), b, grad_input=gq)
            sigmoid_backward(torch.sub(b, y, out=work).mul_(gy).mul_(dt), r1, grad_input=gp[:, :n])
            torch.addmm(gz, gq, w_z, out=q)
            tanh_backward(torch.mul(q, r2, out=work).mul_(dt), a, grad_input=gp[:, 2 * n:])
            sigmoid_backward(torch.sub(a, z, out=work).mul_(q).mul_(dt), r2, grad_input=gp[:, n:2 * n])
            gy.addcmul_(gy, r1, value=-dt).addmm_(gp, w_h)
            torch.addcmul(q, q, r2, value=-dt, out=gz)


def drive_order(n: int, device: torch.device) -> Tensor:
    """inp2hid's rows in the order of the drives [P | Q]: the authors' chunks 1, 2, 4, then 3."""
    return torch.cat([torch.arange(2 * n), torch.arange(3 * n, 4 * n), torch.arange(2 * n, 3 * n)]).to(device)


class LEMScan(torch.autograd.Function):
    """``apply(h0 (B, 2n), x (T, B, m), V (4n, m), b_in (4n,), W_h (3n, n), b_h (3n,), W_z (n, n), b_z (n,),
    dt, substeps) -> (states (T, B, 2n), h_T)``."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, w_h: Tensor, b_h: Tensor, w_z: Tensor,
                b_z: Tensor, dt: float, substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], w_z.shape[0]
        steps = length * substeps
        order = drive_order(n, x.device)
        drive_weight = weight[order]
        walker = walks(h0.device, LEMWalks)
        drives, augmented = held_inputs(x, drive_weight, bias[order] + torch.cat([b_h, b_z]), walker)  # [P | Q]
        states = POOL.take((steps + 1, batch, 2 * n), h0)
        rates = POOL.take((steps, batch, 3 * n), h0)  # [r_1, r_2, a] of every step
        targets = POOL.take((steps, batch, n), h0)  # b of every step
        states[0] = h0
        walker.lem_forward(states, drives, augmented, w_h, w_z, rates, targets, dt, substeps)
        if augmented is None:
            POOL.give(drives)
        for buffer in (states, rates, targets):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, rates, targets, x, drive_weight, w_h, w_z)
        ctx.dt, ctx.substeps = dt, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        states, rates, targets, x, drive_weight, w_h, w_z = ctx.saved_tensors
        dt, substeps = ctx.dt, ctx.substeps
        steps, batch, n = targets.shape
        grad_h = gradient_start(grad_last, states[0])
        if grad_states is not None:
            grad_states = grad_states.contiguous()
        grad_drives = POOL.take((steps, batch, 4 * n), rates)  # dL/d[P | Q] of every step
        walks(grad_h.device, LEMWalks).lem_backward(grad_h, grad_states, states, rates, targets, w_h, w_z,
                                                    grad_drives, dt, substeps)
        grad_x, grad_weight, _ = input_gradients(ctx, per_sample(grad_drives.unsqueeze(0), x.shape[0]), x,
                                                 drive_weight, 1.0)
        flat = grad_drives.view(-1, 4 * n)
        sums = flat.sum(0)
        back = torch.argsort(drive_order(n, x.device))  # the drives' columns back in the authors' chunk order
        grads = [grad_h, grad_x, None if grad_weight is None else grad_weight[back], sums[back],
                 flat[:, :3 * n].T @ states[:-1, :, n:].reshape(-1, n) if ctx.needs_input_grad[4] else None,
                 sums[:3 * n],
                 flat[:, 3 * n:].T @ states[1:, :, :n].reshape(-1, n) if ctx.needs_input_grad[6] else None,
                 sums[3 * n:]]
        POOL.give(grad_drives)
        return (*grads, None, None)


def lem_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, w_h: Tensor, b_h: Tensor, w_z: Tensor,
             b_z: Tensor, dt: float, substeps: int = 1) -> tuple[Tensor, Tensor]:
    """(states (T, B, 2n), h_T) of LEM under partitioned Euler over (z, y) (module docstring); ``x``
    time-major (T, B, m); inp2hid V (4n, m), b (4n,); hid2hid W_h (3n, n), b_h (3n,); transform_z W_z, b_z."""
    n = w_z.shape[0]
    if h0.dim() != 2 or x.dim() != 3 or x.shape[1] != h0.shape[0] or h0.shape[1] != 2 * n:
        raise ValueError(f"expected h0 (B, 2n) and time-major x (T, B, m) with the same B for n={n}, got h0 "
                         f"{tuple(h0.shape)} and x {tuple(x.shape)}")
    expected = {"weight": (4 * n, x.shape[-1]), "bias": (4 * n,), "w_h": (3 * n, n), "b_h": (3 * n,),
                "w_z": (n, n), "b_z": (n,)}
    for name, tensor in zip(expected, (weight, bias, w_h, b_h, w_z, b_z)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(f"{name} must be {expected[name]}, got {tuple(tensor.shape)}")
    return LEMScan.apply(h0, x.contiguous(), weight, bias, w_h, b_h, w_z, b_z, float(dt), int(substeps))
