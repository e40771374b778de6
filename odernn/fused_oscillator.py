"""The fused symplectic Euler scan of coupled damped tanh oscillators (coRNN), with a hand-written BPTT.

On h = [z, y] (``fields.base.OscillatorForm``: z' = tanh(C [z, y] + u) - gamma y - epsilon z, y' = z, with
u = V x + b held per sample), one step of partitioned Euler over the blocks (z, y) is the update of the coRNN
authors' code (its paper's eq. 3 with the damping explicit), and one step of IMEX Euler with the damping and
y' = z implicit (``solvers.IMEX_EULER`` on the form's linear part) is the paper's eq. 3 itself; both are

    a = tanh(C [z, y] + u),   z' = keep z + drive dt (a - gamma y),   y' = y + dt z',

explicit damping keep = 1 - dt epsilon, drive = 1; implicit keep = drive = 1 / (1 + dt epsilon). The adjoint,
with (gz', gy') = dL/d(z', y') and g = dL/d(pre-activation) / dt:

    q = gz' + dt gy',   g = tanh'(a) drive q,   [gz, gy] = dt g C + [keep q, gy' - drive dt gamma q].

Forward: one matrix product and four elementwise passes per step, writing the states and the activations a;
backward: one product and five passes per step, writing g. The gradients of C, V and b are large products
after the walk (dL/dC = dt sum_j g_j^T [z_j, y_j]). It computes what ``SteppedScan`` computes for
``partitioned_euler`` / ``symplectic_euler`` (explicit damping) and ``imex_euler`` (implicit) on the field
(tested equal to 1e-10 in float64, values and gradients) without the generic scan's two field evaluations and autograd graph per step.
"""
from __future__ import annotations

import weakref
from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .fused import POOL, gradient_start, held_inputs, input_gradients, per_sample, tanh_backward, walks


class OscillatorWalks:
    """The scan's time loops in Python; ``csrc/family_walks.cpp`` holds the same walks compiled, with the same
    names and signatures (``fused.walks`` picks one). Every walk writes into the caller's buffers."""

    @staticmethod
    def oscillator_forward(states: Tensor, inputs: Tensor, input_weight: Optional[Tensor], coupling: Tensor,
                           acts: Tensor, gamma: float, keep: float, drive: float, dt: float, substeps: int) -> None:
        """states (steps + 1, B, 2n) with states[0] = h0; inputs the projected u (T, B, n), or with
        ``input_weight`` the augmented [x, 1] (``fused.held_inputs``); acts a (steps, B, n)."""
        projected = inputs if input_weight is None else inputs @ input_weight
        n = coupling.shape[0]
        coupling_t = coupling.T
        for j in range(acts.shape[0]):
            h, new = states[j], states[j + 1]
            a = torch.addmm(projected[j // substeps], h, coupling_t, out=acts[j]).tanh_()
            z_new = torch.mul(h[:, :n], keep, out=new[:, :n])
            z_new.add_(a, alpha=drive * dt).add_(h[:, n:], alpha=-drive * dt * gamma)
            torch.add(h[:, n:], z_new, alpha=dt, out=new[:, n:])

    @staticmethod
    def oscillator_backward(grad_h: Tensor, grad_states: Optional[Tensor], acts: Tensor, coupling: Tensor,
                            grad_u: Tensor, gamma: float, keep: float, drive: float, dt: float,
                            substeps: int) -> None:
        """grad_h (B, 2n): dL/dh_steps in, dL/dh0 out; grad_u (steps, B, n) receives g of every step."""
        n = coupling.shape[0]
        current, spare = grad_h, torch.empty_like(grad_h)
        for j in range(acts.shape[0] - 1, -1, -1):
            if grad_states is not None and (j + 1) % substeps == 0:
                current.add_(grad_states[(j + 1) // substeps - 1])
            q = current[:, :n].add_(current[:, n:], alpha=dt)  # q = gz' + dt gy', in place
            g = tanh_backward(q * drive, acts[j], grad_input=grad_u[j])
            torch.mm(g, coupling, out=spare).mul_(dt)
            spare[:, :n].add_(q, alpha=keep)
            spare[:, n:].add_(current[:, n:]).add_(q, alpha=-drive * dt * gamma)
            current, spare = spare, current
        if current is not grad_h:
            grad_h.copy_(current)


class OscillatorScan(torch.autograd.Function):
    """``apply(h0 (B, 2n), x (T, B, m), V (n, m), b (n,), C (n, 2n), gamma, keep, drive, dt, substeps)``
    ``-> (states (T, B, 2n), h_T)``: z' = keep z + drive dt (a - gamma y) (module docstring)."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, coupling: Tensor, gamma: float,
                keep: float, drive: float, dt: float, substeps: int) -> tuple[Tensor, Tensor]:
        length, batch, n = x.shape[0], h0.shape[0], coupling.shape[0]
        steps = length * substeps
        walker = walks(h0.device, OscillatorWalks)
        inputs, input_weight = held_inputs(x, weight, bias, walker)
        states = POOL.take((steps + 1, batch, 2 * n), h0)
        acts = POOL.take((steps, batch, n), h0)
        states[0] = h0
        walker.oscillator_forward(states, inputs, input_weight, coupling, acts, gamma, keep, drive, dt, substeps)
        if input_weight is None:
            POOL.give(inputs)
        for buffer in (states, acts):
            weakref.finalize(ctx, POOL.give, buffer)
        ctx.save_for_backward(states, acts, x, weight, coupling)
        ctx.gamma, ctx.keep, ctx.drive, ctx.dt, ctx.substeps = gamma, keep, drive, dt, substeps
        ctx.set_materialize_grads(False)
        return states[substeps::substeps], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]) -> tuple:
        states, acts, x, weight, coupling = ctx.saved_tensors
        dt = ctx.dt
        steps, batch, n = acts.shape
        grad_h = gradient_start(grad_last, states[0])
        if grad_states is not None:
            grad_states = grad_states.contiguous()
        grad_u = POOL.take((steps, batch, n), acts)  # g = dL/d(pre-activation) / dt of every step
        walks(grad_h.device, OscillatorWalks).oscillator_backward(grad_h, grad_states, acts, coupling, grad_u,
                                                                  ctx.gamma, ctx.keep, ctx.drive, dt,
                                                                  ctx.substeps)
        grads = [grad_h, *input_gradients(ctx, per_sample(grad_u.unsqueeze(0), x.shape[0]), x, weight, dt), None]
        if ctx.needs_input_grad[4]:
            grads[4] = (grad_u.view(-1, n).T @ states[:-1].reshape(-1, 2 * n)).mul_(dt)
        POOL.give(grad_u)
        return (*grads, None, None, None, None, None)


def oscillator_scan(h0: Tensor, x: Tensor, weight: Tensor, bias: Tensor, coupling: Tensor, gamma: float,
                    epsilon: float, dt: float, substeps: int = 1,
                    implicit_damping: bool = False) -> tuple[Tensor, Tensor]:
    """(states (T, B, 2n), h_T) of symplectic Euler on coupled damped tanh oscillators, the damping explicit
    or, ``implicit_damping``, implicit (IMEX Euler: the coRNN paper's eq. 3; module docstring); ``x``
    time-major (T, B, m), V (n, m), b (n,), C (n, 2n); ``substeps`` steps of size ``dt`` per sample."""
    n = coupling.shape[0]
    if h0.dim() != 2 or x.dim() != 3 or x.shape[1] != h0.shape[0] or h0.shape[1] != 2 * n:
        raise ValueError(f"expected h0 (B, 2n) and time-major x (T, B, m) with the same B for n={n}, got h0 "
                         f"{tuple(h0.shape)} and x {tuple(x.shape)}")
    expected = {"weight": (n, x.shape[-1]), "bias": (n,), "coupling": (n, 2 * n)}
    for name, tensor in (("weight", weight), ("bias", bias), ("coupling", coupling)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(f"{name} must be {expected[name]}, got {tuple(tensor.shape)}")
    dt, epsilon = float(dt), float(epsilon)
    keep, drive = (1.0 / (1.0 + dt * epsilon),) * 2 if implicit_damping else (1.0 - dt * epsilon, 1.0)
    return OscillatorScan.apply(h0, x.contiguous(), weight, bias, coupling, float(gamma), keep, drive, dt,
                                int(substeps))
