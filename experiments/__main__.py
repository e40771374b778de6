"""Command line: ``python -m experiments <command> ...`` (also the console script ``odernn-experiments``).

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; modules
are imported only when their command runs, so one broken optional dependency cannot break the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "solver-demo": ("solvers.demo", "convergence table of every solver on a linear ODE"),
    "benchmark": ("experiments.benchmark", "forward+backward speed against torch.nn.RNN / LSTM"),
    "stability": ("experiments.stability_cli", "stability regions with a model's eigenvalues drawn on them"),
    "dynamics": ("experiments.dynamics", "the papers' dynamics figures under any solver"),
    "double-pendulum": ("experiments.double_pendulum.cli", "ground truth, training and AFRNN Table 3"),
    "sequential": ("experiments.sequential", "sequential image classification (digits, MNIST, CIFAR-10, ...)"),
    "sweep": ("experiments.sweep", "one task across solvers and models"),
    "trajectory": ("experiments.trajectory.cli", "trajectory prediction on ODE systems or your own data"),
    "screen": ("experiments.screen", "screening sweep over the AntisymmetricRNN search grid"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage and the known commands, then exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"python -m experiments {name}", description=COMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except ValueError as exc:  # bad settings found past argparse: one line, exit status 2, no traceback
        sub.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
