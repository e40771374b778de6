"""``odeint``: solve y' = f(t, y) at the output times ``t``, with torchdiffeq's calling convention."""
from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from torch import Tensor

from solvers import torchdiffeq_backend as tdq
from solvers.adaptive import integrate_adaptive
from solvers.controller import DEFAULT_ATOL, DEFAULT_MAX_STEPS, DEFAULT_RTOL
from solvers.explicit import integrate_fixed
from solvers.implicit import NewtonOptions
from solvers.plan import make_plan
from solvers.pytree import State
from solvers.stats import SolveStats


def odeint(f: Callable[[Tensor, State], State], y0: State, t: Union[Tensor, Sequence[float]],
           method: str = "rk4", step_size: Optional[float] = None, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
           adjoint: bool = False, return_stats: bool = False, backend: str = "odernn",
           check_finite: bool = True, max_steps: int = DEFAULT_MAX_STEPS,
           partition: Optional[Sequence[int]] = None, jumps: Union[Tensor, Sequence[float], None] = None,
           newton: Optional[NewtonOptions] = None, batch_rows: bool = False, *,
           options: Optional[Mapping[str, Any]] = None, event_fn: Optional[Callable] = None,
           adjoint_params: Optional[Sequence[Tensor]] = None, adjoint_options: Optional[Mapping[str, Any]] = None,
           adjoint_rtol: Optional[float] = None, adjoint_atol: Optional[float] = None,
           adjoint_method: Optional[str] = None, **keyword_options: Any) -> Any:
    """Solve y' = f(t, y), y(t[0]) = y0, returning y at every time of ``t``: shape (len(t), *y0.shape).

    - ``y0``: a floating-point tensor of float32 or float64 (half precision is refused: ``solvers.validate``),
      or a tuple of such tensors, in which case ``f`` takes and returns tuples and the result is a tuple of
      stacked tensors (torchdiffeq's tuple states, ``solvers.pytree``; adaptive methods then use its mixed norm).
    - ``f(t, y)`` gets ``t`` as a 0-d tensor with y0's dtype and device and returns dy/dt shaped like y.
    - ``t``: 1-D, finite, strictly increasing or strictly decreasing (as in torchdiffeq). Every method's
      output is differentiable with respect to ``t`` (and y0 and f's tensors).
    - ``method``: a name from ``solvers.available()``. Fixed methods take ``step_size`` (default: the
      spacing of ``t``; an interval that ``step_size`` does not divide gets ceil(interval / step_size)
      equal substeps) and land on every output time. Adaptive methods use ``rtol``/``atol`` (``step_size`` is
      ignored) and step exactly onto every output time; their options (``solvers.options``) set the
      controller's ``safety``, ``min_factor``, ``max_factor``, a ``first_step``, the error ``norm`` and the
      ``stiffness_interval`` of the stiffness test (``solvers.stiffness``: a problem detected as stiff raises
      ``StiffnessError`` suggesting an implicit method). The adaptive implicit methods
      (``available("adaptive_implicit")``: kvaerno3, kvaerno4, trbdf2; ``solvers.dirk``) take the same
      options and solve their stages by simplified Newton.
      ``partitioned_euler`` needs ``partition``, the block sizes of y's last dimension. Implicit methods
      (``available("implicit")``) step like fixed ones and solve their stages by Newton's method with the
      ``newton`` options (``NewtonOptions(tol, max_iters)``); gradients use the implicit function theorem.
    - ``options`` (torchdiffeq's dict) and extra keyword arguments are the method's options, merged; torchdiffeq's
      names (``ifactor``, ``dfactor``, ``max_num_steps``, ``jump_t``, ``step_size``) are accepted, and so are its
      fixed-grid ``perturb`` (each step sees f from its own side at both ends) and ``grid_constructor`` (steps on
      the grid it returns, outputs interpolated linearly); options we do not implement and unknown keyword
      arguments raise ``ValueError`` listing the allowed ones.
    - ``jumps``: times where f is discontinuous in t (``solvers.jumps``): no step straddles one, and a stage
      evaluated there sees the side of the step it belongs to (torchdiffeq's ``jump_t``).
    - ``batch_rows``: y0 is (B, n) and f treats its rows as B separate systems (a batch of trajectories), so an
      implicit method (fixed or adaptive) solves B stage systems of size s*n instead of one of size s*B*n.
    - f's torchdiffeq step callbacks (``callback_step``, ``callback_accept_step``, ``callback_reject_step``)
      are called around every step (``solvers.callbacks``).
    - ``backend="torchdiffeq"``: ``method`` is one of torchdiffeq's names (dopri8, rk4 = 3/8 rule, ...),
      ``step_size`` and the options go to its ``options`` (checked against what its solver accepts).
    - ``adjoint=True``: solve with ``torchdiffeq.odeint_adjoint`` (O(1) memory in the number of steps,
      gradients by solving the adjoint ODE backwards). Gradients go to ``f.parameters()`` when f is an
      ``nn.Module``, else to ``adjoint_params`` (required then); ``adjoint_options``, ``adjoint_rtol``,
      ``adjoint_atol`` and ``adjoint_method`` configure the backward solve and are refused without
      ``adjoint=True``. With ``backend="odernn"`` only methods that torchdiffeq implements identically are
      allowed (euler, midpoint, heun, rk38, bosh3, dopri5, adaptive_heun); its adaptive solvers interpolate at
      output times rather than stepping onto them.
    - ``event_fn``: as in torchdiffeq, solve from ``t[0]`` until ``event_fn(t, y)`` changes sign (``t`` must
      have 2 entries; the direction of ``t[1]`` sets the direction of time) and return ``(event_t, solution)``
      (``solvers.events.odeint_event``).
    - ``check_finite``: a fixed-step solve whose state turns non-finite raises ``FloatingPointError``
      naming the interval (checked once per output time, read back once at the end). Adaptive solves always
      stop at the first non-finite f (``solvers.adaptive``).
    - ``max_steps``: at most this many steps (adaptive: attempts) in our backend; torchdiffeq's adaptive
      methods get it as ``max_num_steps`` when it is not the default.
    - ``return_stats=True`` returns ``(ys, SolveStats)``; nfe counts the forward solve's evaluations.

    Bad input raises ``ValueError`` naming the problem.
    """
    adjoint_arguments = dict(adjoint_params=adjoint_params, adjoint_options=adjoint_options,
                             adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol, adjoint_method=adjoint_method)
    if event_fn is not None:
        from solvers.events import odeint_event

        return _event_from_odeint(odeint_event, f, y0, t, event_fn, method=method, step_size=step_size, rtol=rtol,
                                  atol=atol, adjoint=adjoint, return_stats=return_stats, backend=backend,
                                  check_finite=check_finite, partition=partition, jumps=jumps,
                                  max_steps=None if max_steps == DEFAULT_MAX_STEPS else max_steps,
                                  newton=newton, batch_rows=batch_rows, options=options, **adjoint_arguments,
                                  **keyword_options)
    plan = make_plan(f, y0, t, method, step_size, rtol, atol, adjoint, backend,
                     None if max_steps == DEFAULT_MAX_STEPS else max_steps, partition, jumps, newton, batch_rows,
                     options, keyword_options, adjoint_arguments, ODEINT_ARGUMENTS)
    field = plan.checked_field(f)
    if plan.torchdiffeq:
        ys = tdq.solve(field, y0, plan.t, plan.tdq_method, plan.rtol, plan.atol, plan.tdq_options, adjoint,
                       plan.adjoint_kwargs)
        return (ys, SolveStats(nfe=field.nfe)) if return_stats else ys
    if plan.method.adaptive:
        ys, stats = integrate_adaptive(field, plan.y0, plan.t, plan.pair(), plan.controller, plan.first_step,
                                       plan.jumps, plan.norm)
        stats = replace(stats, nfe=field.nfe)
    else:
        stepper = plan.stepper()
        ys, stats = integrate_fixed(field, plan.y0, plan.t, stepper, plan.step_size, check_finite, plan.max_steps,
                                    plan.jumps, perturb=plan.perturb, grid=plan.grid)
        stats = replace(stats, nfe=field.nfe, **stepper.counts())
    ys = plan.spec.unflatten(ys, (len(plan.t),))
    return (ys, stats) if return_stats else ys


def _event_from_odeint(odeint_event: Callable, f: Callable, y0: State, t: Union[Tensor, Sequence[float]],
                       event_fn: Callable, check_finite: bool, jumps: Any, **kwargs: Any) -> Any:
    """torchdiffeq's ``odeint(..., event_fn=...)``: ``t`` has 2 entries, t[0] the start, t[1] only its direction."""
    if len(t) != 2:
        raise ValueError(f"odeint with event_fn needs t with 2 entries (the start and, by its sign, the direction "
                         f"of time; as in torchdiffeq), got {len(t)}; or call "
                         f"solvers.odeint_event(f, y0, t0, event_fn)")
    if jumps is not None:
        raise ValueError("jumps are not supported when solving for an event")
    times = t.detach().tolist() if isinstance(t, Tensor) else [float(v) for v in t]
    return odeint_event(f, y0, t[0], event_fn, reverse_time=times[1] < times[0], **kwargs)


ODEINT_ARGUMENTS = tuple(name for name, p in inspect.signature(odeint).parameters.items()
                         if name not in ("f", "y0", "t") and p.kind is not p.VAR_KEYWORD)
