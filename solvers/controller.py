"""The standard step-size controller of embedded Runge-Kutta pairs (Hairer, Norsett, Wanner, *Solving
ODEs I*, section II.4).

With the local error estimate e of a step from y0 to y1, the error ratio is the RMS norm

    err = sqrt( mean_i ( e_i / (atol + rtol * max(|y0_i|, |y1_i|)) )^2 )          (eq. II.4.11)

the step is accepted when err <= 1, and the next step is dt * min(max_factor, max(min_factor,
safety * err^(-1/(q+1)))) (eq. II.4.13) with q + 1 = ``order`` (the higher order of the pair, as in
torchdiffeq). The norm is the RMS norm by default; tuple states use torchdiffeq's mixed norm and a caller may
pass its own (``solvers.pytree``). All step-size arithmetic happens on the host with Python floats and is
detached from autograd.

``stiffness_interval`` sets how often the solve tests for stiffness (``solvers.stiffness``; None: never).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from solvers.pytree import Norm, rms_norm

DEFAULT_MAX_STEPS = 1_000_000
DEFAULT_RTOL, DEFAULT_ATOL = 1e-7, 1e-9
"""The tolerances of every adaptive solve that is not given its own: torchdiffeq's, so its calls run unchanged
(``odeint``, ``odeint_event``, ``StepController``, the solver demo). ODERNN declares its own, looser pair for
training (``odernn.integrators.Settings``)."""
DEFAULT_STIFFNESS_INTERVAL = 1000
"""Accepted steps between two routine stiffness tests (the DOPRI5 code's default NSTIFF)."""


@dataclass(frozen=True)
class StepController:
    """Error-per-step control: tolerances, safety factor, bounds on step growth and shrinkage, step budget,
    and the interval of the stiffness test."""

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    min_step: float = 0.0
    """Every step is at least this long, and a step this short is accepted whatever its error (torchdiffeq's
    ``min_step``)."""
    max_step: float = math.inf
    """Every step is at most this long (torchdiffeq's ``max_step``)."""
    max_steps: int = DEFAULT_MAX_STEPS
    stiffness_interval: Optional[int] = DEFAULT_STIFFNESS_INTERVAL

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.rtol == 0.0 and self.atol == 0.0:
            raise ValueError("rtol and atol cannot both be 0")
        if not 0.0 < self.safety <= 1.0:
            raise ValueError(f"safety must be in (0, 1], got {self.safety}")
        if not 0.0 < self.min_factor < 1.0 < self.max_factor:
            raise ValueError(f"need 0 < min_factor < 1 < max_factor, got {self.min_factor}, {self.max_factor}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not (0.0 <= self.min_step < math.inf and 0.0 < self.max_step and self.min_step <= self.max_step):
            raise ValueError(f"need 0 <= min_step <= max_step (finite min_step, positive max_step), got min_step="
                             f"{self.min_step}, max_step={self.max_step}")
        interval = self.stiffness_interval
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 1):
            raise ValueError(f"stiffness_interval must be an int >= 1 (accepted steps between stiffness tests) or "
                             f"None (no test), got {interval!r}")

    def bounded(self, h: float) -> float:
        """A step size within [min_step, max_step]."""
        return min(max(h, self.min_step), self.max_step)

    def error_ratio(self, error: Tensor, y0: Tensor, y1: Tensor, norm: Norm = rms_norm) -> Tensor:
        """err of eq. II.4.11 as a 0-d tensor (<= 1 means accept), with ``norm`` in place of the RMS norm."""
        scale = self.atol + self.rtol * torch.maximum(y0.abs(), y1.abs())
        return torch.as_tensor(norm(error / scale), dtype=y0.dtype, device=y0.device)

    def factor(self, err: float, order: int) -> float:
        """Factor for the next step size from the error ratio (a non-finite ratio shrinks maximally)."""
        if not math.isfinite(err):
            return self.min_factor
        if err == 0.0:
            return self.max_factor
        return min(self.max_factor, max(self.min_factor, self.safety * err ** (-1.0 / order)))

    def initial_step(self, f: Callable[[Tensor, Tensor], Tensor], t0: Tensor, y0: Tensor, f0: Tensor,
                     order: int, direction: float, norm: Norm = rms_norm) -> float:
        """Starting step size (magnitude), Hairer, Norsett, Wanner, section II.4 "Starting step size".

        Costs one evaluation of ``f``; ``f0 = f(t0, y0)``. Raises ``FloatingPointError`` naming t0 when f0, or
        f at the trial point, is not finite (no step size can be chosen from them).
        """
        def norms(*xs: Tensor) -> list[float]:
            return torch.stack([torch.as_tensor(norm(x), dtype=y0.dtype, device=y0.device) for x in xs]).tolist()

        with torch.no_grad():
            where = f"at t={float(t0.detach()):g}"
            scale = self.atol + self.rtol * y0.abs()
            d0, d1 = norms(y0 / scale, f0 / scale)
            if not math.isfinite(d1):
                raise FloatingPointError(f"f(t, y0) is not finite {where} (NaN or Inf in the derivative of the "
                                         f"initial state), so the solve cannot start; check f at the initial state")
            h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
            f1 = f(t0 + direction * h0, y0 + (direction * h0) * f0)
            d2 = norms((f1 - f0) / scale)[0] / h0
            if not math.isfinite(d2):
                raise FloatingPointError(f"f is not finite a trial step of {h0:.3g} away from the initial state "
                                         f"{where}, so no starting step size can be chosen; pass first_step or check f")
            dmax = max(d1, d2)
            h1 = max(1e-6, h0 * 1e-3) if dmax <= 1e-15 else (0.01 / dmax) ** (1.0 / (order + 1))
            return min(100.0 * h0, h1)
