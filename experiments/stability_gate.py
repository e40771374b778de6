"""The stability check every training experiment runs before its first step (``--stability-check``).

It finds the :class:`odernn.ODERNN` inside a model and holds step x Jacobian eigenvalues along the run on a
few training sequences against the solver's stability region (:func:`odernn.stability.assert_stable`):
``warn`` prints the report and warns when the discretisation leaves its region, ``raise`` stops the run,
``off`` skips it. Models without an ODERNN (LSTM, GRU) have nothing to check.
"""
from __future__ import annotations

import argparse

from torch import Tensor, nn

from odernn import ODERNN
from odernn.stability import StabilityReport, assert_stable

ACTIONS = ("warn", "raise", "off")
_MAX_JACOBIAN_ENTRIES = 20_000_000  # batch x steps x n x n held at once (160 MB in float64)


def add_stability_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stability-check", choices=ACTIONS, default="warn",
                        help="before training, hold step x Jacobian eigenvalues against the solver's stability "
                             "region on a few training sequences: warn (default), raise, or off")


def find_odernn(model: nn.Module) -> ODERNN | None:
    """The first :class:`ODERNN` among ``model``'s submodules (``model`` itself included), or None."""
    return next((m for m in model.modules() if isinstance(m, ODERNN)), None)


def pre_training_check(model: nn.Module, x: Tensor, action: str = "warn") -> StabilityReport | None:
    """Run the stability check on (a memory-bounded prefix of) the batch ``x`` (B, T, m) of ``model``'s ODERNN.

    Returns the report, or None when ``action`` is ``"off"`` or the model has no ODERNN.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown stability check action {action!r}; known: {', '.join(ACTIONS)}")
    rnn = find_odernn(model)
    if action == "off" or rnn is None:
        return None
    n, steps = rnn.field.state_size, x.shape[1]
    batch = max(1, min(x.shape[0], _MAX_JACOBIAN_ENTRIES // (steps * n * n)))
    report = assert_stable(rnn, x[:batch], action=action)  # warns with the summary when unstable
    if report.stable:
        print(f"stability check ({batch} sequence{'s' if batch > 1 else ''}): {report.summary()}", flush=True)
    return report
