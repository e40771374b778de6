"""Discontinuities of f in t ("jumps"): where a solve must stop, and which side a stage there sees.

A right-hand side f(t, y) that is smooth except at known times tau_1 < tau_2 < ... (a held input changes
there) is integrated segment by segment: every jump is a step boundary, so no step straddles one, and a
stage evaluated at a segment's end belongs to that segment. Time alone cannot say which side of a jump t
is on, so inside segment [a, b] f is called at t clamped to [a+, b-], where a+ = nextafter(a, +inf) when a
is a jump (else a itself) and b- = nextafter(b, -inf) when b is a jump. The evaluation times move by at most
one unit in the last place, at jumps only. This is torchdiffeq's ``jump_t`` / ``perturb`` convention and
diffrax's ``jump_ts``.

A right-hand side that knows its pieces may say so: an object with a method ``interval(k)`` returning f on
the k-th interval between output times (a sequence model's held sample k, say) is asked for that piece
instead of being clamped, which also serves times given per row (``segments`` of a 2-D t).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

Time = Union[float, Tensor]
Field = Callable[[Time, Tensor], Tensor]


def check_jumps(jumps: Union[Tensor, Sequence[float], None], t: Tensor) -> list[float]:
    """The jump times strictly inside the span of ``t`` (others cannot affect the solve), sorted along it.

    ``ValueError`` for NaN/Inf or a tensor that is not 1-D.
    """
    if jumps is None:
        return []
    values = jumps.detach().reshape(-1).tolist() if isinstance(jumps, Tensor) else [float(v) for v in jumps]
    if isinstance(jumps, Tensor) and jumps.dim() > 1:
        raise ValueError(f"jumps must be a 1-D sequence of times, got shape {tuple(jumps.shape)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"jumps contains NaN or Inf: {values}")
    first, last = float(t[0].detach()), float(t[-1].detach())
    lo, hi = sorted((first, last))
    inside = sorted({v for v in values if lo < v < hi})
    return inside if last >= first else inside[::-1]


class OneSided:
    """f(t, y) called at t clamped to [lo, hi]; forwards a ``jacobian(t, y)`` of f the same way, and its
    ``linear_part``."""

    def __init__(self, f: Field, lo: Tensor, hi: Tensor) -> None:
        self.f, self.lo, self.hi = f, lo, hi
        self.linear_part = getattr(f, "linear_part", None)
        inner = getattr(f, "jacobian", None)
        self.jacobian = None if inner is None else (lambda t, y: inner(self.clamp(t), y))

    def clamp(self, t: Time) -> Tensor:
        t = t if isinstance(t, Tensor) else torch.as_tensor(t, dtype=self.lo.dtype, device=self.lo.device)
        return torch.clamp(t, self.lo, self.hi)

    def __call__(self, t: Time, y: Tensor) -> Tensor:
        return self.f(self.clamp(t), y)


@dataclass(frozen=True)
class Segment:
    """One piece [start, end] between consecutive breakpoints (output times and jumps, in solve order).

    ``output`` is the index in t of ``end`` when it is an output time (None for a jump alone);
    ``start`` and ``end`` are 0-d tensors taken from t where they are output times (so gradients with
    respect to t flow through them).
    """

    start: Tensor
    end: Tensor
    start_is_jump: bool
    end_is_jump: bool
    output: Optional[int]
    interval: int = 0

    def restrict(self, f: Field) -> Field:
        """f seen from inside this segment: ``f.interval(k)`` when f offers its pieces, else t clamped to
        [start+, end-] at jump ends (module docstring)."""
        piece = getattr(f, "interval", None)
        if piece is not None:
            return piece(self.interval)
        if not (self.start_is_jump or self.end_is_jump):
            return f
        up = torch.tensor(math.inf, dtype=self.start.dtype, device=self.start.device)
        direction = 1.0 if float(self.end.detach()) >= float(self.start.detach()) else -1.0
        first = torch.nextafter(self.start.detach(), direction * up) if self.start_is_jump else self.start.detach()
        last = torch.nextafter(self.end.detach(), -direction * up) if self.end_is_jump else self.end.detach()
        lo, hi = (first, last) if direction > 0 else (last, first)

        return OneSided(f, lo, hi)


def segments(t: Tensor, jumps: Sequence[float]) -> list[Segment]:
    """The segments of a solve over the output times ``t`` (1-D, strictly monotonic) with ``jumps`` inside;
    for a 2-D t (B, T + 1) of per-row times, the T output intervals, with (B, 1) ends."""
    if t.dim() == 2:
        if jumps:
            raise ValueError("jumps are given as one sequence of times; with per-row output times (a 2-D t) put "
                             "them among the output times or use a right-hand side with interval(k)")
        return [Segment(t[:, k:k + 1], t[:, k + 1:k + 2], False, False, k + 1, k) for k in range(t.shape[1] - 1)]
    times = t.detach().tolist()
    direction = 1.0 if len(times) < 2 or times[-1] >= times[0] else -1.0
    points: list[tuple[float, Optional[int]]] = [(v, k) for k, v in enumerate(times)]
    on_output = set(times)
    points += [(v, None) for v in jumps if v not in on_output]
    points.sort(key=lambda p: direction * p[0])
    jump_set = set(jumps)

    def as_tensor(point: tuple[float, Optional[int]]) -> Tensor:
        value, index = point
        return t[index] if index is not None else torch.tensor(value, dtype=t.dtype, device=t.device)

    result, interval = [], 0
    for a, b in zip(points[:-1], points[1:]):
        result.append(Segment(as_tensor(a), as_tensor(b), a[0] in jump_set, b[0] in jump_set, b[1], interval))
        interval += b[1] is not None
    return result
