"""Heads on any sequence module ``rnn(x, h0) -> (outputs (B, T, state), h_n (B, state))`` with ``readout_slice``."""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn


def readout_width(rnn: nn.Module) -> int:
    """Width of the part of the state a head reads; the sequence module must say which (``readout_slice``)."""
    part = getattr(rnn, "readout_slice", None)
    if not isinstance(part, slice):
        raise ValueError(f"a head needs a sequence module with a readout_slice (ODERNN, LSTMBaseline, "
                         f"GRUBaseline), got {type(rnn).__name__}")
    return part.stop - part.start


def check_out_features(name: str, value: int) -> int:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class SequenceClassifier(nn.Module):
    """Logits from a linear readout of the last state's top layer (both papers' classifiers)."""

    def __init__(self, rnn: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.readout = nn.Linear(readout_width(rnn), check_out_features("num_classes", num_classes))

    def forward(self, x: Tensor, h0: Optional[Any] = None, **times: Any) -> Tensor:
        """``times`` (``times=``, ``t0=``) go to the recurrent module (``ODERNN.forward``)."""
        _, h_n = self.rnn(x, h0, **times)
        return self.readout(h_n[..., self.rnn.readout_slice])


class TrajectoryRegressor(nn.Module):
    """A linear readout of the top layer at every step: (B, T, out_features) (the double pendulum)."""

    def __init__(self, rnn: nn.Module, out_features: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.readout = nn.Linear(readout_width(rnn), check_out_features("out_features", out_features))

    def forward(self, x: Tensor, h0: Optional[Any] = None, **times: Any) -> Tensor:
        """``times`` (``times=``, ``t0=``) go to the recurrent module (``ODERNN.forward``)."""
        outputs, _ = self.rnn(x, h0, **times)
        return self.readout(outputs[..., self.rnn.readout_slice])
