"""Adaptive integration with an embedded Runge-Kutta pair (dopri5, bosh3, adaptive_heun, ...).

Each step computes y1 = y0 + dt sum b_i k_i and the error estimate e = dt sum (b_i - b_err_i) k_i from the
same stages (``solvers.tableaus``); ``StepController`` accepts or rejects it and proposes the next step.
Steps are clipped so that the solve lands exactly on every output time and every declared jump of f
(``solvers.jumps``) and never interpolates across one: when the remaining distance is at most the proposed step it is
taken in one step, when it is less than two steps in two equal halves. After landing, f is evaluated
afresh at the output time (no first-same-as-last reuse across it, since f may be discontinuous there).

Gradients flow through the accepted steps (discretise-then-optimise); the step sizes are Python floats
decided from a detached error ratio, whose read-back is the only host synchronisation per step. The
states are collected in a list and stacked once, so memory and backward time are linear in len(t).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from solvers.controller import StepController
from solvers.explicit import Field, rk_stages, weighted_sum
from solvers.jumps import segments
from solvers.stats import SolveStats
from solvers.tableaus import ButcherTableau


def integrate_adaptive(f: Field, y0: Tensor, t: Tensor, tableau: ButcherTableau,
                       controller: StepController, first_step: Optional[float] = None,
                       jumps: Sequence[float] = ()) -> tuple[Tensor, SolveStats]:
    """Solve y' = f(t, y) from (t[0], y0), returning ``(ys, stats)`` with ys of shape (len(t), *y0.shape).

    Steps land on every output time and on every jump of f (``solvers.jumps``), and inside each segment f
    is seen from that segment's side. ``first_step`` (a magnitude) overrides Hairer's starting-step
    selection. Raises ``RuntimeError`` naming the time when ``controller.max_steps`` attempts are used up or
    the step size underflows.
    """
    if tableau.b_err is None:
        raise ValueError(f"tableau {tableau.name!r} has no embedded weights b_err; adaptive methods need them")
    times = t.tolist()
    outputs = [y0]
    if len(times) == 1:
        return torch.stack(outputs), SolveStats()
    direction = 1.0 if times[-1] > times[0] else -1.0
    err_weights = [b - be for b, be in zip(tableau.b, tableau.b_err)]
    pieces = segments(t, jumps)
    y, t_now, t_host = y0, t[0], times[0]
    k0: Optional[Tensor] = None
    if first_step is None:
        g = pieces[0].restrict(f)
        k0 = g(t_now, y)
        h = controller.initial_step(g, t_now, y, k0, tableau.order, direction)
    else:
        h = float(first_step)
    accepted = rejected = 0
    for piece in pieces:
        g, end = piece.restrict(f), float(piece.end)
        while True:
            remaining = abs(end - t_host)
            land = h >= remaining
            dt_mag = remaining if land else (0.5 * remaining if remaining < 2.0 * h else h)
            if accepted + rejected >= controller.max_steps:
                raise RuntimeError(f"adaptive solve used max_steps={controller.max_steps} steps and reached only "
                                   f"t={t_host:g} of {times[-1]:g}; raise max_steps or loosen rtol/atol")
            dt = direction * dt_mag
            y_new, ks = rk_stages(g, t_now, y, dt, tableau, k0)
            with torch.no_grad():
                err = float(controller.error_ratio(dt * weighted_sum(err_weights, ks), y, y_new))
            factor = controller.factor(err, tableau.order)
            if err <= 1.0:
                accepted += 1
                y = y_new
                h = max(h, dt_mag * factor) if dt_mag < h else dt_mag * factor
                if land:
                    t_now, t_host, k0 = piece.end, end, None
                    break
                t_now, t_host = t_now + dt, t_host + dt
                k0 = ks[-1] if tableau.is_fsal else None
            else:
                rejected += 1
                h = dt_mag * factor
                k0 = ks[0]
            if h <= 1e-14 * max(1.0, abs(t_host)):
                raise RuntimeError(f"adaptive step size underflow (dt={h:.3g}) at t={t_host:.6g}: the problem is "
                                   f"too stiff for {tableau.name!r} or its solution blows up or turns non-finite")
        if piece.output is not None:
            outputs.append(y)
    return torch.stack(outputs), SolveStats(n_steps=accepted + rejected, n_accepted=accepted, n_rejected=rejected)
