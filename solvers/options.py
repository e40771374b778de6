"""Solver options: torchdiffeq's ``options`` dict and our keyword options, checked so none is silently ignored.

``odeint`` takes method options either as keyword arguments (``safety=0.8``) or as torchdiffeq's
``options={"safety": 0.8}``; both are merged here. For our backend every key is mapped to one of ours or
refused with a ``ValueError`` saying what is allowed:

- adaptive methods: ``first_step``, ``safety``, ``min_factor``, ``max_factor``, ``min_step``, ``max_step``
  (torchdiffeq's bounds on every step: a step at ``min_step`` is accepted whatever its error, as there),
  ``norm`` (a function of the state as the user sees it, tensor or tuple, returning a scalar),
  ``stiffness_interval`` (``solvers.stiffness``); torchdiffeq's names ``ifactor`` (= ``max_factor``), ``dfactor`` (= ``min_factor``;
  ours bounds every shrinkage, torchdiffeq's only that after a rejection), ``max_num_steps`` (= ``max_steps``,
  counted over the whole solve, torchdiffeq counts per output interval) and ``jump_t`` (= ``jumps``).
- fixed, implicit and partitioned methods: ``step_size``, and torchdiffeq's fixed-grid ``perturb`` (bool) and
  ``grid_constructor`` (``grid_constructor(f, y0, t)`` returns the grid; outputs between its points are
  interpolated linearly, as torchdiffeq's default ``interp``).
- torchdiffeq options we do not implement (``step_t``, ``dtype``, ``interp``) are refused naming
  ``backend="torchdiffeq"``, which has them.

For ``backend="torchdiffeq"`` the keys are checked against the options its solver class accepts (read from its
constructor, since torchdiffeq itself only warns about unknown ones); ``min_factor``/``max_factor`` are
translated to its ``dfactor``/``ifactor``.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    from solvers.methods import Method

ADAPTIVE = ("safety", "min_factor", "max_factor", "min_step", "max_step", "first_step", "norm", "stiffness_interval")
FIXED = ("step_size", "perturb", "grid_constructor")
ALIASES = {"ifactor": "max_factor", "dfactor": "min_factor", "max_num_steps": "max_steps", "jump_t": "jumps"}
UNSUPPORTED = {
    "step_t": "times to step onto without re-evaluating f (put them into t, or use jumps)",
    "dtype": "the dtype of time (ours is the state's dtype)",
    "interp": "interpolation between grid points (ours lands on every output time; linear with grid_constructor)",
}
TORCHDIFFEQ_TRANSLATION = {"min_factor": "dfactor", "max_factor": "ifactor"}


def merge(options: Optional[Mapping[str, Any]], keywords: Mapping[str, Any]) -> dict[str, Any]:
    """torchdiffeq's ``options`` dict and the keyword options as one dict; a key in both is a ``ValueError``."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a dict of solver options, got {type(options).__name__}")
    both = sorted(set(options) & set(keywords))
    if both:
        raise ValueError(f"options {both} given both as keyword arguments and in options=; give each once")
    return {**options, **keywords}


def for_our_backend(spec: "Method", options: Mapping[str, Any], allowed_arguments: tuple[str, ...]
                    ) -> dict[str, Any]:
    """The options of method ``spec`` for our backend under our names (aliases resolved): the controller's
    for an adaptive method, ``step_size`` for the others.

    ``allowed_arguments`` are odeint's own keyword arguments, listed in the error for an unknown key.
    """
    method = spec.name
    own = ADAPTIVE if spec.adaptive else FIXED
    aliases = ALIASES if spec.adaptive else {}
    allowed = ", ".join((*own, *aliases))
    label = {"fixed": "fixed-step"}.get(spec.kind, spec.kind)
    resolved: dict[str, Any] = {}
    for key, value in options.items():
        if key in UNSUPPORTED:
            raise ValueError(f"torchdiffeq option {key!r} ({UNSUPPORTED[key]}) is not supported by backend 'odernn'; "
                             f"use backend='torchdiffeq', which has it, or drop it")
        if key not in own and key not in aliases:
            if key in ADAPTIVE or key in FIXED or key in ALIASES:
                raise ValueError(f"options [{key!r}] are not used by {label} method {method!r}; its options: {allowed}")
            raise ValueError(f"unknown options [{key!r}] for {label} method {method!r}; allowed: {allowed}; "
                             f"odeint's arguments: {', '.join(allowed_arguments)}")
        name = aliases.get(key, key)
        if name in resolved:
            raise ValueError(f"option {name!r} given twice (as {name!r} and as its torchdiffeq alias)")
        resolved[name] = value
    return resolved


def torchdiffeq_option_names(method: str) -> set[str]:
    """The option names torchdiffeq's solver ``method`` accepts (its constructors' keyword parameters)."""
    from torchdiffeq._impl.odeint import SOLVERS

    names = {"norm"}
    for cls in SOLVERS[method].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or not cls.__module__.startswith("torchdiffeq"):
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names - {"self", "func", "y0", "rtol", "atol", "implicit"}


def for_torchdiffeq(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for torchdiffeq's solver ``method``: our factor names translated, unknown keys refused."""
    allowed = torchdiffeq_option_names(method)
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = TORCHDIFFEQ_TRANSLATION.get(key, key)
        if name not in allowed:
            raise ValueError(f"unknown option {key!r} for torchdiffeq's method {method!r}; it accepts: "
                             f"{', '.join(sorted(allowed))}")
        if name in out:
            raise ValueError(f"option {name!r} given twice (as {name!r} and as {key!r})")
        out[name] = value
    return out
