"""LEM, the long expressive memory (Rusch, Mishra, Erichson & Mahoney, ICLR 2022): two time scales learned per
neuron and per step, as rates inside a first-order field on h = [z, y]:

    z' = sigma(W_2 y + V_2 x + b_2) * (tanh(W_z y + V_z x + b_z) - z),
    y' = sigma(W_1 y + V_1 x + b_1) * (tanh(W_y z + V_y x + b_y) - y).

Partitioned (Gauss-Seidel) Euler over the blocks (z, y) with step dt is the authors' update,

    z_n = (1 - dt_n) z_{n-1} + dt_n tanh(W_z y_{n-1} + V_z x_n + b_z),          dt_n = dt sigma(W_2 y_{n-1} + ...),
    y_n = (1 - dtbar_n) y_{n-1} + dtbar_n tanh(W_y z_n + V_y x_n + b_y),        dtbar_n = dt sigma(W_1 y_{n-1} + ...),

(both rates from y_{n-1}; the y update sees the new z); any other solver integrates the ODE. Parameters as in
their code: ``inp2hid`` Linear(m -> 4n) giving [V_1, V_2, V_y, V_z] x + b, ``hid2hid`` Linear(n -> 3n) giving
[W_1, W_2, W_z] y + b, ``transform_z`` Linear(n -> n) giving W_y z + b, every weight and bias drawn from
U(-1/sqrt(n), 1/sqrt(n)); the readout reads y. sMNIST (n 128, m 1, 10 classes): 68,362 parameters.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import LEMForm, VectorField, check_positive_int


class LEMField(VectorField):
    """LEM's field on h = [z, y] (2n values)."""

    gamma = 0.0  # no diffusion term

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = n = check_positive_int("hidden_size", hidden_size)
        self.state_size = 2 * n
        self.blocks = (slice(0, n), slice(n, 2 * n))
        self.input_proj_size = 4 * n
        self.inp2hid = nn.Linear(self.input_size, 4 * n)
        self.hid2hid = nn.Linear(n, 3 * n)
        self.transform_z = nn.Linear(n, n)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def input_projection(self, x: Tensor) -> Tensor:
        """[V_1 x + b, V_2 x + b, V_z x + b, V_y x + b] (4n), in the authors' chunk order."""
        return self.inp2hid(x)

    def matrices(self) -> tuple[Tensor, ...]:
        return self.hid2hid.weight, self.hid2hid.bias, self.transform_z.weight, self.transform_z.bias

    def coupling_matrix(self) -> Tensor:
        """[W_1; W_2; W_z] (3n, n): the pre-activations computed from y (the rates and z's target)."""
        return self.hid2hid.weight

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        w_hid, b_hid, w_z, b_z = mats
        n = self.hidden_size
        z, y = h[..., :n], h[..., n:]
        i_dt1, i_dt2, i_z, i_y = u.chunk(4, dim=-1)
        h_dt1, h_dt2, h_y = (y @ w_hid.T + b_hid).chunk(3, dim=-1)
        dz = torch.sigmoid(i_dt2 + h_dt2) * (torch.tanh(i_y + h_y) - z)
        dy = torch.sigmoid(i_dt1 + h_dt1) * (torch.tanh(z @ w_z.T + b_z + i_z) - y)
        return torch.cat([dz, dy], dim=-1)

    def lem_form(self) -> LEMForm:
        return LEMForm(self.inp2hid.weight, self.inp2hid.bias, self.hid2hid.weight, self.hid2hid.bias,
                       self.transform_z.weight, self.transform_z.bias)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"
