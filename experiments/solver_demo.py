"""``python -m experiments solver-demo``: the table of :mod:`solvers.demo`, with its options checked first so
that a bad value ends in one line and exit status 2 instead of a failure halfway through the table."""
from __future__ import annotations

import argparse
import math

from solvers import demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    demo.add_arguments(parser)


def check(args: argparse.Namespace) -> None:
    if args.dim < 2:
        raise ValueError(f"--dim must be >= 2 (the partitioned method splits the state in two), got {args.dim}")
    if args.outputs < 2:
        raise ValueError(f"--outputs must be >= 2 (the start and at least one output time), got {args.outputs}")
    for name in ("t_end", "step_size", "rtol", "atol"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive finite number, got {value}")


def run(args: argparse.Namespace) -> int:
    check(args)
    return demo.run(args)
