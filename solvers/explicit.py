"""One generic explicit Runge-Kutta step built from a Butcher tableau, and fixed-grid integration.

The step is eq. II.1.8 of Hairer, Norsett, Wanner (see ``solvers.tableaus``); no method has a hand-written
step. The fixed grid takes ``ceil(interval / step_size)`` equal substeps on every interval between output
times, so it lands exactly on each of them, and collects the states in a list that is stacked once at the
end (writing into a preallocated tensor under autograd costs a copy of the whole tensor per write in
backward: O(T^2)).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from solvers.callbacks import Callbacks
from solvers.errors import StepFailure
from solvers.jumps import OneSided, segments
from solvers.stats import SolveStats
from solvers.tableaus import ButcherTableau

Time = Union[float, Tensor]
Field = Callable[[Time, Tensor], Tensor]
Stepper = Callable[[Field, Time, Tensor, Time], Tensor]


def weighted_sum(weights: Sequence[float], ks: Sequence[Tensor]) -> Optional[Tensor]:
    """sum_i w_i k_i, skipping zero weights and not multiplying by unit ones; None if all weights are 0."""
    total = None
    for w, k in zip(weights, ks):
        if w == 0.0:
            continue
        term = k if w == 1.0 else w * k
        total = term if total is None else total + term
    return total


def rk_stages(f: Field, t: Time, y: Tensor, dt: Time, tableau: ButcherTableau,
              k0: Optional[Tensor] = None) -> tuple[Tensor, list[Tensor]]:
    """The new state y + dt * sum_i b_i k_i and the stage derivatives k_1..k_s.

    ``k0``, when given, is used as k_1 = f(t, y) (first-same-as-last reuse) instead of evaluating ``f``.
    """
    ks: list[Tensor] = []
    for i, (ci, row) in enumerate(zip(tableau.c, tableau.A)):
        if i == 0 and k0 is not None:
            ks.append(k0)
            continue
        incr = weighted_sum(row[:i], ks)
        yi = y if incr is None else y + dt * incr
        ks.append(f(t if ci == 0.0 else t + ci * dt, yi))
    incr = weighted_sum(tableau.b, ks)
    return (y if incr is None else y + dt * incr), ks


def rk_step(f: Field, t: Time, y: Tensor, dt: Time, tableau: ButcherTableau) -> Tensor:
    """One explicit Runge-Kutta step of size ``dt`` from (t, y) with the given tableau.

    f is called at ``t + c_i * dt`` (``t`` itself when c_i = 0), so ``t`` and ``dt`` may be Python floats
    or 0-d tensors; euler costs exactly ``y + dt * f(t, y)``.
    """
    return rk_stages(f, t, y, dt, tableau)[0]


def step_counts(t: Tensor, step_size: Optional[float]) -> Tensor:
    """Equal steps no longer than ``step_size`` on every interval of the times ``t`` (1-D (T + 1,) or per row
    (B, T + 1)): ceil(width / step_size) as a float64 tensor of shape (T,) or (B, T) (all 1 when ``step_size``
    is None). Widths computed in t's dtype carry rounding of a few units in the last place of |t| (float32
    times k * 0.01 near t = 8 are off by ~1e-6), so each width is first reduced by 8 eps(dtype) max(|t_k|,
    |t_{k+1}|) + 1e-10 width: 0.3 / 0.1 takes 3 steps, and so does a float32 interval of one grid step."""
    t = t.detach()
    widths = t.diff(dim=-1).abs().double()
    if step_size is None:
        return torch.ones_like(widths)
    scale = torch.maximum(t[..., :-1].abs(), t[..., 1:].abs()).double()
    slack = 8 * torch.finfo(t.dtype).eps * scale + 1e-10 * widths
    return torch.ceil((widths - slack) / step_size).clamp_min(1)


def take_step(stepper: Stepper, f: Field, t: Time, y: Tensor, dt: Time, callbacks: Callbacks, index: int,
              total: int) -> Tensor:
    """Step ``index`` (of at most ``total``) of the fixed-step loop: f's step callbacks around
    the method's step, a failing step (``StepFailure``) re-raised naming it. Every fixed step of ``solvers``
    goes through here: ``integrate_fixed`` and the event search's march (``solvers.events``)."""
    if callbacks.any:
        callbacks.call("step", t, y, dt)
    try:
        y_next = stepper(f, t, y, dt)
    except StepFailure as failure:
        raise failure.at_step(index, total) from None
    if callbacks.any:
        callbacks.call("accept", t, y, dt)
    return y_next


def integrate_fixed(f: Field, y0: Tensor, t: Tensor, stepper: Stepper, step_size: Optional[float] = None,
                    check_finite: bool = True, max_steps: Optional[int] = None,
                    jumps: Sequence[float] = (), callbacks: Optional[Callbacks] = None, perturb: bool = False,
                    grid: Optional[Tensor] = None) -> tuple[Tensor, SolveStats]:
    """Integrate on a fixed grid that lands on every output time; returns ``(ys, stats)``, ys (len(t), *y0.shape).

    This is the one fixed-step loop: every fixed method (explicit or implicit Runge-Kutta, partitioned Euler)
    is a ``stepper(f, t, y, dt)`` that it drives. The output times and the ``jumps`` of f (``solvers.jumps``)
    cut the span into segments; each gets ``substeps`` equal steps with dt = (end - start) / n as a 0-d
    tensor, and f is seen from inside the segment. With ``check_finite``, one finiteness flag per output
    time is recorded on the device and read once at the end: no host synchronisation per step; a
    non-finite state raises ``FloatingPointError`` naming the interval where it first appeared. More than
    ``max_steps`` steps in total raise ``ValueError`` before any step is taken. A stepper that fails
    (``StepFailure``, e.g. Newton's method not converging) is re-raised naming the step.

    The steps' sizes and start times are tensors computed from ``t``, so the solution is differentiable with
    respect to the output times. Per-row times: ``t`` (B, T + 1) with y0 (B, ...) whose rows are separate
    systems; row b takes ceil(width / step_size) steps of its own size dt (a (B, 1) tensor) on every interval,
    rows with fewer steps idle with dt = 0 while the others finish, and f (or ``f.interval(k)``) is called
    with t of shape (B, 1). torchdiffeq's step callbacks (``callbacks``, by default f's own:
    ``solvers.callbacks``) are called before (``callback_step``) and after (``callback_accept_step``) every step.

    torchdiffeq's fixed-grid options: ``perturb`` evaluates f inside every step from the step's side, at
    nextafter(t0) towards t1 for a stage at its start and nextafter(t1) towards t0 at its end (``OneSided``);
    ``grid`` (from torchdiffeq's ``grid_constructor(f, y0, t)``, 1-D, from t[0] to t[-1]) replaces the steps:
    one step per grid interval, and each output time inside a step is the linear interpolation between the
    step's ends, as torchdiffeq's ``interp="linear"``.
    """
    times = t.detach().tolist()
    callbacks = Callbacks.of(f) if callbacks is None else callbacks
    pieces = segments(t if grid is None else grid, jumps)
    if grid is not None:
        counts, steps = [1] * len(pieces), [piece.end - piece.start for piece in pieces]
        on_grid = OutputsOnGrid(t)
    elif t.dim() == 2:
        row_counts = step_counts(t, step_size).to(t.dtype)
        counts = [int(n) for n in row_counts.amax(0).tolist()]
        steps = [(piece.end - piece.start) / row_counts[:, k:k + 1] for k, piece in enumerate(pieces)]
    else:
        ends = torch.stack([pieces[0].start, *(piece.end for piece in pieces)]) if pieces else t
        counts = [int(n) for n in step_counts(ends, step_size).tolist()]
        steps = [(piece.end - piece.start) / n for piece, n in zip(pieces, counts)]
    if max_steps is not None and sum(counts) > max_steps:
        first, last = (times[0][0], times[0][-1]) if t.dim() == 2 else (times[0], times[-1])
        raise ValueError(f"step_size={step_size} needs {sum(counts)} steps over t in [{first:g}, {last:g}], "
                         f"more than max_steps={max_steps}; use a larger step_size or raise max_steps")
    outputs = [y0]
    finite: list[Tensor] = []
    y, taken = y0, 0
    for k, (piece, n) in enumerate(zip(pieces, counts)):
        g, dt = piece.restrict(f), steps[k]
        y_start = y
        for j in range(n):
            start = piece.start if j == 0 else piece.start + j * dt
            if t.dim() == 2 and j:  # rows with fewer steps on this interval have finished: a step of size 0
                dt_j = torch.where(row_counts[:, k:k + 1] > j, steps[k], torch.zeros_like(steps[k]))
                start = torch.minimum(start, piece.end)
            else:
                dt_j = dt
            y = take_step(stepper, one_sided_step(g, start, dt_j) if perturb else g, start, y, dt_j, callbacks,
                          taken + 1, sum(counts))
            taken += 1
        landed = on_grid.interpolate(piece.start, y_start, piece.end, y) if grid is not None else \
            [y] if piece.output is not None else []
        outputs += landed
        if check_finite:
            finite += [torch.isfinite(v.detach()).all() for v in landed]
    if finite:
        flags = torch.stack(finite)
        if not bool(flags.all()):
            k = int(torch.nonzero(~flags)[0, 0])
            grid = times[0] if t.dim() == 2 else times
            raise FloatingPointError(
                f"the state became non-finite between t={grid[k]:g} and t={grid[k + 1]:g} "
                f"(output {k + 1} of {len(grid) - 1}); reduce the step size or pass check_finite=False")
    return torch.stack(outputs), SolveStats(n_steps=sum(counts), n_accepted=sum(counts))


def one_sided_step(f: Field, start: Tensor, dt: Tensor) -> Field:
    """f inside the step from ``start`` of size ``dt``: its times clamped to [start+, (start + dt)-] (torchdiffeq's
    ``perturb``: Perturb.NEXT at the step's start, Perturb.PREV at its end)."""
    end = (start + dt).detach()
    first = torch.nextafter(start.detach(), end)
    last = torch.nextafter(end, start.detach())
    return OneSided(f, torch.minimum(first, last), torch.maximum(first, last))


class OutputsOnGrid:
    """The output times ``t`` met by a walk along another grid: after each step from (t0, y0) to (t1, y1),
    ``interpolate`` returns the states at the outputs in (t0, t1] by linear interpolation (torchdiffeq's
    ``_linear_interp``: the step's end itself where an output falls on it)."""

    def __init__(self, t: Tensor) -> None:
        self.t, self.times, self.next = t, t.detach().tolist(), 1
        self.sign = 1.0 if self.times[-1] >= self.times[0] else -1.0

    def interpolate(self, t0: Tensor, y0: Tensor, t1: Tensor, y1: Tensor) -> list[Tensor]:
        out, end = [], float(t1.detach())
        while self.next < len(self.times) and self.sign * self.times[self.next] <= self.sign * end:
            tj = self.t[self.next]
            out.append(y1 if self.times[self.next] == end else y0 + ((tj - t0) / (t1 - t0)) * (y1 - y0))
            self.next += 1
        return out
