"""``python -m experiments dynamics``: the papers' dynamics figures under any registered solver.

Writes into ``--out-dir`` (default runs/dynamics), each as a PNG plus a JSON of the numbers it shows:
  antisymmetric_fig1          AntisymmetricRNN Fig. 1 (8 panels)
  antisymmetric_appD_fig2/3/4 App. D: vanilla and feedback with seeds 1..16, feedback with N(0, 1) inputs
  afrnn_trajectories          AFRNN Fig. 2-3: top-layer trajectories of 2-ARNN and AFRNN, two nearby starts
  afrnn_jacobian              AFRNN Fig. 4: mean |eigenvalue| of dh_T/dh_(T-j) against j
  radius_table.md/.json       r_T / r_0 of W0 and Wdiff under several solvers beside |R(eps lambda)|^T
``--solver`` picks the discretisation of every figure (the radius table always lists its own set).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm import tqdm

import solvers
from experiments.cli_options import (SolverOptions, add_solver_arguments, check_output_folder, given, positive_int,
                                     solver_options)
from experiments.io import atomic_write_json, atomic_write_text
from experiments.training import check_seed

FIGURES = ("fig1", "appendix", "table", "afrnn_trajectories", "afrnn_jacobian")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count afterwards. The figures
    are thousands of tiny ops, where a second thread only adds synchronisation (30x slower on a busy
    2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", default="runs/dynamics", help="output folder (default: runs/dynamics)")
    parser.add_argument("--solver", default="euler", help=f"discretisation, one of: {', '.join(solvers.available())}")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES), help="figures to make")
    parser.add_argument("--T", type=int, default=50, help="steps of the planar figures (default 50)")
    parser.add_argument("--eps", type=float, default=0.1, help="step of the planar figures (default 0.1)")
    parser.add_argument("--afrnn-steps", type=int, default=800, help="T of AFRNN Fig. 4 (default 800)")
    parser.add_argument("--traj-steps", type=int, default=10000, help="steps of AFRNN Fig. 2-3 (default 10000)")
    parser.add_argument("--traj-hidden", type=int, default=3, help="units per layer of AFRNN Fig. 2-3 (default 3)")
    parser.add_argument("--hidden", type=int, default=20, help="units per layer of AFRNN Fig. 4 (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the untrained AFRNN-figure models and inputs")
    parser.add_argument("--quick", action="store_true", help="short runs for tests (fewer seeds and steps)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads (default 1: these are many tiny ops, where more threads only add overhead)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_solver_arguments(parser)


def _jobs(args: argparse.Namespace) -> dict[str, Callable[[], list[tuple[str, object, dict]]]]:
    from experiments.dynamics import afrnn_figs, antisymmetric_fig1 as fig1
    from experiments.dynamics.radius_table import radius_table, to_markdown

    solver_options(args)  # validated together; only the options given are passed, the figures keep their defaults
    options = given(args, SolverOptions)
    seeds = range(1, 5) if args.quick else range(1, 17)
    afrnn_steps = min(args.afrnn_steps, 200) if args.quick else args.afrnn_steps
    traj_steps = min(args.traj_steps, 2000) if args.quick else args.traj_steps

    def appendix():
        return [("antisymmetric_appD_fig2", *fig1.appendix_vanilla(seeds, args.T)),
                ("antisymmetric_appD_fig3", *fig1.appendix_feedback(args.solver, seeds, args.T, args.eps,
                                                                    options=options)),
                ("antisymmetric_appD_fig4", *fig1.appendix_inputs(args.solver, args.T, args.eps, args.seed,
                                                                  options=options))]

    def table():
        rows = radius_table(args.T, args.eps)
        text = to_markdown(rows, args.T, args.eps)
        print(text)
        atomic_write_text(text, Path(args.out_dir) / "radius_table.md")
        return [("radius_table", None, {"T": args.T, "eps": args.eps, "rows": rows})]

    return {
        "fig1": lambda: [("antisymmetric_fig1", *fig1.fig1(args.solver, args.T, args.eps, options=options))],
        "appendix": appendix,
        "table": table,
        "afrnn_trajectories": lambda: [("afrnn_trajectories", *afrnn_figs.trajectory_figure(
            args.solver, args.traj_hidden, traj_steps, seed=args.seed, options=options))],
        "afrnn_jacobian": lambda: [("afrnn_jacobian", *afrnn_figs.jacobian_figure(
            args.solver, args.hidden, afrnn_steps, seed=args.seed))],
    }


def run(args: argparse.Namespace) -> int:
    from odernn.plots import save_figure

    solvers.get_method(args.solver)  # unknown names fail here, listing the known ones
    for flag_name in ("T", "afrnn_steps", "traj_steps", "hidden", "traj_hidden"):
        if getattr(args, flag_name) < 1:
            raise ValueError(f"--{flag_name.replace('_', '-')} must be >= 1, got {getattr(args, flag_name)}")
    if not (math.isfinite(args.eps) and args.eps > 0):
        raise ValueError(f"--eps must be a finite number > 0, got {args.eps}")
    check_seed(args.seed, "--seed")
    out = check_output_folder(args.out_dir)
    solver_options(args)  # bad --rtol / --atol / --max-steps: one line before any figure
    jobs = _jobs(args)
    start = time.perf_counter()
    with torch_threads(args.threads):
        for name in tqdm(args.only, desc="dynamics", disable=args.no_progress):
            for stem, fig, numbers in jobs[name]():
                if fig is not None:
                    save_figure(fig, out / f"{stem}.png")
                atomic_write_json(numbers, out / f"{stem}.json")
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))} to {out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
