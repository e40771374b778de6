"""The neural-ODE field (Chen, Rubanova, Bettencourt & Duvenaud, NeurIPS 2018; as the ODE-RNN's dynamics of
Rubanova, Chen & Duvenaud, NeurIPS 2019): a multilayer perceptron of the state and the held input,

    h' = W_out a(W_{L-1} ... a(W_1 h + V x + b_1) ... + b_{L-1}) + b_out,

with ``depth`` linear layers of ``width`` units between h and h' and a = tanh. The papers' fields are one tanh
layer on the state (h' = tanh(C h + V x + b) - ...), which cannot express a general vector field; this one
can, at the price of no structure for a fused scan: every solver integrates it through the generic scan. The
input enters the first layer (u = V x + b_1, computed once per sequence). PyTorch's default initialisation
for every layer except the output, whose weights are scaled by ``out_scale`` (default 0.1) so that the
initial dynamics are slow (large initial vector fields make a long sequence's state wander before training).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import VectorField, check_positive_int


class NeuralODEField(VectorField):
    """h' = MLP(h, x) on h (n values): ``depth`` >= 1 layers from h to h' (depth 1: h' = W_out tanh(W_1 h + u) +
    b_out), each hidden layer ``width`` units wide (default 2 n)."""

    gamma = 0.0  # no diffusion term

    def __init__(self, input_size: int, hidden_size: int, width: int | None = None, depth: int = 2,
                 out_scale: float = 0.1) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.state_size = n = check_positive_int("hidden_size", hidden_size)
        self.width = check_positive_int("width", 2 * n if width is None else width)
        self.depth = check_positive_int("depth", depth)
        out_scale = float(out_scale)
        if not (out_scale > 0 and out_scale != float("inf")):
            raise ValueError(f"out_scale must be a finite number > 0, got {out_scale}")
        self.out_scale = out_scale
        self.blocks = (slice(0, n),)
        self.input_proj_size = self.width
        self.input = nn.Linear(self.input_size, self.width)
        self.first = nn.Linear(n, self.width, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(self.width, self.width) for _ in range(self.depth - 1))
        self.out = nn.Linear(self.width, n)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.input, self.first, *self.hidden, self.out):
            layer.reset_parameters()
        with torch.no_grad():
            self.out.weight.mul_(self.out_scale)

    def input_projection(self, x: Tensor) -> Tensor:
        return self.input(x)

    def matrices(self) -> tuple[Tensor, ...]:
        """(W_1, W_2, b_2, ..., W_out, b_out): the weights acting on h and after it."""
        rest = [p for layer in (*self.hidden, self.out) for p in (layer.weight, layer.bias)]
        return (self.first.weight, *rest)

    def coupling_matrix(self) -> Tensor:
        """W_1 (width, n): the first layer's weights on h."""
        return self.first.weight

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        z = torch.tanh(h @ mats[0].T + u)
        hidden = mats[1:-2]
        for k in range(0, len(hidden), 2):
            z = torch.tanh(z @ hidden[k].T + hidden[k + 1])
        return z @ mats[-2].T + mats[-1]

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.state_size}, width={self.width}, "
                f"depth={self.depth}, out_scale={self.out_scale}")
