"""``odeint``: solve y' = f(t, y) at the output times ``t``, with torchdiffeq's calling convention."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from solvers.adaptive import integrate_adaptive
from solvers.controller import DEFAULT_MAX_STEPS, StepController
from solvers.explicit import integrate_fixed
from solvers.implicit import NewtonOptions
from solvers.jumps import check_jumps
from solvers.registry import get_method
from solvers.steppers import make_stepper
from solvers.stats import SolveStats

BACKENDS = ("odernn", "torchdiffeq")
ADAPTIVE_TORCHDIFFEQ = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
ADAPTIVE_OPTIONS = ("safety", "min_factor", "max_factor", "first_step")
# Our methods whose tableau torchdiffeq implements identically (its "rk4" is the 3/8 rule).
TORCHDIFFEQ_NAMES = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk38": "rk4",
                     "bosh3": "bosh3", "dopri5": "dopri5", "adaptive_heun": "adaptive_heun"}


class _CheckedField:
    """f with its evaluations counted and the shape of every derivative checked against the state's."""

    def __init__(self, f: Callable[[Tensor, Tensor], Tensor], shape: torch.Size):
        self.f, self.shape, self.nfe = f, shape, 0

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        dy = self.f(t, y)
        if not isinstance(dy, Tensor) or dy.shape != self.shape:
            got = tuple(dy.shape) if isinstance(dy, Tensor) else type(dy).__name__
            raise ValueError(f"f(t, y) returned {got} at t={float(t):g}; it must return a tensor of the "
                             f"state's shape {tuple(self.shape)}")
        return dy


class _CheckedModule(nn.Module):
    """``_CheckedField`` as an nn.Module, so torchdiffeq's adjoint finds f's parameters."""

    def __init__(self, f: nn.Module, shape: torch.Size):
        super().__init__()
        self.inner = f
        self.checked = _CheckedField(f, shape)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.checked(t, y)


def odeint(f: Callable[[Tensor, Tensor], Tensor], y0: Tensor, t: Union[Tensor, Sequence[float]],
           method: str = "rk4", step_size: Optional[float] = None, rtol: float = 1e-7, atol: float = 1e-9,
           adjoint: bool = False, return_stats: bool = False, backend: str = "odernn",
           check_finite: bool = True, max_steps: int = DEFAULT_MAX_STEPS,
           partition: Optional[Sequence[int]] = None, jumps: Union[Tensor, Sequence[float], None] = None,
           newton: Optional[NewtonOptions] = None, batch_rows: bool = False, **options: Any
           ) -> Union[Tensor, tuple[Tensor, SolveStats]]:
    """Solve y' = f(t, y), y(t[0]) = y0, returning y at every time of ``t``: shape (len(t), *y0.shape).

    - ``f(t, y)`` gets ``t`` as a 0-d tensor with y0's dtype and device and returns dy/dt shaped like y.
    - ``t``: 1-D, finite, strictly increasing or strictly decreasing (as in torchdiffeq).
    - ``method``: a name from ``solvers.available()``. Fixed methods take ``step_size`` (default: the
      spacing of ``t``; an interval that ``step_size`` does not divide gets ceil(interval / step_size)
      equal substeps) and land on every output time. Adaptive methods use ``rtol``/``atol`` (``step_size``
      is ignored, as in torchdiffeq) and step exactly onto every output time; ``options`` may set the
      controller's ``safety``, ``min_factor``, ``max_factor`` and a ``first_step``.
      ``partitioned_euler`` needs ``partition``, the block sizes of y's last dimension. Implicit methods
      (``available("implicit")``) step like fixed ones and solve their stages by Newton's method with the
      ``newton`` options (``NewtonOptions(tol, max_iters)``); gradients use the implicit function theorem.
    - ``jumps``: times where f is discontinuous in t (``solvers.jumps``): no step straddles one, and a stage
      evaluated there sees the side of the step it belongs to (torchdiffeq's ``jump_t``).
    - ``batch_rows``: y0 is (B, n) and f treats its rows as B separate systems (a batch of trajectories), so an
      implicit method solves B stage systems of size s*n instead of one of size s*B*n.
    - ``backend="torchdiffeq"``: ``method`` is one of torchdiffeq's names (dopri8, rk4 = 3/8 rule, ...),
      ``step_size`` and ``options`` go to its ``options``.
    - ``adjoint=True``: solve with ``torchdiffeq.odeint_adjoint`` (O(1) memory in the number of steps,
      gradients by solving the adjoint ODE backwards). Requires ``f`` to be an ``nn.Module`` (the
      gradients go to ``f.parameters()``). With ``backend="odernn"`` only methods that torchdiffeq
      implements identically are allowed (euler, midpoint, heun, rk38, bosh3, dopri5, adaptive_heun);
      its adaptive solvers interpolate at output times rather than stepping onto them.
    - ``check_finite``: a fixed-step solve whose state turns non-finite raises ``FloatingPointError``
      naming the interval (checked once per output time, read back once at the end).
    - ``max_steps``: at most this many steps (adaptive: attempts) in our backend.
    - ``return_stats=True`` returns ``(ys, SolveStats)``; nfe counts the forward solve's evaluations.

    Bad input raises ``ValueError`` naming the problem.
    """
    y0, t = _check_state_and_times(y0, t)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known backends: {', '.join(BACKENDS)}")
    if step_size is not None:
        step_size = float(step_size)
        if not (math.isfinite(step_size) and step_size > 0.0):
            raise ValueError(f"step_size must be a finite number > 0, got {step_size}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if adjoint or backend == "torchdiffeq":
        return _torchdiffeq_solve(f, y0, t, method, step_size, rtol, atol, adjoint, backend, return_stats,
                                  partition, check_jumps(jumps, t), options)
    spec = get_method(method)
    if spec.kind == "adaptive" and (partition is not None or newton is not None):
        make_stepper(spec, partition=partition, newton=newton)  # raises, naming the misplaced option
    jump_times = check_jumps(jumps, t)
    field = _CheckedField(f, y0.shape)
    if spec.kind == "adaptive":
        unknown = sorted(set(options) - set(ADAPTIVE_OPTIONS))
        if unknown:
            raise ValueError(f"unknown options {unknown} for adaptive method {method!r}; "
                             f"allowed: {', '.join(ADAPTIVE_OPTIONS)}")
        first_step = options.pop("first_step", None)
        if first_step is not None and not (math.isfinite(first_step) and first_step > 0.0):
            raise ValueError(f"first_step must be a finite number > 0, got {first_step}")
        controller = StepController(rtol=rtol, atol=atol, max_steps=max_steps, **options)
        ys, stats = integrate_adaptive(field, y0, t, spec.tableau, controller, first_step, jump_times)
        stats = replace(stats, nfe=field.nfe)
    else:
        if options:
            raise ValueError(f"options {sorted(options)} are not used by fixed-step method {method!r}")
        if batch_rows and y0.dim() != 2:
            raise ValueError(f"batch_rows=True needs y0 of shape (batch, n), got {tuple(y0.shape)}")
        stepper = make_stepper(spec, partition=partition, state_size=y0.shape[-1], newton=newton, rows=batch_rows)
        ys, stats = integrate_fixed(field, y0, t, stepper, step_size, check_finite, max_steps, jump_times)
        stats = replace(stats, nfe=field.nfe, **stepper.counts())
    return (ys, stats) if return_stats else ys


def _check_state_and_times(y0: Tensor, t: Union[Tensor, Sequence[float]]) -> tuple[Tensor, Tensor]:
    """Validate y0 (floating, finite) and t (1-D, finite, strictly monotonic); t gets y0's dtype/device."""
    if not isinstance(y0, Tensor) or not y0.is_floating_point():
        raise ValueError(f"y0 must be a floating-point tensor, got {type(y0).__name__}"
                         + (f" of dtype {y0.dtype}" if isinstance(y0, Tensor) else ""))
    if not bool(torch.isfinite(y0).all()):
        raise ValueError(f"y0 contains NaN or Inf ({int((~torch.isfinite(y0)).sum())} of {y0.numel()} entries)")
    if isinstance(t, Tensor):
        t = t.to(device=y0.device, dtype=y0.dtype)
    else:
        t = torch.tensor(t, device=y0.device, dtype=y0.dtype)
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"t must be a non-empty 1-D tensor of output times, got shape {tuple(t.shape)}")
    times = t.tolist()
    if not all(math.isfinite(x) for x in times):
        raise ValueError(f"t contains NaN or Inf: {times}")
    if len(times) > 1:
        sign = 1.0 if times[1] > times[0] else -1.0
        for k in range(len(times) - 1):
            if not sign * (times[k + 1] - times[k]) > 0.0:
                kind = "repeated" if times[k + 1] == times[k] else "non-monotonic"
                raise ValueError(f"t must be strictly monotonic (increasing or decreasing); {kind} at "
                                 f"t[{k}]={times[k]:g}, t[{k + 1}]={times[k + 1]:g}")
    return y0, t


def _torchdiffeq_solve(f, y0: Tensor, t: Tensor, method: str, step_size: Optional[float], rtol: float,
                       atol: float, adjoint: bool, backend: str, return_stats: bool,
                       partition: Optional[Sequence[int]], jumps: list[float], options: dict[str, Any]):
    """Hand the solve to torchdiffeq (``odeint`` or, with ``adjoint``, ``odeint_adjoint``)."""
    import torchdiffeq
    from torchdiffeq._impl.odeint import SOLVERS

    if partition is not None:
        raise ValueError("partition is only used by method 'partitioned_euler' of backend 'odernn'")
    if backend == "odernn":
        if method not in TORCHDIFFEQ_NAMES:
            get_method(method)  # unknown names: the registry's error listing ours
            raise ValueError(f"adjoint=True runs torchdiffeq's odeint_adjoint, which has no method identical to "
                             f"{method!r}; use one of {', '.join(TORCHDIFFEQ_NAMES)}, or backend='torchdiffeq' "
                             f"with one of its names")
        method = TORCHDIFFEQ_NAMES[method]
    elif method not in SOLVERS:
        raise ValueError(f"unknown torchdiffeq method {method!r}; known: {', '.join(SOLVERS)}")
    opts = dict(options)
    if jumps:
        if method not in ADAPTIVE_TORCHDIFFEQ:
            raise ValueError(f"jumps are handled by torchdiffeq's adaptive methods ({', '.join(ADAPTIVE_TORCHDIFFEQ)}), "
                             f"not by {method!r}; with a fixed method put the jump times into t instead")
        opts["jump_t"] = torch.tensor(jumps, dtype=t.dtype, device=t.device)
    if step_size is not None:
        opts["step_size"] = step_size
    if adjoint:
        if not isinstance(f, nn.Module):
            raise ValueError("adjoint=True requires f to be a torch.nn.Module: torchdiffeq's odeint_adjoint "
                             "computes gradients for f.parameters() (tensors captured in a closure get none)")
        field = _CheckedModule(f, y0.shape)
        counter = field.checked
        ys = torchdiffeq.odeint_adjoint(field, y0, t, rtol=rtol, atol=atol, method=method, options=opts or None)
    else:
        field = counter = _CheckedField(f, y0.shape)
        ys = torchdiffeq.odeint(field, y0, t, rtol=rtol, atol=atol, method=method, options=opts or None)
    return (ys, SolveStats(nfe=counter.nfe)) if return_stats else ys
