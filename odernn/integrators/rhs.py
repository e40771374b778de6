"""The right-hand side f(t, h) of a sequence: a field with its input path, for solvers that take f(t, y).

Interval k (0-based) is (t_k, t_{k+1}] and carries the projected sample U_k = V x_{k+1} + b. A time is
located by bisection among the grid times (t exactly on t_{k+1} belongs to interval k; solvers keep stages
on the right side of each jump, ``solvers.jumps``). With ``hold`` the input is U_k on the whole interval;
with ``linear`` it runs from U_k at t_k to U_{k+1} at t_{k+1}. A field with a ``TanhForm`` also gives its
Jacobian df/dh in closed form (``jacobian``), which implicit methods use instead of autograd.
"""
from __future__ import annotations

import bisect
import functools
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..fields.base import VectorField
from ..inputs import InputPath


def tanh_jacobian(matrix: Tensor, pre: Tensor, u: Tensor, gated: bool) -> Tensor:
    """df/dh (B, n, n) of act(h C^T + u) at pre = h C^T: diag(act') C, act' of tanh or of eq. 13's gate."""
    if gated:
        u_z, u_h = u.chunk(2, dim=-1)
        z, k = torch.sigmoid(pre + u_z), torch.tanh(pre + u_h)
        slope = z * (1 - z) * k + z * (1 - k * k)
    else:
        k = torch.tanh(pre + u)
        slope = 1 - k * k
    return slope.unsqueeze(-1) * matrix


class SequenceRHS(nn.Module):
    """f(t, h) = field(t, h, u(t)) on the grid ``times`` (T + 1,) with inputs x (T, B, m).

    With ``project_per_call`` the path holds the raw inputs and projects them at each evaluation (so that
    torchdiffeq's adjoint, which differentiates f's parameters, reaches the input projection); otherwise
    they are projected once. Counts its evaluations in ``nfe``.
    """

    def __init__(self, field: VectorField, x: Tensor, times: Tensor, interpolation: str,
                 project_per_call: bool = False) -> None:
        super().__init__()
        self.field = field
        self.project_per_call = project_per_call
        self.path = InputPath(x if project_per_call else field.input_projection(x), interpolation)
        self.prepared: Optional[Callable] = None if project_per_call else field.prepare()
        self.x, self.interpolation = x, interpolation
        self.times, self.grid = times, times.tolist()
        self.nfe = 0

    def input_at(self, t: Tensor, path: Optional[InputPath] = None) -> Tensor:
        """u(t) on ``path`` (default: the field's projected inputs)."""
        path = path or self.path
        value = float(t.detach()) if isinstance(t, Tensor) else float(t)
        k = min(max(bisect.bisect_left(self.grid, value) - 1, 0), path.length - 1)
        if path.is_constant_on_intervals():
            return path.values[k]
        s = (value - self.grid[k]) / (self.grid[k + 1] - self.grid[k])
        return path.at(k, s)

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        self.nfe += 1
        u = self.input_at(t)
        if self.prepared is None:
            return self.field(t, h, self.field.input_projection(u))
        return self.prepared(t, h, u)

    @functools.cached_property
    def jacobian(self) -> Optional[Callable[[Tensor, Tensor], Tensor]]:
        """df/dh (B, n, n) at (t, h) in closed form when the field has a ``TanhForm``; None otherwise."""
        form = None if self.project_per_call else self.field.tanh_form()
        if form is None:
            return None
        with torch.no_grad():  # the Jacobian only steers Newton and the implicit-function backward
            offsets = InputPath(self.x @ form.weight.T + form.bias, self.interpolation)
            matrix = form.matrix.detach()
        return lambda t, h: tanh_jacobian(matrix, h.detach() @ matrix.T, self.input_at(t, offsets), form.gated)
