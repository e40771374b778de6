"""LSTM and GRU baselines behind the sequence-module interface of ``odernn.ODERNN``.

``forward(x, h0=None) -> (outputs, h_n)``: outputs are the top layer's hidden states (B, T, hidden) with
``batch_first``, h_n the top layer's last hidden state (B, hidden); ``readout_slice`` covers all of it. h0 is
passed to torch as is (LSTM: a tuple (h, c) of (num_layers, B, hidden)). The LSTM's forget-gate bias starts
at 1 (AntisymmetricRNN App. C, after Jozefowicz et al. 2015).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn


class TorchRecurrentBaseline(nn.Module):
    def __init__(self, core: nn.RNNBase, batch_first: bool) -> None:
        super().__init__()
        self.core = core
        self.batch_first = batch_first
        self.readout_slice = slice(0, core.hidden_size)

    def forward(self, x: Tensor, h0: Optional[Any] = None) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.core.input_size:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a 3-D tensor with {self.core.input_size} features, got shape {shape}")
        outputs, _ = self.core(x, h0)
        return outputs, (outputs[:, -1] if self.batch_first else outputs[-1])


class LSTMBaseline(TorchRecurrentBaseline):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True) -> None:
        super().__init__(nn.LSTM(input_size, hidden_size, num_layers, batch_first=batch_first), batch_first)
        with torch.no_grad():
            for name, bias in self.core.named_parameters():
                if name.startswith("bias_"):
                    bias[hidden_size:2 * hidden_size] = 1.0 if name.startswith("bias_ih") else 0.0


class GRUBaseline(TorchRecurrentBaseline):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True) -> None:
        super().__init__(nn.GRU(input_size, hidden_size, num_layers, batch_first=batch_first), batch_first)
