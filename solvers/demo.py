"""Solver demo (``python -m experiments solver-demo`` or ``python -m solvers``): every registered method on
y' = A y with a random 10x10 A, against the exact solution exp(t A) y0, as one table."""
from __future__ import annotations

import argparse

import torch

from solvers.odeint import odeint
from solvers.problems import random_linear_problem
from solvers.controller import DEFAULT_ATOL, DEFAULT_RTOL
from solvers.registry import available, get_method

HEADER = ("method", "kind", "order", "step/tol", "nfe", "accepted", "rejected", "iterations", "max error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the demo."""
    parser.add_argument("--dim", type=int, default=10, help="size of the random matrix A (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of A and y0 (default 0)")
    parser.add_argument("--t-end", type=float, default=2.0, help="final time (default 2)")
    parser.add_argument("--outputs", type=int, default=11, help="number of output times in [0, t_end] (default 11)")
    parser.add_argument("--step-size", type=float, default=0.05, help="step of the fixed methods (default 0.05)")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                        help=f"relative tolerance, adaptive (default {DEFAULT_RTOL:g}, odeint's)")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                        help=f"absolute tolerance, adaptive (default {DEFAULT_ATOL:g}, odeint's)")
    parser.add_argument("--torchdiffeq", action="store_true",
                        help="also run torchdiffeq's methods of the same names (its rk4 is our rk38)")


def _row(name: str, args: argparse.Namespace, problem, t: torch.Tensor, exact: torch.Tensor,
         backend: str = "odernn") -> tuple[str, ...]:
    method = get_method({"rk4": "rk38"}.get(name, name) if backend == "torchdiffeq" else name)
    adaptive = method.adaptive
    ys, stats = odeint(problem, problem.y0, t, method=name, step_size=None if adaptive else args.step_size,
                       rtol=args.rtol, atol=args.atol, return_stats=True, backend=backend,
                       **method.select(partition=(args.dim // 2, args.dim - args.dim // 2)))
    order = method.order
    setting = f"rtol={args.rtol:g}" if adaptive else f"h={args.step_size:g}"
    steps = ("?", "?", "?") if backend == "torchdiffeq" else (str(stats.n_accepted), str(stats.n_rejected),
                                                              str(stats.stage_iterations))
    label = name if backend == "odernn" else f"torchdiffeq:{name}"
    return (label, method.kind, str(order), setting, str(stats.nfe), *steps, f"{(ys - exact).abs().max():.3e}")


def run(args: argparse.Namespace) -> int:
    """Print the table; returns 0."""
    problem = random_linear_problem(args.dim, args.seed)
    t = torch.linspace(0.0, args.t_end, args.outputs, dtype=torch.float64)
    exact = problem.exact(t)
    rows = [_row(name, args, problem, t, exact) for name in available()]
    if args.torchdiffeq:
        rows += [_row(name, args, problem, t, exact, backend="torchdiffeq")
                 for name in ("euler", "midpoint", "rk4", "bosh3", "dopri5", "adaptive_heun")]
    print(f"y' = A y, A = G/sqrt({args.dim}) - I/2 (seed {args.seed}), t in [0, {args.t_end:g}] "
          f"with {args.outputs} output times, float64; error = max |y - exp(tA) y0| over outputs")
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER))]
    for r in [HEADER] + rows:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))))
    return 0
