"""Checks of the inputs every solve shares: the initial state, the output times, the tolerances.

Each raises ``ValueError`` saying what was wrong and what is allowed. Half-precision states (float16,
bfloat16) are refused: with a 11- or 8-bit significand, y + dt * f rounds back to y once dt * |f| is below
half an ulp of y (for y = 1 in bfloat16: dt * |f| < 2^-9 ~ 2e-3), and t + dt rounds back to t likewise, so a
solve with small steps stops moving (an adaptive solve, whose first step is of the order of rtol^(1/p), never
finishes). Solving in float32 and casting the result is the remedy, and the caller's choice.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Sequence, Union

import torch
from torch import Tensor

from solvers.pytree import State, TreeSpec, tree_spec

LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_state(y0: State) -> tuple[TreeSpec, Tensor]:
    """The layout of ``y0`` and the solver's state (``solvers.pytree``): floating point of at least 32 bits,
    finite."""
    spec = tree_spec(y0)
    flat = spec.flatten(y0)
    if not flat.is_floating_point():
        what = "y0 must be a floating-point tensor" if not spec.is_tuple else \
            "the components of y0 must be floating-point tensors"
        raise ValueError(f"{what}, got {type(flat).__name__} of dtype {flat.dtype}")
    if flat.dtype in LOW_PRECISION:
        raise ValueError(
            f"y0 has dtype {flat.dtype}, which the solvers refuse: its epsilon is {torch.finfo(flat.dtype).eps:.1e}, "
            f"so a small step rounds away (y + dt * f == y, t + dt == t) and the solution stops moving; solve in "
            f"float32 or float64 (e.g. y0.float()) and cast the result back")
    if flat.numel() == 0:
        raise ValueError(f"y0 is empty (shape {tuple(flat.shape)}): there is no state to integrate")
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"y0 contains NaN or Inf ({int((~torch.isfinite(flat)).sum())} of {flat.numel()} entries)")
    return spec, flat


def check_times(t: Union[Tensor, Sequence[float]], like: Tensor) -> Tensor:
    """``t`` as a 1-D tensor with the state's dtype and device (differentiably: a ``t`` that requires grad keeps
    its graph), finite and strictly monotonic (increasing or decreasing, as in torchdiffeq)."""
    if isinstance(t, Tensor):
        t = t.to(device=like.device, dtype=like.dtype)
    else:
        t = torch.tensor(t, device=like.device, dtype=like.dtype)
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"t must be a non-empty 1-D tensor of output times, got shape {tuple(t.shape)}")
    times = t.detach().tolist()
    if not all(math.isfinite(x) for x in times):
        raise ValueError(f"t contains NaN or Inf: {times}")
    if len(times) > 1:
        sign = 1.0 if times[1] > times[0] else -1.0
        for k in range(len(times) - 1):
            if not sign * (times[k + 1] - times[k]) > 0.0:
                kind = "repeated" if times[k + 1] == times[k] else "non-monotonic"
                raise ValueError(f"t must be strictly monotonic (increasing or decreasing); {kind} at "
                                 f"t[{k}]={times[k]:g}, t[{k + 1}]={times[k + 1]:g}")
    return t


def check_tolerance(name: str, value: object) -> float:
    """rtol or atol as a float: a real number (or 0-d tensor without grad), finite and >= 0. Per-entry
    tolerances (torchdiffeq accepts tensors) are not supported by our backend."""
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.requires_grad:
            raise ValueError(f"{name} must be a number (a per-entry tensor of tolerances is not supported), got a "
                             f"tensor of shape {tuple(value.shape)}"
                             + (" requiring grad" if value.requires_grad else ""))
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} (per-entry tolerances are not "
                         f"supported)")
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)
