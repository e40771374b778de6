"""Solves handed to torchdiffeq: ``backend="torchdiffeq"`` (its method names) and ``adjoint=True``.

The state goes to torchdiffeq as the user gave it (a tensor or a tuple: torchdiffeq flattens tuples itself,
with its mixed norm and its handling of the adjoint's norm), through a ``CheckedField`` that counts and
checks f's evaluations and carries f's step callbacks. Options are checked against what the torchdiffeq
solver accepts (``solvers.options``), callbacks against what it calls (``valid_callbacks``; torchdiffeq only
warns about the others), and ``adjoint=True`` passes ``adjoint_params`` explicitly: ``f.parameters()`` for an
``nn.Module`` f, else the caller's ``adjoint_params``, so any callable works when its parameters are named.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from solvers import options as option_rules
from solvers.callbacks import STEP_CALLBACKS
from solvers.field import CheckedField
from solvers.pytree import State
from solvers.registry import get_method

ADAPTIVE_TORCHDIFFEQ = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
# Our methods whose tableau torchdiffeq implements identically (its "rk4" is the 3/8 rule).
TORCHDIFFEQ_NAMES = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk38": "rk4",
                     "bosh3": "bosh3", "dopri5": "dopri5", "adaptive_heun": "adaptive_heun"}
ADJOINT_ARGUMENTS = ("adjoint_params", "adjoint_options", "adjoint_rtol", "adjoint_atol", "adjoint_method")


def torchdiffeq_method(method: str, backend: str, adjoint: bool) -> str:
    """torchdiffeq's name for ``method``: ours translated (backend "odernn") or one of its own."""
    from torchdiffeq._impl.odeint import SOLVERS

    if backend == "odernn":
        if method not in TORCHDIFFEQ_NAMES:
            get_method(method)  # unknown names: the registry's error listing ours
            raise ValueError(f"adjoint=True runs torchdiffeq's odeint_adjoint, which has no method identical to "
                             f"{method!r}; use one of {', '.join(TORCHDIFFEQ_NAMES)}, or backend='torchdiffeq' "
                             f"with one of its names")
        return TORCHDIFFEQ_NAMES[method]
    if method not in SOLVERS:
        raise ValueError(f"unknown torchdiffeq method {method!r}; known: {', '.join(SOLVERS)}")
    return method


def prepare_options(f: Any, method: str, options: dict[str, Any], step_size: Optional[float],
                    jumps: Sequence[float], max_steps: Optional[int], like: Tensor) -> Optional[dict[str, Any]]:
    """torchdiffeq's ``options`` for ``method``: ours checked and translated, ``step_size``, jumps as
    ``jump_t``, ``max_steps`` as ``max_num_steps`` (adaptive methods); refuses f's step callbacks that the
    solver would not call."""
    from torchdiffeq._impl.odeint import SOLVERS

    if step_size is not None and method not in ADAPTIVE_TORCHDIFFEQ:  # adaptive methods ignore it, as ours
        if "step_size" in options:
            raise ValueError("step_size given twice: as step_size= and as options['step_size']")
        options = {**options, "step_size": step_size}
    opts = option_rules.for_torchdiffeq(method, options)
    if jumps:
        if method not in ADAPTIVE_TORCHDIFFEQ:
            raise ValueError(f"jumps are handled by torchdiffeq's adaptive methods "
                             f"({', '.join(ADAPTIVE_TORCHDIFFEQ)}), not by {method!r}; with a fixed method put the "
                             f"jump times into t instead")
        if "jump_t" in opts:
            raise ValueError("jumps given twice: as jumps= and as options['jump_t']")
        opts["jump_t"] = torch.tensor(list(jumps), dtype=like.dtype, device=like.device)
    if max_steps is not None and method in ADAPTIVE_TORCHDIFFEQ:
        opts.setdefault("max_num_steps", max_steps)
    unsupported = sorted(name for name in STEP_CALLBACKS if getattr(f, name, None) is not None
                         and name not in SOLVERS[method].valid_callbacks())
    if unsupported:
        raise ValueError(f"f defines {unsupported}, which torchdiffeq's {method!r} never calls (it calls "
                         f"{sorted(SOLVERS[method].valid_callbacks()) or 'none'}); use an adaptive method or our "
                         f"backend (which calls all of them), or remove them")
    return opts or None


def adjoint_arguments(f: Any, adjoint: bool, backend: str, method: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``torchdiffeq.odeint_adjoint`` (``adjoint_params`` always explicit, the adjoint
    method translated like ``method``, the adjoint options checked against it); with ``adjoint=False`` any of
    them is a ``ValueError`` (they would be ignored)."""
    given = {k: v for k, v in arguments.items() if v is not None}
    if not adjoint:
        if given:
            raise ValueError(f"{sorted(given)} configure the adjoint solve and are only used with adjoint=True")
        return {}
    if "adjoint_params" not in given:
        if not isinstance(f, nn.Module):
            raise ValueError("adjoint=True requires f to be a torch.nn.Module (torchdiffeq's odeint_adjoint computes "
                             "gradients for f.parameters(); tensors captured in a closure get none), or the tensors "
                             "to differentiate as adjoint_params=(...)")
        from torchdiffeq._impl.adjoint import find_parameters
        given["adjoint_params"] = tuple(find_parameters(f))
    else:
        given["adjoint_params"] = tuple(given["adjoint_params"])
    if "adjoint_method" in given:
        given["adjoint_method"] = torchdiffeq_method(given["adjoint_method"], backend, True)
    if "adjoint_options" in given:
        given["adjoint_options"] = option_rules.for_torchdiffeq(given.get("adjoint_method", method),
                                                                option_rules.merge(given["adjoint_options"], {}))
    return given


def solve(field: CheckedField, y0: State, t: Tensor, method: str, rtol: float, atol: float,
          options: Optional[dict[str, Any]], adjoint: bool, adjoint_kwargs: dict[str, Any],
          event_fn: Optional[Callable] = None, reverse_time: bool = False):
    """``torchdiffeq.odeint`` or ``odeint_adjoint`` over the output times ``t``, or with ``event_fn``
    ``torchdiffeq.odeint_event`` from ``t[0]`` (then ``(event_t, solution)``)."""
    import torchdiffeq

    interface = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = dict(rtol=rtol, atol=atol, method=method, options=options, **adjoint_kwargs)
    if event_fn is None:
        return interface(field, y0, t, **kwargs)
    return torchdiffeq.odeint_event(field, y0, t[0], event_fn=event_fn, reverse_time=reverse_time,
                                    odeint_interface=interface, **kwargs)

