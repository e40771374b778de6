"""The observation times of a sequence: when h_0, h_1, ..., h_T sit.

``Grid.uniform`` is ODERNN's default, t_k = t_0 + k * step_size for every sample. ``Grid.observed`` takes the
caller's times of h_1..h_T, shared (T,) or per sample (B, T), after checking them; h_0 sits at t_0. Sample
x_k is held on (t_{k-1}, t_k] (or interpolated there), so the grid times are where the input may jump.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor


@dataclass(frozen=True)
class Grid:
    """``times`` (T + 1,) shared by the batch or (B, T + 1) per sample, times[..., 0] = t_0; ``step`` is the
    spacing when the grid is ODERNN's uniform one (the fused scans need one step for the whole batch)."""

    times: Tensor
    step: Optional[float] = None

    @classmethod
    def uniform(cls, length: int, step: float, t0: float, like: Tensor) -> "Grid":
        times = torch.arange(length + 1, dtype=like.dtype, device=like.device) * step
        return cls(times + t0 if t0 else times, step)

    @classmethod
    def observed(cls, times: Union[Tensor, list], t0: Union[float, Tensor], batch: int, length: int,
                 like: Tensor) -> "Grid":
        """The caller's times of h_1..h_T, (T,) or (B, T), with h_0 at t0; ``ValueError`` naming what is wrong."""
        if not isinstance(times, Tensor):
            try:
                times = torch.tensor(times)
            except (TypeError, ValueError):
                raise ValueError(f"times must be a tensor of shape (T,) or (B, T), got {type(times).__name__}") from None
        if times.shape not in ((length,), (batch, length)):
            raise ValueError(f"times must have shape (T,) = ({length},) or (B, T) = ({batch}, {length}) to match x, "
                             f"got {tuple(times.shape)}")
        if not times.is_floating_point():
            times = times.to(like.dtype)
        times = times.to(dtype=like.dtype, device=like.device)
        start = torch.as_tensor(t0, dtype=like.dtype, device=like.device)
        if start.dim() != 0:
            raise ValueError(f"t0 must be a number (the time of h0), got shape {tuple(start.shape)}")
        if not bool(torch.isfinite(times).all()) or not bool(torch.isfinite(start)):
            raise ValueError("times (and t0) must be finite; got NaN or Inf")
        full = torch.cat([start.expand(*times.shape[:-1], 1), times], dim=-1)
        steps = full.diff(dim=-1)
        if not bool((steps > 0).all()):
            where = torch.nonzero(steps.reshape(-1, length) <= 0)[0].tolist()
            sample = f"sample {where[0]}, " if times.dim() == 2 else ""
            raise ValueError(f"times must increase strictly within each sample and start after t0={float(start):g}; "
                             f"{sample}times[{where[1]}] = {float(full.reshape(-1, length + 1)[where[0], where[1] + 1]):g} "
                             f"does not exceed the time before it, {float(full.reshape(-1, length + 1)[where[0], where[1]]):g}")
        return cls(full)

    @property
    def per_sample(self) -> bool:
        return self.times.dim() == 2

    @property
    def length(self) -> int:
        return self.times.shape[-1] - 1
