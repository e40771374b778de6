"""The user's right-hand side f as every solver sees it: flat state in and out, counted, checked.

``CheckedField`` turns ``f(t, y)`` on the user's state (a tensor, or a tuple of tensors: ``solvers.pytree``)
into a function of the solver's state (the tensor itself, or the flat concatenation of the tuple), counts
the evaluations (``SolveStats.nfe``) and checks that every derivative has the state's layout, naming the
time. It forwards torchdiffeq's step callbacks of f (``solvers.callbacks``), with the state given back to
them in the user's layout, so both our loops and torchdiffeq find them on it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from solvers.callbacks import ADJOINT_CALLBACKS, STEP_CALLBACKS
from solvers.pytree import State, TreeSpec


def time_str(t: Any) -> str:
    """A time (float or 0-d tensor, possibly requiring grad) for messages."""
    return f"{float(t.detach()) if isinstance(t, Tensor) else float(t):g}"


class CheckedField:
    """``f`` on the solver's state, with ``nfe`` counting its evaluations and its outputs checked.

    ``shape`` is the solver's state shape (the flat length for tuple states). f's step callbacks, when it
    has any, become attributes of the same names taking the solver's state; f's ``linear_part`` (IMEX
    methods, ``solvers.methods.imex_rk``) is forwarded for tensor states; adjoint callbacks are forwarded
    unchanged (torchdiffeq hands them its own augmented state). With ``flat=False`` a tuple state is passed
    through as a tuple (for torchdiffeq, which flattens tuples itself) and only checked.
    """

    def __init__(self, f: Callable[[Tensor, State], State], spec: TreeSpec, shape: torch.Size,
                 flat: bool = True) -> None:
        self.f, self.spec, self.shape, self.nfe, self.flat = f, spec, shape, 0, flat or not spec.is_tuple
        for name in STEP_CALLBACKS:
            callback = getattr(f, name, None)
            if callback is not None:
                setattr(self, name, self._in_user_layout(callback))
        for name in ADJOINT_CALLBACKS:
            callback = getattr(f, name, None)
            if callback is not None:
                setattr(self, name, callback)
        linear = getattr(f, "linear_part", None)  # the linear part of f that IMEX methods take implicitly
        if linear is not None and not spec.is_tuple:
            self.linear_part = linear

    def _in_user_layout(self, callback: Callable) -> Callable:
        if not self.spec.is_tuple or not self.flat:
            return callback
        return lambda t0, y0, dt: callback(t0, self.spec.unflatten(y0), dt)

    def __call__(self, t: Tensor, y: State) -> State:
        self.nfe += 1
        dy = self.f(t, self.spec.unflatten(y) if self.flat else y)
        if self.spec.is_tuple:
            what = f"f(t, y) at t={time_str(t)}"
            if self.flat:
                return self.spec.flatten(dy, what)
            self.spec.check(dy, what)
            return dy
        if not isinstance(dy, Tensor) or dy.shape != self.shape:
            got = tuple(dy.shape) if isinstance(dy, Tensor) else type(dy).__name__
            raise ValueError(f"f(t, y) returned {got} at t={time_str(t)}; it must return a tensor of the "
                             f"state's shape {tuple(self.shape)}")
        return dy
