"""``python -m experiments stability``: a model's eigenvalue cloud on its solver's stability region.

Builds an untrained model with ``odernn.build_rnn``, runs it on N(0, 1) inputs, prints the report of
``odernn.stability.check_stability`` and draws z = step * lambda(J_k) over the stability regions of the
solver (and of ``--methods``), eigenvalues outside the region in red. Example:

    python -m experiments stability --model antisymmetric --solver euler --gamma 0.0 --out x.png
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

import solvers
from solvers import StepFailure
from experiments.cli_options import add_solver_arguments, check_output_file, solver_options
from experiments.io import atomic_write_json
from odernn import MODEL_NAMES, build_rnn
from odernn.models import default_gamma
from odernn.plots import amplification_figure, save_figure, stability_region_figure
from odernn.stability import check_stability


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="antisymmetric", choices=[m for m in MODEL_NAMES if m not in ("lstm", "gru")])
    parser.add_argument("--solver", default="euler", help=f"one of: {', '.join(solvers.available())}")
    parser.add_argument("--gamma", type=float, default=None,
                        help="diffusion; coRNN's stiffness, Lipschitz RNN's shift (default: the model's own)")
    parser.add_argument("--step-size", type=float, default=0.1, help="eps (default 0.1)")
    parser.add_argument("--substeps", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=32, help="units (per layer for multi-layer models)")
    parser.add_argument("--sigma-w", type=float, default=None,
                        help="recurrent init scale, for the models that take one (default: the model's, 1)")
    parser.add_argument("--input-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    parser.add_argument("--batch", type=int, default=4, help="sequences (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=None,
                        help="regions to draw (default: the solver's); partitioned_euler instead draws the "
                             "eigenvalues of its amplification matrices against the unit circle")
    parser.add_argument("--out", default="runs/stability.png", help="PNG path; the report goes beside it as .json")
    add_solver_arguments(parser)


def run(args: argparse.Namespace) -> int:
    method = solvers.get_method(args.solver)
    check_output_file(args.out)
    options = solver_options(args)
    torch.manual_seed(args.seed)
    gamma = default_gamma(args.model) if args.gamma is None else args.gamma
    rnn = options.configure(build_rnn(args.model, args.input_size, args.hidden, solver=args.solver,
                                      step_size=args.step_size, gamma=gamma, substeps=args.substeps,
                                      **({} if args.sigma_w is None else {"sigma_w": args.sigma_w})))
    for option in ("batch", "steps", "input_size"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    x = torch.randn(args.batch, args.steps, args.input_size)
    try:
        report = check_stability(rnn, x)
    except StepFailure as exc:  # e.g. Newton's method of an implicit solver did not converge at this step
        raise ValueError(f"the stability check runs the model to find the states it visits, and {args.solver} "
                         f"failed at --step-size {args.step_size:g}: {exc}") from None
    print(report.summary())
    title = (f"{args.model}, {args.solver}, eps={args.step_size}, gamma={gamma}: "
             f"max amplification {report.max_amplification:.4f}, {100 * report.fraction_outside:.1f}% outside")
    if method.needs_jacobian:
        fig = amplification_figure(report.mu, report.z, title)
    else:
        methods = args.methods if args.methods else [args.solver]
        fig = stability_region_figure(methods, report.z, method.assess(report.z)[1], title)
    save_figure(fig, args.out)
    numbers = {k: v for k, v in dataclasses.asdict(report).items() if k not in ("z", "worst_z", "mu")}
    numbers.update(worst_z=[report.worst_z.real, report.worst_z.imag], stable=report.stable,
                   summary=report.summary(), model=args.model, gamma=gamma, seed=args.seed,
                   z_abs_max=float(np.abs(report.z).max()))
    atomic_write_json(numbers, str(args.out).rsplit(".", 1)[0] + ".json")
    print(f"wrote {args.out}")
    return 0
