"""Terminal events: solve y' = f(t, y) from t0 until ``event_fn(t, y)`` changes sign (torchdiffeq's ``odeint_event``).

The solve takes the method's own steps (adaptive or fixed) and evaluates the event function after each; in the
first step where it changes sign, from (t_a, y_a) over dt, the event time is the root of

    phi(s) = event_fn(t_a + s, Step(t_a, y_a, s)),   s in [0, dt],

where Step is one step of the method itself (no interpolant: the event state is an ordinary step of the solver,
as accurate as its other steps), found by Brent's method (Brent, *Algorithms for Minimization without
Derivatives*, 1973, ch. 4; ``scipy.optimize.brentq``) to ``event_tol`` (default: 4 ulps of the event time). Several
event functions (an event_fn returning a vector) are combined as in torchdiffeq: each is multiplied by its sign
at t0 and the first to reach zero ends the solve (``min``). An event_fn that is 0 at t0 ends it at t0.

Gradients. The computed event time s* (from t_a) solves phi(s*) = 0, and phi depends on theta (y0, t0, the
tensors of f and event_fn) through y_a, t_a and the event function, so by the implicit function theorem

    ds*/dtheta = -(d phi / d theta at fixed s) / (d phi / d s),

and the event state Step(t_a, y_a, s*) moves with s* along the method's own step. Both are built into the
graph (the root itself is found without autograd): D = d phi/ds at s* is computed once by autograd on s and
detached, t_event = t* - (g - [g]) / D with g = phi(s*) evaluated with a graph ([.] detaches), and
y_event = Step(t_a, y_a, t_event - t_a). Their values are t* and the event state; their first derivatives
are the exact derivatives of the computed event time and state (gradcheck). For the exact solution
d phi/ds = dg/dt + dg/dy . f(t*, y*), the formula of torchdiffeq's ``ImplicitFnGradientRerouting``, which
ours matches up to the method's error. A tangential crossing (D = 0) has no derivative; the event time is
then returned without one (with a warning).
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import replace
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from solvers import torchdiffeq_backend as tdq
from solvers.adaptive import EmbeddedPairRun
from solvers.callbacks import Callbacks
from solvers.controller import DEFAULT_ATOL, DEFAULT_RTOL
from solvers.explicit import one_sided_step, take_step
from solvers.field import CheckedField, time_str
from solvers.implicit import NewtonOptions
from solvers.plan import Plan, make_plan
from solvers.pytree import State, TreeSpec
from solvers.stats import SolveStats

DEFAULT_EVENT_MAX_STEPS = 20_000
"""Steps (adaptive: attempts) before an event solve gives up (torchdiffeq's fixed-grid event search: 20000)."""
PartialStep = Callable[[Union[float, Tensor]], Tensor]


class EventFunction:
    """``event_fn`` on the solver's state, its components sign-normalised at (t0, y0) and combined by ``min``,
    so that the event is the first time the result reaches 0 from above."""

    def __init__(self, event_fn: Callable[[Tensor, State], Tensor], spec: TreeSpec, t0: Tensor, y0: Tensor) -> None:
        if not callable(event_fn):
            raise ValueError(f"event_fn must be a function event_fn(t, y) -> tensor, got {type(event_fn).__name__}")
        self.event_fn, self.spec = event_fn, spec
        with torch.no_grad():
            self.sign = torch.sign(self._raw(t0, y0))

    def _raw(self, t: Tensor, y: Tensor) -> Tensor:
        value = self.event_fn(t, self.spec.unflatten(y))
        if not isinstance(value, Tensor) or value.numel() == 0:
            got = "an empty tensor" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"event_fn(t, y) must return a tensor (one value per event), got {got} at "
                             f"t={time_str(t)}")
        return value

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        return (self._raw(t, y) * self.sign).amin()


class AdaptiveMarch:
    """The accepted steps of an adaptive solve from (t0, y0), one per ``next()``, without an end time."""

    def __init__(self, field: CheckedField, plan: Plan, direction: float) -> None:
        self.field, self.pair = field, plan.pair()
        self.solver = EmbeddedPairRun(self.pair, plan.controller, direction, plan.norm, Callbacks.of(field),
                                 out_of_steps="no event yet; raise max_steps or check event_fn")
        self.solver.start(field, plan.t[0], plan.y0, plan.first_step)

    def next(self) -> tuple[Tensor, Tensor, Tensor, Tensor, PartialStep]:
        """(t_a, y_a, t_b, y_b, partial): the next accepted step and ``partial(s)``, a step of size s from t_a."""
        solver = self.solver
        while True:
            if not math.isfinite(solver.t_host + solver.direction * solver.h):
                raise RuntimeError(f"event_fn kept its sign up to t={solver.t_host:g}, where the step size has grown "
                                   f"to {solver.h:.3g}: no event ahead")
            step = solver.attempt(self.field)
            if step is not None:
                break
        t_a, y_a, k1 = step.t0, step.y0, step.ks[0]
        return t_a, y_a, step.t1, step.y1, lambda s: self._partial(t_a, y_a, s, k1)

    def _partial(self, t_a: Tensor, y_a: Tensor, s: Tensor, k1: Tensor) -> Tensor:
        """The state after a step of size s from (t_a, y_a) (inside an accepted step, so its stages solve)."""
        solved = self.pair.stages(self.field, t_a, y_a, s, k1)
        if solved is None:
            raise RuntimeError(f"the stage equations of {self.pair.tableau.name!r} could not be solved for a part "
                               f"(size {time_str(s)}) of the accepted step from t={time_str(t_a)}")
        return solved[0]

    def stats(self) -> SolveStats:
        return self.solver.stats()


class FixedMarch:
    """Steps of size ``step_size`` of a fixed, implicit or partitioned method from (t0, y0), one per ``next()``."""

    def __init__(self, field: CheckedField, plan: Plan, direction: float) -> None:
        if plan.step_size is None:
            raise ValueError(f"solving for an event with fixed-step method {plan.method.name!r} needs step_size "
                             f"(there are no output times to take it from)")
        if plan.grid is not None:
            raise ValueError("grid_constructor is not used when solving for an event (there are no output times "
                             "to build the grid on); pass step_size")
        self.perturb = plan.perturb
        self.field, self.stepper, self.max_steps = field, plan.stepper(), plan.max_steps
        self.dt = direction * plan.step_size
        self.callbacks = Callbacks.of(field)
        self.t, self.y, self.steps = plan.t[0], plan.y0, 0

    def next(self) -> tuple[Tensor, Tensor, Tensor, Tensor, PartialStep]:
        if self.steps >= self.max_steps:
            raise RuntimeError(f"no event in max_steps={self.max_steps} steps of {abs(self.dt):g} (reached "
                               f"t={time_str(self.t)}); raise max_steps or check event_fn")
        t_a, y_a = self.t, self.y
        field = one_sided_step(self.field, t_a, self.dt) if self.perturb else self.field
        y_b = take_step(self.stepper, field, t_a, y_a, self.dt, self.callbacks, self.steps + 1, self.max_steps)
        self.t, self.y, self.steps = t_a + self.dt, y_b, self.steps + 1
        return t_a, y_a, self.t, y_b, lambda s: self.stepper(self.field, t_a, y_a, s)

    def stats(self) -> SolveStats:
        return SolveStats(n_steps=self.steps, n_accepted=self.steps, **self.stepper.counts())


def odeint_event(f: Callable[[Tensor, State], State], y0: State, t0: Union[Tensor, float],
                 event_fn: Callable[[Tensor, State], Tensor], *, reverse_time: bool = False, method: str = "dopri5",
                 step_size: Optional[float] = None, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                 adjoint: bool = False,
                 backend: str = "odernn", max_steps: Optional[int] = None, event_tol: Optional[float] = None,
                 partition: Optional[Sequence[int]] = None, newton: Optional[NewtonOptions] = None,
                 batch_rows: bool = False, return_stats: bool = False, options: Optional[Mapping[str, Any]] = None,
                 adjoint_params: Optional[Sequence[Tensor]] = None, adjoint_options: Optional[Mapping[str, Any]] = None,
                 adjoint_rtol: Optional[float] = None, adjoint_atol: Optional[float] = None,
                 adjoint_method: Optional[str] = None, **keyword_options: Any) -> Any:
    """Solve from (t0, y0) until ``event_fn(t, y)`` reaches 0; returns ``(event_t, solution)`` like torchdiffeq.

    ``event_t`` is a 0-d tensor, ``solution`` stacks y0 and the state at event_t (shape (2, *y0.shape), a tuple
    of such for tuple states). Both are differentiable (implicit function theorem, module docstring) with
    respect to y0, t0 and the tensors of f and event_fn. ``reverse_time`` integrates towards decreasing t.
    ``method`` and the other arguments are those of ``solvers.odeint``; a fixed-step method needs
    ``step_size``. ``max_steps`` defaults to ``DEFAULT_EVENT_MAX_STEPS``; ``event_tol`` is the accuracy of the
    event time (default: 4 ulps). ``return_stats=True`` appends a ``SolveStats``. With ``adjoint=True`` or
    ``backend="torchdiffeq"`` the solve is torchdiffeq's ``odeint_event`` (which interpolates to find the event).
    """
    t0 = t0 if isinstance(t0, Tensor) else torch.tensor(float(t0), dtype=torch.float64)
    if t0.numel() != 1:
        raise ValueError(f"t0 must be a single time (a number or a tensor with one entry), got shape {tuple(t0.shape)}")
    t0 = t0.reshape(())
    if event_tol is not None and not (isinstance(event_tol, (int, float)) and math.isfinite(event_tol)
                                      and event_tol > 0):
        raise ValueError(f"event_tol must be a finite number > 0, got {event_tol!r}")
    direction = -1.0 if reverse_time else 1.0
    times = torch.stack([t0, t0.detach() + direction])  # the direction of time, as torchdiffeq's odeint_event
    adjoint_arguments = dict(adjoint_params=adjoint_params, adjoint_options=adjoint_options,
                             adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol, adjoint_method=adjoint_method)
    plan = make_plan(f, y0, times, method, step_size, rtol, atol, adjoint, backend, max_steps, partition, None, newton,
                     batch_rows, options, keyword_options, adjoint_arguments, EVENT_ARGUMENTS, DEFAULT_EVENT_MAX_STEPS)
    if plan.jumps:
        raise ValueError("jumps (options['jump_t']) are not supported when solving for an event")
    field = plan.checked_field(f)
    if plan.torchdiffeq:
        event_t, solution = tdq.solve(field, y0, plan.t, plan.tdq_method, plan.rtol, plan.atol, plan.tdq_options,
                                      adjoint, plan.adjoint_kwargs, event_fn=event_fn, reverse_time=reverse_time)
        return (event_t, solution, SolveStats(nfe=field.nfe)) if return_stats else (event_t, solution)
    event = EventFunction(event_fn, plan.spec, plan.t[0], plan.y0)
    march = (AdaptiveMarch if plan.method.adaptive else FixedMarch)(field, plan, direction)
    event_t, y_event = _locate(event, march, plan, event_tol)
    solution = plan.spec.unflatten(torch.stack([plan.y0, y_event]), (2,))
    if not return_stats:
        return event_t, solution
    return event_t, solution, replace(march.stats(), nfe=field.nfe)


def _locate(event: EventFunction, march: Any, plan: Plan,
            event_tol: Optional[float]) -> tuple[Tensor, Tensor]:
    """March until the combined event value turns <= 0, find the root in that step, attach the gradients."""
    t0, y0 = plan.t[0], plan.y0
    with torch.no_grad():
        c_a = float(event(t0, y0))
    if c_a == 0.0:
        return t0, y0
    while True:
        t_a, y_a, t_b, y_b, partial = march.next()
        with torch.no_grad():
            c_b, finite = torch.stack([event(t_b, y_b), torch.isfinite(y_b).all().to(y_b.dtype)]).tolist()
        if not finite:
            raise FloatingPointError(f"the state became non-finite between t={time_str(t_a)} and t={time_str(t_b)} "
                                     f"before any event; reduce the step size")
        if not math.isfinite(c_b):
            raise FloatingPointError(f"event_fn returned NaN or Inf at t={time_str(t_b)}")
        if c_b <= 0.0:
            break
        c_a = c_b
    start = t_a.detach()
    span = float(t_b.detach()) - float(start)

    def phi(s: float) -> float:
        if s == 0.0:
            return c_a
        if s == span:
            return c_b
        with torch.no_grad():
            return float(event(start + s, partial(s)))

    eps = torch.finfo(y0.dtype).eps
    xtol = event_tol if event_tol is not None else 4.0 * eps * max(1.0, abs(float(start)), abs(float(start) + span))
    from scipy.optimize import brentq  # here, not at import: scipy.optimize takes ~0.5 s to load

    s_star = brentq(phi, min(0.0, span), max(0.0, span), xtol=xtol, rtol=4 * torch.finfo(torch.float64).eps,
                    maxiter=200)
    return _with_implicit_gradients(event, partial, t_a, start + s_star)


def _with_implicit_gradients(event: EventFunction, partial: PartialStep, t_a: Tensor,
                             t_star: Tensor) -> tuple[Tensor, Tensor]:
    """(t_event, y_event) with the values (t_star, Step(t_a, y_a, t_star - t_a)) and the derivatives of the
    module docstring."""
    if not torch.is_grad_enabled():
        return t_star, partial(t_star - t_a)
    with torch.enable_grad():
        s = (t_star - t_a).detach().requires_grad_(True)
        c = event(t_a.detach() + s, partial(s))
        slope = torch.autograd.grad(c, s, allow_unused=True)[0] if c.requires_grad else None
    if slope is None or not bool(torch.isfinite(slope)) or float(slope) == 0.0:
        warnings.warn(f"event_fn crosses zero tangentially at t={time_str(t_star)} (its derivative along the solution "
                      f"is 0): the event time has no derivative and is returned without one")
        return t_star, partial(t_star - t_a)
    c_live = event(t_star, partial(t_star - t_a))
    t_event = t_star - (c_live - c_live.detach()) / slope.detach()
    return t_event, partial(t_event - t_a)


EVENT_ARGUMENTS = tuple(name for name, p in inspect.signature(odeint_event).parameters.items()
                        if name not in ("f", "y0", "t0", "event_fn") and p.kind is not p.VAR_KEYWORD)
