"""The stability check every training experiment runs before its first step (``--stability-check``).

It finds the :class:`odernn.ODERNN` inside a model and holds step x Jacobian eigenvalues along the run on a
few training sequences against the solver's stability region (:func:`odernn.stability.assert_stable`):
``warn`` prints the report and warns when the discretisation leaves its region, ``raise`` stops the run,
``off`` skips it. Models without an ODERNN (LSTM, GRU) have nothing to check.

Cost. The model runs over each checked sequence once; then one eigenvalue problem of size n (the state
size) per checked state, two for partitioned Euler (its one-step matrix too). ``--stability-steps K``
(default 64) checks the states at K evenly spaced steps of each sequence (all of them when it is shorter),
and the number of sequences is cut so that at most 64 problems of size 256 (the work of 64 * 256^3
multiply-adds; more problems when n is smaller, up to the 8 sequences given) are solved: the AFRNN-MNIST
preset (784 steps, 2 layers of 128) solves 128 problems of size 256 instead of 1,568.
"""
from __future__ import annotations

import argparse

from torch import Tensor, nn

from experiments.cli_options import positive_int
from odernn import ODERNN
from odernn.stability import StabilityReport, assert_stable

ACTIONS = ("warn", "raise", "off")
DEFAULT_STEPS = 64
_MAX_JACOBIAN_ENTRIES = 20_000_000  # batch x steps x n x n held at once (160 MB in float64)
_MAX_EIGEN_WORK = 64 * 256 ** 3  # sum of n^3 over the checked states: 64 states of n = 256 (~2 s on one core)


def add_stability_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stability-check", choices=ACTIONS, default="warn",
                        help="before training, hold step x Jacobian eigenvalues against the solver's stability "
                             "region on a few training sequences: warn (default), raise (stop with exit status 2), "
                             "or off")
    parser.add_argument("--stability-steps", type=positive_int, default=DEFAULT_STEPS, metavar="K",
                        help=f"the check looks at the states of at most K evenly spaced steps of each sequence "
                             f"(default {DEFAULT_STEPS}), which bounds its cost on long sequences")


def find_odernn(model: nn.Module) -> ODERNN | None:
    """The first :class:`ODERNN` among ``model``'s submodules (``model`` itself included), or None."""
    return next((m for m in model.modules() if isinstance(m, ODERNN)), None)


def check_budget(rnn: ODERNN, batch: int, length: int, steps: int = DEFAULT_STEPS) -> tuple[int, int]:
    """(sequences, steps per sequence) the check looks at: at most ``steps`` steps of each sequence and as
    many of the ``batch`` sequences as the memory and eigenvalue budgets allow (at least one)."""
    n = rnn.field.state_size
    k = max(1, min(length, steps))
    problems = 2 if rnn.method.needs_jacobian else 1  # eigenvalues of J, and of the one-step matrix
    sequences = min(batch, _MAX_JACOBIAN_ENTRIES // (k * n * n), _MAX_EIGEN_WORK // (problems * k * n ** 3))
    return max(1, sequences), k


def pre_training_check(model: nn.Module, x: Tensor, action: str = "warn", steps: int = DEFAULT_STEPS,
                       progress: bool = False) -> StabilityReport | None:
    """Run the stability check on (a bounded part of) the batch ``x`` (B, T, m) of ``model``'s ODERNN.

    Returns the report, or None when ``action`` is ``"off"`` or the model has no ODERNN. ``steps`` is
    ``--stability-steps``; ``progress`` shows a bar over the eigenvalue problems.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown stability check action {action!r}; known: {', '.join(ACTIONS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--stability-steps must be a positive integer, got {steps!r}")
    rnn = find_odernn(model)
    if action == "off" or rnn is None:
        return None
    batch, k = check_budget(rnn, x.shape[0], x.shape[1], steps)
    report = assert_stable(rnn, x[:batch], action=action, sample_steps=k,
                           progress=progress)  # warns with the summary when unstable
    if report.stable:
        print(f"stability check ({batch} sequence{'s' if batch > 1 else ''}): {report.summary()}", flush=True)
    return report
