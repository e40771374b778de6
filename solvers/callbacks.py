"""torchdiffeq's step callbacks: methods of f that a solve calls around every step.

A right-hand side ``f`` may define (torchdiffeq >= 0.2.2, ``torchdiffeq._impl.misc._all_callback_names``)

- ``f.callback_step(t0, y0, dt)`` before every step attempt from (t0, y0) with step ``dt``,
- ``f.callback_accept_step(t0, y0, dt)`` after that attempt is accepted,
- ``f.callback_reject_step(t0, y0, dt)`` after it is rejected (adaptive methods only),

and ``callback_step_adjoint`` etc., called by torchdiffeq's adjoint solve on its backward pass. ``t0`` and
``dt`` are 0-d tensors (``dt`` signed: negative when integrating backwards in time), ``y0`` is the state as the
user sees it (a tuple for tuple states). The fixed-step loop calls ``callback_step`` and, since a fixed step is
never rejected, ``callback_accept_step`` around every step; torchdiffeq's fixed-grid solvers call only
``callback_step``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor

STEP_CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")
ADJOINT_CALLBACKS = tuple(name + "_adjoint" for name in STEP_CALLBACKS)
Callback = Callable[[Tensor, Any, Tensor], Any]


@dataclass(frozen=True)
class Callbacks:
    """The step callbacks a solve found on its right-hand side (None where f has none)."""

    step: Optional[Callback] = None
    accept: Optional[Callback] = None
    reject: Optional[Callback] = None

    @staticmethod
    def of(f: Any) -> "Callbacks":
        """The callbacks defined on ``f`` (``ValueError`` when one is not callable)."""
        found = []
        for name in STEP_CALLBACKS:
            callback = getattr(f, name, None)
            if callback is not None and not callable(callback):
                raise ValueError(f"f.{name} must be callable as {name}(t0, y0, dt), got {type(callback).__name__}")
            found.append(callback)
        return Callbacks(*found)

    @property
    def any(self) -> bool:
        return self.step is not None or self.accept is not None or self.reject is not None

    def call(self, which: str, t0: Tensor, y0: Tensor, dt: Union[float, Tensor]) -> None:
        """Call callback ``which`` ("step", "accept" or "reject") if f defines it; ``dt`` becomes a 0-d tensor."""
        callback = getattr(self, which)
        if callback is not None:
            if not isinstance(dt, Tensor):
                dt = torch.tensor(dt, dtype=t0.dtype, device=t0.device)
            callback(t0, y0, dt)
