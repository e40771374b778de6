"""Adaptive integration with an embedded Runge-Kutta pair: explicit (dopri5, bosh3, adaptive_heun, ...;
``solvers.pair``) or diagonally implicit (kvaerno3, kvaerno4, trbdf2; ``solvers.dirk``).

Each step computes y1 = y0 + dt sum b_i k_i and the error estimate e = dt sum (b_i - b_err_i) k_i from the
same stages (``solvers.tableaus``); ``StepController`` accepts or rejects it and proposes the next step with
the exponent 1 / ``error_order``. An implicit pair whose stage equations cannot be solved at the step size
rejects the attempt and the step is halved (``SHRINK_AFTER_FAILED_STAGES``).
Steps are clipped so that the solve lands exactly on every output time and every declared jump of f
(``solvers.jumps``) and never interpolates across one: when the remaining distance is at most the proposed step it is
taken in one step, when it is less than two steps in two equal halves. After landing, f is evaluated
afresh at the output time (no first-same-as-last reuse across it, since f may be discontinuous there).

Gradients flow through the accepted steps (discretise-then-optimise). The step sizes the controller chooses
are Python floats decided from a detached error ratio, whose read-back is the only host synchronisation per
step; a step clipped to a breakpoint is a tensor computed from the breakpoint (dt = t_k - t_now, or half of
it), so the solution is differentiable with respect to the output times ``t`` as well: moving t_k moves the
step that lands there (dy/dt_k = f at the landing point, up to the method's error), and moving t_0 moves
every stage time. The steps between breakpoints are not differentiated: their sizes follow from detached
error ratios (as in torchdiffeq), which depend on t only through the steps before them, so the derivative
misses a term of the order of the local error; it is exact when every step lands on a breakpoint. The states
are collected in a list and stacked once, so memory and backward time are linear in len(t).

Failures stop the solve at once, naming the time: a non-finite f at a step's start (``FloatingPointError``;
a step whose trial stages overflow is retried with a smaller step at most ``NONFINITE_RETRIES`` times in a
row), a problem detected as stiff (``StiffnessError``, ``solvers.stiffness``), the step budget
(``max_steps`` attempts) or a step size underflow (``RuntimeError``). torchdiffeq's step callbacks of f are
called around every attempt (``solvers.callbacks``).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from solvers.callbacks import Callbacks
from solvers.controller import StepController
from solvers.errors import StiffnessError
from solvers.explicit import Field
from solvers.jumps import segments
from solvers.pair import SHRINK_AFTER_FAILED_STAGES, Pair
from solvers.pytree import Norm, rms_norm
from solvers.registry import available
from solvers.stats import SolveStats

NONFINITE_RETRIES = 3
"""Consecutive attempts with non-finite stages (f finite at the step's start) before the solve gives up; each
retry shrinks the step by the controller's ``min_factor``."""
UNDERFLOW_EPS = 64
"""A step size below UNDERFLOW_EPS * eps * max(1, |t|), eps the machine epsilon of the state's (and time's)
dtype, stops the solve: t + dt no longer moves t by more than a few units in the last place (1.4e-14 in
float64, 7.6e-6 in float32). Judged after every rejected attempt, for a large error and for NaN/Inf alike."""


class Step(NamedTuple):
    """An accepted step: from (t0, y0) with size dt (signed; float or 0-d tensor) and stages ks to (t1, y1)."""

    t0: Tensor
    y0: Tensor
    dt: Union[float, Tensor]
    ks: list[Tensor]
    t1: Tensor
    y1: Tensor
    landed: bool


class EmbeddedPairRun:
    """One adaptive integration in progress with the embedded ``pair``: the current time ``t`` (0-d tensor, and
    ``t_host`` as a float), state ``y``, proposed step magnitude ``h``, the stage to reuse (``k0``) and the
    counts of attempts.

    ``start`` chooses the first step; every ``attempt`` tries one step, optionally clipped to land on ``end``,
    and returns the accepted ``Step`` or None when the step was rejected. ``t_final`` (the last output time)
    and ``out_of_steps`` (advice) complete the messages.
    """

    def __init__(self, pair: Pair, controller: StepController, direction: float,
                 norm: Norm = rms_norm, callbacks: Callbacks = Callbacks(), t_final: Optional[float] = None,
                 out_of_steps: str = "raise max_steps or loosen rtol/atol") -> None:
        self.pair, self.tableau, self.controller, self.direction = pair, pair.tableau, controller, direction
        self.norm, self.callbacks, self.t_final, self.out_of_steps = norm, callbacks, t_final, out_of_steps
        self.stiffness = pair.detector(controller.stiffness_interval)
        self.accepted = self.rejected = self.nonfinite = 0
        self.k0: Optional[Tensor] = None

    def start(self, f: Field, t0: Tensor, y0: Tensor, first_step: Optional[float] = None) -> None:
        """Begin at (t0, y0); the first step is ``first_step`` (a magnitude) or Hairer's starting step."""
        self.t, self.t_host, self.y = t0, float(t0.detach()), y0
        self.underflow = UNDERFLOW_EPS * torch.finfo(y0.dtype).eps
        if first_step is None:
            self.k0 = f(t0, y0)
            self.h = self.controller.initial_step(f, t0, y0, self.k0, self.tableau.order, self.direction, self.norm)
        else:
            self.h = float(first_step)

    def stats(self) -> SolveStats:
        return SolveStats(n_steps=self.accepted + self.rejected, n_accepted=self.accepted, n_rejected=self.rejected,
                          **self.pair.counts())

    def attempt(self, f: Field, end: Optional[Tensor] = None) -> Optional[Step]:
        """Try one step from (t, y) with f; with ``end`` (a breakpoint ahead) the step is clipped to land on it."""
        controller = self.controller
        if self.accepted + self.rejected >= controller.max_steps:
            target = f" of {self.t_final:g}" if self.t_final is not None else ""
            raise RuntimeError(f"adaptive solve used max_steps={controller.max_steps} steps and reached only "
                               f"t={self.t_host:g}{target}: {self.out_of_steps}")
        self.h = controller.bounded(self.h)
        dt, dt_mag, landed = self._clip(end)
        self.callbacks.call("step", self.t, self.y, dt)
        y0, t0 = self.y, self.t
        solved = self.pair.stages(f, t0, y0, dt, self.k0)
        if solved is None:  # the stage equations have no (reachable) solution at this step size
            self.rejected += 1
            self.callbacks.call("reject", t0, y0, dt)
            self.h = dt_mag * SHRINK_AFTER_FAILED_STAGES
            self._check_underflow()
            return None
        y1, ks = solved
        t1 = end if landed else t0 + dt
        test = self.stiffness is not None and self.stiffness.due(self.accepted)
        with torch.no_grad():
            err = controller.error_ratio(self.pair.error(dt, ks), y0, y1, self.norm)
            size = torch.linalg.vector_norm(y1, math.inf)  # an Inf state can have a finite err: check it too
            checks = [err, size, self.stiffness.estimate(f, t1, y0, dt, y1, ks)] if test else [err, size]
            values = torch.stack(checks).tolist()
        err = values[0]
        if not (math.isfinite(err) and math.isfinite(values[1])):
            self._non_finite(ks[0], dt_mag)
            self.callbacks.call("reject", t0, y0, dt)
            return None
        self.nonfinite = 0
        factor = controller.factor(err, self.tableau.error_order)
        if err > 1.0 and dt_mag > controller.min_step:  # a step at min_step is accepted whatever its error
            self.rejected += 1
            self.callbacks.call("reject", t0, y0, dt)
            self.h, self.k0 = dt_mag * factor, ks[0]
            self._check_underflow()
            return None
        self.accepted += 1
        self.callbacks.call("accept", t0, y0, dt)
        self.h = max(self.h, dt_mag * factor) if dt_mag < self.h else dt_mag * factor
        self.t, self.t_host, self.y = t1, (float(end.detach()) if landed else self.t_host + self.direction * dt_mag), y1
        self.k0 = None if landed or not self.pair.reuse_last else ks[-1]
        if test and self.stiffness.update(values[2]):
            self._stiff(values[2], dt_mag)
        if not landed:  # accepted steps that no longer move t (a blow-up ahead) stop the solve as well
            self._check_underflow()
        return Step(t0, y0, dt, ks, t1, y1, landed)

    def _clip(self, end: Optional[Tensor]) -> tuple[Union[float, Tensor], float, bool]:
        """The signed step, its magnitude and whether it lands on ``end``: one step when the remaining distance
        is at most h, two equal halves when it is less than 2 h (tensors from ``end``, for gradients in t)."""
        if end is not None:
            remaining = abs(float(end.detach()) - self.t_host)
            if self.h >= remaining:
                return end - self.t, remaining, True
            if remaining < 2.0 * self.h:
                return 0.5 * (end - self.t), 0.5 * remaining, False
        return self.direction * self.h, self.h, False

    def _non_finite(self, k1: Tensor, dt_mag: float) -> None:
        """A step produced NaN/Inf: fail at once when f at the step's start is not finite (no step size helps),
        else shrink the step, failing after ``NONFINITE_RETRIES`` such attempts in a row."""
        self.rejected += 1
        self.nonfinite += 1
        where = f"t={self.t_host:.6g} (step {self.accepted + self.rejected}, {self.accepted} accepted)"
        if not bool(torch.isfinite(k1).all()):
            raise FloatingPointError(f"f(t, y) is not finite at {where}: the state or f turned NaN/Inf; no step "
                                     f"size can fix that (check f, or whether the solution blows up)")
        if self.nonfinite > NONFINITE_RETRIES:
            raise FloatingPointError(f"{self.nonfinite} attempts in a row from {where} produced NaN/Inf (the last "
                                     f"with dt={dt_mag:.3g}) although f is finite there (max |f| = "
                                     f"{float(k1.abs().amax()):.3g}): the solution blows up, or f overflows or leaves "
                                     f"its domain near it; check f or pass a smaller first_step")
        self.h, self.k0 = dt_mag * self.controller.min_factor, k1
        if self._underflow():  # f turns NaN/Inf just ahead: steps would creep towards that time forever
            raise FloatingPointError(f"the stages turn NaN/Inf just after {where}, even at dt={self.h:.3g} (the "
                                     f"step size underflowed while f at the step's start stayed finite): f is not "
                                     f"finite past that time, or the solution blows up there")

    def _underflow(self) -> bool:
        return self.h <= self.underflow * max(1.0, abs(self.t_host))

    def _check_underflow(self) -> None:
        if self._underflow():
            raise RuntimeError(f"adaptive step size underflow (dt={self.h:.3g}) at t={self.t_host:.6g} (step "
                               f"{self.accepted + self.rejected}, {self.accepted} accepted): the problem is too stiff "
                               f"for {self.tableau.name!r} or its solution blows up")

    def _stiff(self, h_lambda: float, dt_mag: float) -> None:
        remaining = "" if self.t_final is None else \
            f" (about {abs(self.t_final - self.t_host) / dt_mag:.2g} more steps of this size to t={self.t_final:g})"
        raise StiffnessError(
            f"the problem looks stiff for {self.tableau.name!r} at t={self.t_host:.6g}, step "
            f"{self.accepted + self.rejected} ({self.accepted} accepted): the step size h={dt_mag:.3g} is held at "
            f"the edge of the method's stability region (estimated h*|lambda| = {h_lambda:.3g} >= "
            f"{self.stiffness.limit:.3g} in repeated tests), so stability, not accuracy, limits it{remaining}. Use "
            f"an adaptive implicit method ({', '.join(available('adaptive_implicit'))}) or an implicit one with a "
            f"fixed step_size ({', '.join(available('implicit'))}), or pass stiffness_interval=None to continue "
            f"anyway",
            self.t_host, dt_mag, h_lambda)


def integrate_adaptive(f: Field, y0: Tensor, t: Tensor, pair: Pair,
                       controller: StepController, first_step: Optional[float] = None,
                       jumps: Sequence[float] = (), norm: Norm = rms_norm,
                       callbacks: Optional[Callbacks] = None) -> tuple[Tensor, SolveStats]:
    """Solve y' = f(t, y) from (t[0], y0), returning ``(ys, stats)`` with ys of shape (len(t), *y0.shape).

    Steps land on every output time and on every jump of f (``solvers.jumps``), and inside each segment f
    is seen from that segment's side. ``first_step`` (a magnitude) overrides Hairer's starting-step
    selection; ``norm`` replaces the RMS norm of the error ratio; ``callbacks`` default to f's own
    (``Callbacks.of(f)``). Raises as described in the module docstring.
    """
    times = t.detach().tolist()
    outputs = [y0]
    if len(times) == 1:
        return torch.stack(outputs), SolveStats()
    callbacks = Callbacks.of(f) if callbacks is None else callbacks
    solver = EmbeddedPairRun(pair, controller, 1.0 if times[-1] > times[0] else -1.0, norm, callbacks, times[-1])
    pieces = segments(t, jumps)
    solver.start(pieces[0].restrict(f), t[0], y0, first_step)
    for piece in pieces:
        g = piece.restrict(f)
        while True:
            step = solver.attempt(g, piece.end)
            if step is not None and step.landed:
                break
        if piece.output is not None:
            outputs.append(solver.y)
    return torch.stack(outputs), solver.stats()
