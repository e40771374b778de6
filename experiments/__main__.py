"""Command line: ``python -m experiments <command> ...`` (also the console script ``odernn-experiments``).

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; modules
are imported only when their command runs, so one broken optional dependency cannot break the others.
Every failure a user can cause (a bad flag or setting, missing or malformed data, an output folder that
cannot be written, a run that diverges or leaves its stability region under ``--stability-check raise``, a
missing optional package) ends in one line on stderr and exit status 2, without a traceback
(:mod:`experiments.cli_options`). Set ``ODERNN_TRACEBACK=1`` to see the traceback of an unexpected error.
"""
from __future__ import annotations

import importlib
import os
import sys

from experiments.cli_options import ERRORS, OneLineArgumentParser, report_error

COMMANDS: dict[str, tuple[str, str]] = {
    "solver-demo": ("experiments.solver_demo", "convergence table of every solver on a linear ODE"),
    "benchmark": ("experiments.benchmark", "forward+backward speed against torch.nn.RNN / LSTM"),
    "stability": ("experiments.stability_cli", "stability regions with a model's eigenvalues drawn on them"),
    "dynamics": ("experiments.dynamics", "the papers' dynamics figures under any solver"),
    "sequential": ("experiments.sequential", "sequential image classification (digits, MNIST, CIFAR-10, ...)"),
    "sweep": ("experiments.sweep", "one task across solvers and models"),
    "trajectory": ("experiments.trajectory.cli", "trajectory prediction on ODE systems or your own data (AFRNN "
                   "Table 3: --preset table3), energy conservation"),
    "adding": ("experiments.adding", "the adding problem (coRNN and LEM authors' protocol) for any model and solver"),
    "screen": ("experiments.screen", "screening sweep over the AntisymmetricRNN search grid"),
    "curves": ("experiments.curves", "learning curves of training runs (table and plot)"),
    "reproduce": ("experiments.reproduce", "check a run folder's published result on the official test set"),
    "implicit-grid": ("experiments.implicit_grid", "the implicit methods at large steps with real input"),
    "faults": ("experiments.faults", "the fault-injection suite: bad files, flags, NaN mid-solve, kill -9"),
}


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m experiments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _exit_code(exc: SystemExit) -> int:
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (0, or 2 after a one-line error on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] not in COMMANDS:
            build_parser().parse_args(argv)  # prints the known commands (--help), or one line naming the problem
            return 2
        name, rest = argv[0], argv[1:]
        module = importlib.import_module(COMMANDS[name][0])
        sub = OneLineArgumentParser(prog=f"python -m experiments {name}", description=COMMANDS[name][1])
        module.add_arguments(sub)
        args = sub.parse_args(rest)
    except SystemExit as exc:  # --help, or argparse's one-line error
        return _exit_code(exc)
    except ERRORS as exc:  # e.g. a command module whose optional dependency is missing
        return report_error(exc)
    try:
        return int(module.run(args) or 0)
    except ERRORS as exc:
        return report_error(exc)
    except Exception as exc:  # any other failure (a solve out of steps, or a bug): one line with its type
        if os.environ.get("ODERNN_TRACEBACK"):
            raise
        return report_error(RuntimeError(f"{exc} ({type(exc).__name__}; ODERNN_TRACEBACK=1 shows the traceback)"))


if __name__ == "__main__":
    sys.exit(main())
