"""The input path u(t) of a sampled sequence (docs/design.md, time and input alignment).

The state h_k lives at time k*eps; sample x_k (1-based) is the input on the interval [(k-1)eps, k*eps).
Interpolation acts on the projected inputs U_k = V x_k + b (the projection is affine, so interpolating U is
projecting the interpolated x):
- ``hold`` (zero-order hold): u(t) = U_k on interval k; with forward Euler this is the papers' recurrence
  h_k = h_{k-1} + eps f(h_{k-1}, x_k).
- ``linear``: u goes linearly from U_k at (k-1)eps to U_{k+1} at k*eps; the last sample is held on the final
  interval. Euler evaluates at the left end, so it still matches the papers with one substep.
Intervals are 0-based in code: interval k spans [k eps, (k+1) eps] and carries ``values[k]``.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

INTERPOLATIONS = ("hold", "linear")


def check_interpolation(kind: str) -> str:
    if kind not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {kind!r}; known: {', '.join(INTERPOLATIONS)}")
    return kind


class InputPath:
    """u(t) from time-major projected inputs ``projected`` (T, B, p): values and slopes unbound once."""

    def __init__(self, projected: Tensor, kind: str = "hold") -> None:
        self.kind = check_interpolation(kind)
        self.length = projected.shape[0]
        self.values = projected.unbind(0)
        self.slopes: Optional[tuple[Tensor, ...]] = None
        if kind == "linear":
            increments = projected[1:] - projected[:-1]
            self.slopes = torch.cat([increments, torch.zeros_like(projected[:1])]).unbind(0)

    def at(self, k: int, s: Union[float, Tensor]) -> Tensor:
        """u at fraction ``s`` in [0, 1] of interval ``k`` (0-based); ``s`` may be a (B, 1) tensor (one
        fraction per sample)."""
        if self.slopes is None or (not isinstance(s, Tensor) and s == 0.0):
            return self.values[k]
        return self.values[k] + s * self.slopes[k]

    def is_constant_on_intervals(self) -> bool:
        return self.slopes is None
