"""Lipschitz RNN (Erichson, Azencot, Queiruga, Hodgkinson & Mahoney, ICLR 2021):

    h' = alpha * A_beta h + tanh(W_beta h + U x + b),
    A_beta = (1 - beta)(M_A + M_A^T) + beta (M_A - M_A^T) - gamma I,   W_beta likewise from M_W,

a linear part whose symmetric share (1 - beta) is kept small beside a tanh layer. As in the authors' code the
matrices act on the row state (h A_beta, h W_beta); forward Euler at eps is their discretisation (they also
use RK2): h_n = h + eps (alpha h A_beta + tanh(h W_beta + U x_n + b)). M_A and M_W are drawn from
N(0, (init_std / n)^2), U by Xavier's normal rule, b = 0. sMNIST (n 128, m 1, 10 classes, beta 0.75,
gamma 0.001, eps 0.03): 34,314 parameters with the linear readout.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import LinearTanhForm, VectorField, check_gamma, check_positive_int


def beta_matrix(m: Tensor, beta: float, gamma: float) -> Tensor:
    """(1 - beta)(M + M^T) + beta (M - M^T) - gamma I."""
    return (1.0 - beta) * (m + m.T) + beta * (m - m.T) - gamma * torch.eye(m.shape[0], dtype=m.dtype,
                                                                           device=m.device)


class LipschitzField(VectorField):
    """Lipschitz RNN's field on h (n values)."""

    def __init__(self, input_size: int, hidden_size: int, beta: float = 0.75, gamma: float = 0.001,
                 alpha: float = 1.0, init_std: float = 1.0) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.state_size = n = check_positive_int("hidden_size", hidden_size)
        self.blocks = (slice(0, n),)
        self.input_proj_size = n
        beta, alpha, init_std = float(beta), float(alpha), float(init_std)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if not (alpha == alpha and abs(alpha) != float("inf")) or not (init_std > 0 and init_std != float("inf")):
            raise ValueError(f"alpha must be finite and init_std a finite number > 0, got {alpha}, {init_std}")
        self.beta, self.gamma, self.alpha, self.init_std = beta, check_gamma(gamma), alpha, init_std
        self.m_a = nn.Parameter(torch.empty(n, n))
        self.m_w = nn.Parameter(torch.empty(n, n))
        self.input = nn.Linear(self.input_size, n)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.init_std / self.state_size
        nn.init.normal_(self.m_a, 0.0, std)
        nn.init.normal_(self.m_w, 0.0, std)
        nn.init.xavier_normal_(self.input.weight)
        nn.init.zeros_(self.input.bias)

    def input_projection(self, x: Tensor) -> Tensor:
        return self.input(x)

    @property
    def linear_part(self) -> Tensor:
        """L = alpha A_beta^T (column convention of the row update h alpha A_beta), for IMEX methods."""
        return self.alpha * beta_matrix(self.m_a, self.beta, self.gamma).T

    def matrices(self) -> tuple[Tensor, ...]:
        """(W_beta, A_beta)."""
        return beta_matrix(self.m_w, self.beta, self.gamma), beta_matrix(self.m_a, self.beta, self.gamma)

    def linear_tanh_form(self) -> LinearTanhForm:
        """L = alpha A_beta, W = W_beta and the input layer: the fused Euler scan's input."""
        w, a = self.matrices()
        return LinearTanhForm(self.alpha * a, w, self.input.weight, self.input.bias)

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        w, a = mats
        return self.alpha * (h @ a) + torch.tanh(h @ w + u)

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.state_size}, beta={self.beta}, "
                f"gamma={self.gamma}, alpha={self.alpha}, init_std={self.init_std}")
