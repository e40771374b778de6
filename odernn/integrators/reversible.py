"""Reversible Heun over a sequence with O(1)-memory backpropagation (``solvers.reversible``).

The forward pass keeps only the last pair (y_N, z_N): nothing per step is saved for backward. The backward
pass walks the steps in reverse: it reconstructs (y_n, z_n) from (y_{n+1}, z_{n+1}) with the exact inverse
step, re-runs that one step with autograd and takes its vector-Jacobian product, so the gradients are those
of the discretisation itself (equal to autograd through the same steps up to the rounding of the
reconstruction) for h0, the inputs x and every parameter of the field. What autograd keeps between forward
and backward is the inputs and the parameters, whatever T is; the returned states are the caller's.

Steps: interval k of the grid gets N_k = max over the batch of ceil(width / (step_size / substeps)) equal
steps (per sample dt_{b,k} = width_{b,k} / N_k), since a step of size 0 is not the identity of this scheme:
with per-sample times, a sample's steps (not its ODE) depend on the other samples of its batch. No gradient
flows to the observation times (refused when they require one); frozen parameters are left alone.
At every grid time the input may jump, so f at the start of an interval is evaluated afresh with the new
sample (the step stays exactly invertible: each step uses one interval's f throughout).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn.utils.stateless import _reparametrize_module

import solvers
from solvers import SolveStats, reversible_heun_inverse, reversible_heun_step

from ..fields.base import VectorField
from .base import Integrator, Settings, Solution
from .grid import Grid


def step_plan(grid: Grid, max_step: float) -> tuple[list[int], list[Tensor], list[Tensor]]:
    """Per interval k: the number of steps N_k, the start times t_k and the steps dt_k (0-d or (B, 1))."""
    times = grid.times if grid.per_sample else grid.times.unsqueeze(0)
    widths = times.diff(dim=-1)
    counts = solvers.step_counts(times, max_step).amax(0).tolist()
    shape = (lambda v: v.unsqueeze(-1)) if grid.per_sample else (lambda v: v.squeeze(0))
    starts = [shape(times[:, k]) for k in range(grid.length)]
    steps = [shape(widths[:, k] / n) for k, n in enumerate(counts)]
    return [int(n) for n in counts], starts, steps


class _ReversibleHeunScan(torch.autograd.Function):
    """``apply(h0, x, starts, steps, counts, field, interpolation, *params) -> (states (T, B, n), h_T)``."""

    @staticmethod
    def forward(ctx, h0: Tensor, x: Tensor, starts: list, steps: list, counts: list, field: VectorField,
                *params: Tensor) -> tuple[Tensor, Tensor]:
        """``params`` are the field's parameters, inputs here so that backward can return their gradients:
        through ``matrices()``, through ``input_projection`` and where ``evaluate`` uses one directly."""
        with torch.no_grad():
            mats = field.matrices()
            y = z = h0
            states = []
            for k, n in enumerate(counts):
                f = _interval_field(field, mats, field.input_projection(x[k]))
                f_start = None
                for j in range(n):
                    y, z, f_start = reversible_heun_step(f, starts[k] + j * steps[k], y, z, steps[k], f_start)
                states.append(y)
        ctx.save_for_backward(h0, x, y, z, *params)
        ctx.plan = (starts, steps, counts, field, [name for name, p in field.named_parameters() if p.requires_grad])
        ctx.set_materialize_grads(False)
        return torch.stack(states), y.clone()

    @staticmethod
    def backward(ctx, grad_states: Optional[Tensor], grad_last: Optional[Tensor]):
        h0, x, y, z, *params = ctx.saved_tensors
        starts, steps, counts, field, names = ctx.plan
        # the field's methods must see the parameters the forward saw, even when the module's own were swapped
        # for that call only (torch.func.functional_call): re-bind them for the backward
        with _reparametrize_module(field, dict(zip(names, params))):
            return _ReversibleHeunScan._backward(ctx, grad_states, grad_last, h0, x, y, z, params, starts, steps,
                                                 counts, field)

    @staticmethod
    def _backward(ctx, grad_states, grad_last, h0, x, y, z, params, starts, steps, counts, field):
        gy = torch.zeros_like(y) if grad_last is None else grad_last.clone()
        gz = torch.zeros_like(z)
        with torch.enable_grad():
            mats = field.matrices()
        grad_mats = [torch.zeros_like(m) for m in mats]
        detached = [m.detach() for m in mats]
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[1] else None
        projection_grads: list[Optional[Tensor]] = [None] * len(params)
        for k in reversed(range(len(counts))):
            if grad_states is not None:
                gy.add_(grad_states[k])
            x_k = x[k].detach().requires_grad_(grad_x is not None)
            with torch.enable_grad():
                u_k = field.input_projection(x_k)
            grad_u = torch.zeros_like(u_k)
            f_plain = _interval_field(field, detached, u_k.detach())
            for j in reversed(range(counts[k])):
                t, dt = starts[k] + j * steps[k], steps[k]
                with torch.no_grad():
                    y, z, _ = reversible_heun_inverse(f_plain, t, y, z, dt)
                with torch.enable_grad():
                    y_in, z_in = y.detach().requires_grad_(), z.detach().requires_grad_()
                    local_mats = [m.detach().requires_grad_() for m in mats]
                    u_in = u_k.detach().requires_grad_()
                    y_out, z_out, _ = reversible_heun_step(_interval_field(field, local_mats, u_in), t, y_in, z_in, dt)
                    grads = torch.autograd.grad((y_out, z_out), (y_in, z_in, u_in, *local_mats, *params),
                                                (gy, gz), allow_unused=True)
                gy, gz = grads[0], grads[1]
                grad_u.add_(grads[2])
                for total, g in zip(grad_mats, grads[3:3 + len(mats)]):
                    if g is not None:
                        total.add_(g)
                _accumulate(projection_grads, params, grads[3 + len(mats):])  # parameters f uses directly
            _accumulate(projection_grads, params, torch.autograd.grad(
                u_k, [x_k, *params] if grad_x is not None else list(params), grad_u, allow_unused=True),
                grad_x, k)
        _accumulate(projection_grads, params, torch.autograd.grad(mats, params, grad_mats, allow_unused=True))
        return (gy + gz, grad_x, None, None, None, None, *projection_grads)


def _interval_field(field: VectorField, mats, u: Tensor):
    return lambda t, h: field.evaluate(mats, t, h, u)


def _accumulate(totals: list, params, grads, grad_x: Optional[Tensor] = None, k: int = 0) -> None:
    """Add parameter gradients (and, first, the gradient of x_k when ``grad_x`` is given) to the totals."""
    grads = list(grads)
    if grad_x is not None:
        g = grads.pop(0)
        if g is not None:
            grad_x[k] = g
    for i, g in enumerate(grads[-len(params):] if params else []):
        if g is not None:
            totals[i] = g if totals[i] is None else totals[i] + g


class ReversibleScan(Integrator):
    """Reversible Heun on any field, O(1) memory in T for backward (``solvers.available("reversible")``)."""

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        return method.reversible and settings.interpolation == "hold"

    def integrate(self, field: VectorField, h0: Tensor, x: Tensor, grid: Grid, settings: Settings) -> Solution:
        if grid.times.requires_grad:
            raise ValueError("reversible_heun gives no gradient with respect to the observation times; pass times "
                             "that do not require grad, or use another solver")
        counts, starts, steps = step_plan(grid, settings.step_size / settings.substeps)
        params = [p for p in field.parameters() if p.requires_grad]
        states, last = _ReversibleHeunScan.apply(h0, x, starts, steps, counts, field, *params)
        total = sum(counts)
        return Solution(states, last, SolveStats(nfe=total + len(counts), n_steps=total, n_accepted=total))
