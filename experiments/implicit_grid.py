"""``python -m experiments implicit-grid``: the implicit methods at large steps with real input.

Every registered implicit method runs an antisymmetric field (16 units) over ``--steps`` (10) steps of N(0, 1)
inputs (batch 2) at every point of the grid eps x sigma_w x gamma x seeds (default 4 x 3 x 2 x 10 = 240 forwards per
method), the regime where a stable discretisation is needed and where plain Newton used to fail. Prints, per
method, the forwards that failed (a NewtonError or non-finite states), the largest |h_T|, the steps that
needed the continuation in the step size (``SolveStats.n_continued``), the steps split in halves because even
that failed (``n_subdivided``), the Newton iterations and the seconds.
"""
from __future__ import annotations

import argparse
import itertools
import time

import torch

import solvers
from experiments.cli_options import ERRORS, report_error
from odernn import build_rnn


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eps", type=_floats, default=(0.5, 1.0, 2.0, 3.0), help="step sizes (default 0.5,1,2,3)")
    parser.add_argument("--sigma-w", type=_floats, default=(1.0, 4.0, 8.0), help="recurrent init scales (1,4,8)")
    parser.add_argument("--gamma", type=_floats, default=(0.0, 0.01), help="diffusion values (default 0,0.01)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per grid point (default 10)")
    parser.add_argument("--solvers", default=",".join(solvers.available("implicit")),
                        help="implicit methods (default: every registered one)")
    parser.add_argument("--steps", type=int, default=10, help="input samples per sequence (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def run(args: argparse.Namespace) -> int:
    try:
        names = [name for name in args.solvers.split(",") if name]
        for name in names:
            if not solvers.get_method(name).implicit:
                raise ValueError(f"--solvers takes implicit methods ({', '.join(solvers.available('implicit'))}), "
                                 f"got {name!r}")
        if args.seeds < 1 or args.threads < 1 or args.steps < 1:
            raise ValueError("--seeds, --steps and --threads must be >= 1")
    except ERRORS as exc:
        return report_error(exc)
    torch.set_num_threads(args.threads)
    grid = list(itertools.product(args.eps, args.sigma_w, args.gamma, range(args.seeds)))
    print(f"antisymmetric field, 16 units, {args.steps} steps of N(0, 1) input, batch 2, float32; {len(grid)} forwards per "
          f"method (eps {args.eps}, sigma_w {args.sigma_w}, gamma {args.gamma}, {args.seeds} seeds)\n")
    print("| method | failed | max abs h_T | steps continued | steps subdivided | Newton iterations | seconds |")
    print("|---|---|---|---|---|---|---|")
    failures: list[str] = []
    for name in names:
        failed, largest, continued, subdivided, iterations, start = 0, 0.0, 0, 0, 0, time.perf_counter()
        for eps, sigma_w, gamma, seed in grid:
            torch.manual_seed(seed)
            rnn = build_rnn("antisymmetric", 1, 16, solver=name, step_size=eps, gamma=gamma, sigma_w=sigma_w)
            x = torch.randn(2, args.steps, 1)
            try:
                with torch.no_grad():
                    _, last = rnn(x)
            except (solvers.NewtonError, FloatingPointError):  # no stage solution found, or states not finite
                failed += 1
                failures.append(f"{name} at eps {eps:g}, sigma_w {sigma_w:g}, gamma {gamma:g}, seed {seed}")
                continue
            largest = max(largest, float(last.abs().max()))
            continued += rnn.last_stats.n_continued
            subdivided += rnn.last_stats.n_subdivided
            iterations += rnn.last_stats.n_newton
        print(f"| {name} | {failed} of {len(grid)} | {largest:.3g} | {continued} | {subdivided} | {iterations} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)
    if failures:
        print("\nfailed: " + "; ".join(failures))
    return 0
