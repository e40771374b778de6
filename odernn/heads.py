"""Heads on any sequence module ``rnn(x, h0) -> (outputs (B, T, state), h_n (B, state))`` with ``readout_slice``."""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn


def readout_width(rnn: nn.Module) -> int:
    part = rnn.readout_slice
    return part.stop - part.start


class SequenceClassifier(nn.Module):
    """Logits from a linear readout of the last state's top layer (both papers' classifiers)."""

    def __init__(self, rnn: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.readout = nn.Linear(readout_width(rnn), num_classes)

    def forward(self, x: Tensor, h0: Optional[Any] = None) -> Tensor:
        _, h_n = self.rnn(x, h0)
        return self.readout(h_n[..., self.rnn.readout_slice])


class TrajectoryRegressor(nn.Module):
    """A linear readout of the top layer at every step: (B, T, out_features) (the double pendulum)."""

    def __init__(self, rnn: nn.Module, out_features: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.readout = nn.Linear(readout_width(rnn), out_features)

    def forward(self, x: Tensor, h0: Optional[Any] = None) -> Tensor:
        outputs, _ = self.rnn(x, h0)
        return self.readout(outputs[..., self.rnn.readout_slice])
