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
[gP_1, gP_2, gQ, gP_3] per sample. It computes what ``SteppedScan`` computes for ``partitioned_euler`` /
``symplectic_euler`` on the field (tested equal to 1e-10 in float64, values and gradients).
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .fused import POOL, input_gradients, per_sample, project, sigmoid_backward, tanh_backward


class LEMScan(torch.autograd.Function):
    """``apply(h0 (B, 2n), x (T, B, m), V (4n, m), b_in (4n,), W_h (3n, n), b_h (3n,), W_z (n, n), b_z (n,),
    dt, substeps) -> (states (T, B, 2n), h_T)``."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, w_h: Tensor, b_h: Tensor, w_z: Tensor,
                b_z: Tensor, dt: float, substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], w_z.shape[0]
        steps = length * substeps
        u = project(x, weight, bias)  # (T, B, 4n)
        drive_p = torch.cat([u[..., :2 * n], u[..., 3 * n:]], -1).add_(b_h)  # what y W_h^T adds to
        drive_q = u[..., 2 * n:3 * n] + b_z  # what z' W_z^T adds to
        POOL.give(u)
        states = POOL.take((steps + 1, batch, 2 * n), h0)
        rates = POOL.take((steps, batch, 3 * n), h0)  # [r_1, r_2, a] of every step
        targets = POOL.take((steps, batch, n), h0)  # b of every step
        states[0] = h0
        spare = h0.new_empty(batch, n)
        w_h_t, w_z_t = w_h.T, w_z.T
        for j in range(steps):
            h, new = states[j], states[j + 1]
            z, y, z_new, y_new = h[:, :n], h[:, n:], new[:, :n], new[:, n:]
            p = torch.addmm(drive_p[j // substeps], y, w_h_t, out=rates[j])
            p[:, :2 * n].sigmoid_()
            a = p[:, 2 * n:].tanh_()
            torch.addcmul(z, p[:, n:2 * n], torch.sub(a, z, out=spare), value=dt, out=z_new)
            b = torch.addmm(drive_q[j // substeps], z_new, w_z_t, out=targets[j]).tanh_()
            torch.addcmul(y, p[:, :n], torch.sub(b, y, out=spare), value=dt, out=y_new)
        for buffer in (states, rates, targets):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, rates, targets, x, weight, w_h, w_z)
        ctx.dt, ctx.substeps = dt, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        states, rates, targets, x, weight, w_h, w_z = ctx.saved_tensors
        dt, substeps = ctx.dt, ctx.substeps
        steps, batch, n = targets.shape
        grad_h = torch.zeros_like(states[0]) if grad_last is None else grad_last.clone(
            memory_format=torch.contiguous_format)
        grad_p = POOL.take((steps, batch, 3 * n), rates)  # dL/d[P_1, P_2, P_3]
        grad_q = POOL.take((steps, batch, n), rates)  # dL/dQ
        work, q = grad_h.new_empty(batch, n), grad_h.new_empty(batch, n)
        for j in range(steps - 1, -1, -1):
            if grad_states is not None and (j + 1) % substeps == 0:
                grad_h.add_(grad_states[(j + 1) // substeps - 1])
            z, y = states[j][:, :n], states[j][:, n:]
            r1, r2, a, b = rates[j][:, :n], rates[j][:, n:2 * n], rates[j][:, 2 * n:], targets[j]
            gz, gy = grad_h[:, :n], grad_h[:, n:]
            gp, gq = grad_p[j], grad_q[j]
            tanh_backward(torch.mul(gy, r1, out=work).mul_(dt), b, grad_input=gq)
            sigmoid_backward(torch.sub(b, y, out=work).mul_(gy).mul_(dt), r1, grad_input=gp[:, :n])
            torch.addmm(gz, gq, w_z, out=q)
            tanh_backward(torch.mul(q, r2, out=work).mul_(dt), a, grad_input=gp[:, 2 * n:])
            sigmoid_backward(torch.sub(a, z, out=work).mul_(q).mul_(dt), r2, grad_input=gp[:, n:2 * n])
            gy.addcmul_(gy, r1, value=-dt).addmm_(gp, w_h)
            torch.addcmul(q, q, r2, value=-dt, out=gz)
        grad_u = torch.cat([grad_p[..., :2 * n], grad_q, grad_p[..., 2 * n:]], -1)
        grads = [grad_h, *input_gradients(ctx, per_sample(grad_u.unsqueeze(0), x.shape[0]), x, weight, 1.0)]
        flat_p, flat_q = grad_p.view(-1, 3 * n), grad_q.view(-1, n)
        grads += [flat_p.T @ states[:-1, :, n:].reshape(-1, n) if ctx.needs_input_grad[4] else None,
                  flat_p.sum(0) if ctx.needs_input_grad[5] else None,
                  flat_q.T @ states[1:, :, :n].reshape(-1, n) if ctx.needs_input_grad[6] else None,
                  flat_q.sum(0) if ctx.needs_input_grad[7] else None]
        for buffer in (grad_p, grad_q):
            POOL.give(buffer)
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
