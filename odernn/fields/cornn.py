"""coRNN (Rusch & Mishra, ICLR 2021): a network of coupled oscillators, a second-order field.

Eq. (1) of the paper, y'' = tanh(W y + 𝒲 y' + V u + b) - gamma y - epsilon y', is written first-order over the
state h = [z, y] with z = y' (velocity block first):

    z' = tanh(W y + 𝒲 z + V x + b) - gamma y - epsilon z,      y' = z.

With the velocity block first, partitioned (Gauss-Seidel) Euler over the blocks (z, y) is exactly the update of
the authors' code:

    z_n = z_{n-1} + dt [tanh(W y_{n-1} + 𝒲 z_{n-1} + V x_n + b) - gamma y_{n-1} - epsilon z_{n-1}],
    y_n = y_{n-1} + dt z_n,

symplectic Euler with the damping taken explicitly (the paper calls its scheme IMEX, with the damping implicit;
the code is the reference). Any other solver integrates the same ODE: rk4, implicit midpoint, dopri5, ... .
Parameters as in the authors' code: one ``nn.Linear(m + 2n -> n)`` with bias acting on the concatenation
[x, z, y], PyTorch's default initialisation, zero initial state; the readout reads y (the last block). For
sequential MNIST (n = 256, m = 1, 10 classes) that is 134,154 parameters with the linear readout.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import OscillatorForm, VectorField, check_positive_int


def check_rate(name: str, value: float) -> float:
    value = float(value)
    if not value == value or abs(value) == float("inf") or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class CoRNNField(VectorField):
    """coRNN's field on h = [z, y] (2n values: velocities, then positions); ``gamma`` is the oscillators'
    stiffness and ``epsilon`` their damping (the paper's gamma and epsilon; sMNIST: 2.7 and 4.7 at dt 0.042)."""

    def __init__(self, input_size: int, hidden_size: int, gamma: float = 2.7, epsilon: float = 4.7) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        n = self.hidden_size
        self.state_size = 2 * n
        self.blocks = (slice(0, n), slice(n, 2 * n))
        self.input_proj_size = n
        self.gamma = check_rate("gamma (stiffness)", gamma)
        self.epsilon = check_rate("epsilon (damping)", epsilon)
        self.linear = nn.Linear(self.input_size + 2 * n, n)

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()

    @property
    def linear_part(self) -> Tensor:
        """L = [[-epsilon I, 0], [I, 0]] on (z, y): the damping and y' = z (``OscillatorForm.linear_part``)."""
        return self.oscillator_form().linear_part()

    def input_projection(self, x: Tensor) -> Tensor:
        """V x + b: the input columns of the one linear layer, and its bias."""
        return F.linear(x, self.linear.weight[:, :self.input_size], self.linear.bias)

    def matrices(self) -> tuple[Tensor, ...]:
        """(𝒲, W): the columns of the linear layer acting on z and on y."""
        m, n = self.input_size, self.hidden_size
        weight = self.linear.weight
        return weight[:, m:m + n], weight[:, m + n:]

    def coupling_matrix(self) -> Tensor:
        """[𝒲, W] (n, 2n): the pre-activations of the velocity units from the whole state [z, y]; the position
        units have no nonlinearity (y' = z)."""
        return torch.cat(self.matrices(), dim=1)

    def oscillator_form(self) -> OscillatorForm:
        """C = [𝒲, W], V and b of the one linear layer, gamma and epsilon: the fused symplectic scan's input."""
        m = self.input_size
        weight = self.linear.weight
        return OscillatorForm(weight[:, m:], weight[:, :m], self.linear.bias, self.gamma, self.epsilon)

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        w_z, w_y = mats
        n = self.hidden_size
        z, y = h[..., :n], h[..., n:]
        dz = torch.tanh(u + z @ w_z.T + y @ w_y.T) - self.gamma * y - self.epsilon * z
        return torch.cat([dz, z], dim=-1)

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, gamma={self.gamma}, "
                f"epsilon={self.epsilon}")
