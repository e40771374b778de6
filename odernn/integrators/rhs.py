"""The right-hand side of a sequence for solvers that take f(t, y): a field with its input path on a grid.

Interval k (0-based) is (t_k, t_{k+1}] and carries the projected sample U_k = V x_{k+1} + b: held on the
whole interval (``hold``) or running from U_k at t_k to U_{k+1} at t_{k+1} (``linear``).
- ``SequenceRHS`` gives f(t, h) one interval at a time (``interval(k)``, the capability ``solvers.jumps``
  asks for), in physical time, on a grid shared by the batch or per sample: the fixed-step loop knows which
  interval it integrates, so no stage can see the wrong sample.
- ``RescaledRHS`` is the same ODE in interval time s in [0, T]: on interval k of sample b,
  t = t_{b,k} + (s - k) (t_{b,k+1} - t_{b,k}) and dh/ds = (t_{b,k+1} - t_{b,k}) f(t, h, u). A change of time
  variable, exact for any grid; every sample's grid times become the integers, shared by the batch, so one
  adaptive solve with jumps at the integers steps onto every sample's own times.
A field with a ``TanhForm`` also gives its Jacobian df/dh in closed form (``jacobian``), which implicit
methods use instead of autograd.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from ..fields.base import VectorField
from ..inputs import InputPath
from .grid import Grid


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


class _FieldOnPath(nn.Module):
    """The field with its inputs: ``value(t, h, k, s)`` is f at time t with the input at fraction s of
    interval k. With ``project_per_call`` the path holds the raw inputs, projected at each evaluation (so that
    torchdiffeq's adjoint, which differentiates f's parameters, reaches the input projection). Counts its
    evaluations in ``nfe``."""

    def __init__(self, field: VectorField, x: Tensor, interpolation: str, project_per_call: bool) -> None:
        super().__init__()
        self.field = field
        self.project_per_call = project_per_call
        self.path = InputPath(x if project_per_call else field.input_projection(x), interpolation)
        self.prepared: Optional[Callable] = None if project_per_call else field.prepare()
        self.x, self.interpolation = x, interpolation
        self.linear_part = field.linear_part  # for IMEX methods (None when the field declares none)
        self._evaluations = [0]  # a list, so counting skips nn.Module.__setattr__ (a tenth of a small step's time)

    @property
    def nfe(self) -> int:
        """Evaluations of the field so far."""
        return self._evaluations[0]

    def value(self, t: Tensor, h: Tensor, k: int, s: Union[float, Tensor]) -> Tensor:
        self._evaluations[0] += 1
        u = self.path.at(k, s)
        if self.prepared is None:
            return self.field(t, h, self.field.input_projection(u))
        return self.prepared(t, h, u)

    @functools.cached_property
    def offsets(self) -> Optional[tuple[InputPath, Tensor, bool]]:
        """(path of C-form offsets V x + b, C, gated) for the closed-form Jacobian; None without a TanhForm."""
        form = None if self.project_per_call else self.field.tanh_form()
        if form is None:
            return None
        with torch.no_grad():  # the Jacobian only steers Newton and the implicit-function backward
            return InputPath(self.x @ form.weight.T + form.bias, self.interpolation), form.matrix.detach(), form.gated

    def jacobian_at(self, h: Tensor, k: int, s: Union[float, Tensor]) -> Tensor:
        path, matrix, gated = self.offsets
        return tanh_jacobian(matrix, h.detach() @ matrix.T, path.at(k, s), gated)


def _host(t: Union[float, Tensor]) -> float:
    return float(t.detach()) if isinstance(t, Tensor) else float(t)


class SequenceRHS(_FieldOnPath):
    """The sequence as pieces for solvers' fixed-step loop: ``interval(k)`` is f(t, h) on interval k of the
    grid (shared (T + 1,) or per sample (B, T + 1)); t may be 0-d or (B, 1), one time per sample."""

    def __init__(self, field: VectorField, x: Tensor, grid: Grid, interpolation: str) -> None:
        super().__init__(field, x, interpolation, project_per_call=False)
        times = grid.times if grid.per_sample else grid.times.unsqueeze(0)
        self.starts = times[:, :-1].unsqueeze(-1).unbind(1)
        self.widths = times.diff(dim=-1).unsqueeze(-1).unbind(1)
        if not grid.per_sample:
            self.starts, self.widths = [v.squeeze(0) for v in self.starts], [v.squeeze(0) for v in self.widths]

    def interval(self, k: int) -> "Interval":
        return Interval(self, k)

    def fraction(self, t: Union[float, Tensor], k: int) -> Union[float, Tensor]:
        """Where t lies in interval k, as a fraction (what a linear input path needs; 0 for a held one)."""
        if self.path.is_constant_on_intervals():
            return 0.0
        return (t - self.starts[k]) / self.widths[k]


class Interval:
    """f(t, h) on one interval of a ``SequenceRHS`` (the sample of that interval, whatever t says), with its
    closed-form Jacobian when the field has a ``TanhForm``."""

    def __init__(self, rhs: SequenceRHS, k: int) -> None:
        self.rhs, self.k = rhs, k

    @property
    def jacobian(self) -> Optional[Callable[[Tensor, Tensor], Tensor]]:
        """The closed-form df/dh, or None; asked only by implicit methods, so explicit scans never form the
        offsets it needs."""
        return None if self.rhs.offsets is None else self._jacobian

    @property
    def linear_part(self) -> Optional[Tensor]:
        return self.rhs.linear_part

    def __call__(self, t: Tensor, h: Tensor) -> Tensor:
        return self.rhs.value(t, h, self.k, self.rhs.fraction(t, self.k))

    def _jacobian(self, t: Tensor, h: Tensor) -> Tensor:
        return self.rhs.jacobian_at(h, self.k, self.rhs.fraction(t, self.k))


class RescaledRHS(_FieldOnPath):
    """dh/ds in interval time s in [0, T] (module docstring), for shared or per-sample grids."""

    def __init__(self, field: VectorField, x: Tensor, grid: Grid, interpolation: str,
                 project_per_call: bool = False) -> None:
        super().__init__(field, x, interpolation, project_per_call)
        times = grid.times if grid.per_sample else grid.times.unsqueeze(0)
        self.starts = times[:, :-1].unsqueeze(-1).unbind(1)  # t_k per sample, (B, 1) or (1, 1)
        self.widths = times.diff(dim=-1).unsqueeze(-1).unbind(1)
        self.length = grid.length
        self.linear_part = None  # dh/ds = width * f: the field's L is not this field's linear part

    def forward(self, s: Tensor, h: Tensor) -> Tensor:
        k = min(max(math.floor(_host(s)), 0), self.length - 1)
        fraction = s - k
        t = self.starts[k] + fraction * self.widths[k]
        return self.widths[k] * self.value(t, h, k, fraction)
