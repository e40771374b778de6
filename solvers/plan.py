"""A solve's arguments resolved into one checked plan, shared by ``odeint`` and ``odeint_event``.

``make_plan`` validates the state (``solvers.validate``), the times, the tolerances, the method and every
option (``solvers.options``), refusing any argument the chosen path would ignore: our backend's
``partition``/``newton``/``batch_rows`` with torchdiffeq, the adjoint's arguments without ``adjoint=True``,
options of another kind of method. Its result says which path runs (ours or torchdiffeq's) with what.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from torch import Tensor

from solvers import options as option_rules
from solvers import torchdiffeq_backend as tdq
from solvers.callbacks import STEP_CALLBACKS
from solvers.controller import DEFAULT_MAX_STEPS, StepController
from solvers.field import CheckedField
from solvers.implicit import NewtonOptions
from solvers.jumps import check_jumps
from solvers.pytree import Norm, State, TreeSpec, rms_norm
from solvers.registry import Method, get_method
from solvers.methods import Stepper
from solvers.pair import Pair
from solvers.validate import check_state, check_times, check_tolerance

BACKENDS = ("odernn", "torchdiffeq")


@dataclass
class Plan:
    """What a solve runs: the state's layout ``spec`` and solver state ``y0``, the times ``t`` (state dtype),
    and either our ``method`` (with the adaptive ``controller``, ``first_step`` and ``norm``, or the fixed
    ``step_size`` and stepper arguments) or torchdiffeq's (``tdq_method``, ``tdq_options``,
    ``adjoint_kwargs``)."""

    spec: TreeSpec
    y0: Tensor
    t: Tensor
    rtol: float
    atol: float
    max_steps: int
    jumps: list[float]
    step_size: Optional[float] = None
    method: Optional[Method] = None
    controller: Optional[StepController] = None
    first_step: Optional[float] = None
    norm: Norm = rms_norm
    stepper_args: dict[str, Any] = field(default_factory=dict)
    batch_rows: bool = False
    perturb: bool = False
    grid: Optional[Tensor] = None
    tdq_method: Optional[str] = None
    tdq_options: Optional[dict[str, Any]] = None
    adjoint_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def torchdiffeq(self) -> bool:
        return self.tdq_method is not None

    def checked_field(self, f: Callable) -> CheckedField:
        """f as the chosen path calls it (tuple states flattened for ours, kept for torchdiffeq)."""
        return CheckedField(f, self.spec, self.y0.shape, flat=not self.torchdiffeq)

    def stepper(self) -> Stepper:
        """A fresh stepper of our non-adaptive ``method`` (it carries its own counters)."""
        return self.method.stepper(**self.stepper_args)

    def pair(self) -> Pair:
        """A fresh embedded pair of our adaptive ``method`` (an implicit one keeps its Jacobian and counters)."""
        return self.method.pair(self.controller, self.norm, rows=self.batch_rows)


def make_plan(f: Callable, y0: State, t: Union[Tensor, Sequence[float]], method: str, step_size: Optional[float],
              rtol: Any, atol: Any, adjoint: bool, backend: str, max_steps: Optional[int],
              partition: Optional[Sequence[int]], jumps: Union[Tensor, Sequence[float], None],
              newton: Optional[NewtonOptions], batch_rows: bool, options: Optional[Mapping[str, Any]],
              keyword_options: Mapping[str, Any], adjoint_arguments: Mapping[str, Any],
              odeint_arguments: tuple[str, ...], default_max_steps: int = DEFAULT_MAX_STEPS) -> Plan:
    """Check every argument of a solve and resolve them into a ``Plan`` (``ValueError`` naming the problem).

    ``max_steps`` None means not given (then ``default_max_steps``, or torchdiffeq's own limit);
    ``odeint_arguments`` are listed in the error for an unknown option.
    """
    spec, flat = check_state(y0)
    times = check_times(t, flat)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known backends: {', '.join(BACKENDS)}")
    if step_size is not None:
        step_size = _positive("step_size", step_size)
    if max_steps is not None:
        _check_max_steps(max_steps)
    rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
    merged = option_rules.merge(options, keyword_options)
    plan = Plan(spec, flat, times, rtol, atol, default_max_steps if max_steps is None else max_steps,
                check_jumps(jumps, times), step_size)
    if adjoint or backend == "torchdiffeq":
        ours = {"partition": partition, "newton": newton, "batch_rows": batch_rows or None}
        misplaced = sorted(k for k, v in ours.items() if v is not None)
        if misplaced:
            raise ValueError(f"{misplaced} are options of backend 'odernn' without adjoint; torchdiffeq "
                             f"(backend='torchdiffeq' or adjoint=True) has no such option")
        plan.tdq_method = tdq.torchdiffeq_method(method, backend, adjoint)
        plan.adjoint_kwargs = tdq.adjoint_arguments(f, adjoint, backend, plan.tdq_method, dict(adjoint_arguments))
        plan.tdq_options = tdq.prepare_options(f, plan.tdq_method, merged, step_size, plan.jumps, max_steps, flat)
        return plan
    tdq.adjoint_arguments(f, False, backend, "", dict(adjoint_arguments))  # refuses them without adjoint
    plan.method = spec_method = get_method(method)
    unused = sorted(name for name in STEP_CALLBACKS
                    if getattr(f, name, None) is not None and name not in spec_method.callbacks)
    if unused:  # torchdiffeq's warning, word for word: f defines a callback this method never calls
        warnings.warn("Solver '{}' does not support callbacks {}".format(method, set(unused)))
    resolved = option_rules.for_our_backend(spec_method, merged, odeint_arguments)
    if "step_size" in resolved:
        if step_size is not None:
            raise ValueError("step_size given twice: as step_size= and as options['step_size']")
        plan.step_size = _positive("step_size", resolved.pop("step_size"))
    if "max_steps" in resolved:
        if max_steps is not None:
            raise ValueError("max_steps given twice: as max_steps= and as options['max_num_steps']")
        plan.max_steps = _check_max_steps(resolved.pop("max_steps"))
    if "jumps" in resolved:
        if jumps is not None:
            raise ValueError("jumps given twice: as jumps= and as options['jump_t']")
        plan.jumps = check_jumps(resolved.pop("jumps"), times)
    if batch_rows and (flat.dim() != 2 or spec.is_tuple):
        raise ValueError(f"batch_rows=True needs y0 as one tensor of shape (batch, n), got "
                         f"{'a tuple' if spec.is_tuple else tuple(flat.shape)}")
    if spec_method.adaptive:
        spec_method.check_options(partition=partition, newton=newton, batch_rows=batch_rows)
        plan.batch_rows = bool(batch_rows)
        first_step = resolved.pop("first_step", None)
        plan.first_step = None if first_step is None else _positive("first_step", first_step)
        norm = resolved.pop("norm", None)
        if norm is not None and not callable(norm):
            raise ValueError(f"norm must be a function of the state returning a scalar, got {type(norm).__name__}")
        plan.norm = spec.wrap_norm(norm) if norm is not None else spec.mixed_norm if spec.is_tuple else rms_norm
        plan.controller = StepController(rtol=rtol, atol=atol, max_steps=plan.max_steps, **resolved)
        return plan
    plan.perturb = resolved.pop("perturb", False)
    if not isinstance(plan.perturb, bool):
        raise ValueError(f"perturb must be True or False, got {plan.perturb!r}")
    constructor = resolved.pop("grid_constructor", None)
    if constructor is not None:
        plan.grid = _grid(constructor, f, y0, plan, times)
    plan.stepper_args = dict(partition=partition, state_size=flat.shape[-1] if flat.dim() else 1, newton=newton,
                             rows=batch_rows)
    plan.stepper()  # validates partition and newton now
    return plan


def _grid(constructor: Any, f: Callable, y0: State, plan: Plan, times: Tensor) -> Tensor:
    """torchdiffeq's ``grid_constructor(f, y0, t)``: a 1-D grid from t[0] to t[-1], strictly monotonic in t's
    direction, in t's dtype; refused with step_size, jumps or per-row times (torchdiffeq has none of them)."""
    if not callable(constructor):
        raise ValueError(f"grid_constructor must be a function (f, y0, t) -> grid, got {type(constructor).__name__}")
    if plan.step_size is not None:
        raise ValueError("step_size and grid_constructor are mutually exclusive arguments (as in torchdiffeq)")
    if plan.jumps or times.dim() != 1:
        raise ValueError("grid_constructor takes one 1-D t and no jumps (put the jumps into the grid)")
    grid = constructor(f, y0, times)
    if not isinstance(grid, Tensor) or grid.dim() != 1 or len(grid) < 2 or not grid.is_floating_point():
        got = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise ValueError(f"grid_constructor must return a 1-D float tensor of at least 2 times, got {got}")
    grid = grid.to(times.dtype)
    steps = grid.diff() * (1.0 if float(times[-1]) >= float(times[0]) else -1.0)
    if float(grid[0]) != float(times[0]) or float(grid[-1]) != float(times[-1]) or not bool((steps > 0).all()):
        raise ValueError(f"grid_constructor's grid must run from t[0] = {float(times[0]):g} to t[-1] = "
                         f"{float(times[-1]):g}, strictly monotonic in the direction of t; got "
                         f"{grid.detach().tolist()[:6]}{' ...' if len(grid) > 6 else ''}")
    return grid


def _check_max_steps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {value!r}")
    return value


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not (math.isfinite(number) and number > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {number}")
    return number
