"""Single-layer fields: AntisymmetricRNN (eq. 8, 12), its gated form (eq. 13) and the unstructured ablation.

All three share one form. With A the recurrent matrix and u = V x + b the input projection:
- plain:  f(h, u) = tanh(A h + u)                                   (eq. 8 / eq. 12)
- gated:  f(h, u) = sigmoid(A h + u_z) * tanh(A h + u_h), u = [u_z, u_h]   (eq. 13, A shared by gate and update)
AntisymmetricRNN: A = W - W^T - gamma I (eq. 12). Ablation (Table 2 of the paper): A = W - gamma I, W free.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import TanhForm, VectorField, check_gamma, check_positive_int
from .params import AntisymmetricMatrix, check_choice, normal_, shifted, INITS


def affine(u: Tensor, h: Tensor, matrix: Tensor) -> Tensor:
    """u + h A^T, fused (addmm) for plain 2-D batches, generic under vmap or for 1-D states."""
    if h.dim() == 2 and u.dim() == 2 and u.shape[0] == h.shape[0]:
        return torch.addmm(u, h, matrix.T)
    return u + h @ matrix.T


def gated_tanh(pre: Tensor, u: Tensor) -> Tensor:
    """Eq. 13: sigmoid(pre + u_z) * tanh(pre + u_h) with u = [u_z, u_h] along the last dimension."""
    u_z, u_h = u.chunk(2, dim=-1)
    return torch.sigmoid(pre + u_z) * torch.tanh(pre + u_h)


class SingleLayerField(VectorField):
    """One layer of n units with recurrent matrix ``recurrent_matrix()`` - gamma I; plain or gated."""

    def __init__(self, input_size: int, hidden_size: int, gamma: float, gated: bool, sigma_w: float,
                 init: str) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.state_size = check_positive_int("hidden_size", hidden_size)
        self.blocks = (slice(0, self.state_size),)
        self.gamma = check_gamma(gamma)
        self.gated = bool(gated)
        self.sigma_w = float(sigma_w)
        self.init = check_choice("init", init, INITS)
        self.input_proj_size = self.state_size * (2 if gated else 1)
        self.input = nn.Linear(self.input_size, self.input_proj_size)

    def reset_parameters(self) -> None:
        normal_(self.input.weight, self.input_size, 1.0, self.init)
        nn.init.zeros_(self.input.bias)

    def recurrent_matrix(self) -> Tensor:
        raise NotImplementedError

    def input_projection(self, x: Tensor) -> Tensor:
        return self.input(x)

    def matrices(self) -> tuple[Tensor, ...]:
        return (shifted(self.recurrent_matrix(), self.gamma),)

    def tanh_form(self) -> TanhForm:
        return TanhForm(self.matrices()[0], self.input.weight, self.input.bias, self.gated)

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        (matrix,) = mats
        if self.gated:
            return gated_tanh(h @ matrix.T, u)
        return torch.tanh(affine(u, h, matrix))

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.state_size}, gamma={self.gamma}, "
                f"gated={self.gated}, sigma_w={self.sigma_w}, init={self.init!r}")


class AntisymmetricField(SingleLayerField):
    """AntisymmetricRNN, eq. 8 with diffusion (eq. 12): f = tanh((W - W^T - gamma I) h + V x + b).

    ``parameterization="triangular"`` (n(n-1)/2 recurrent parameters, the paper) or ``"full"`` (R - R^T,
    n^2 parameters, the AFRNN code's ARNN). ``init="paper"`` (App. C) or ``"afrnn"`` (std 1/n).
    """

    gated_form = False

    def __init__(self, input_size: int, hidden_size: int, gamma: float = 0.01,
                 parameterization: str = "triangular", sigma_w: float = 1.0, init: str = "paper") -> None:
        super().__init__(input_size, hidden_size, gamma, self.gated_form, sigma_w, init)
        self.antisymmetric = AntisymmetricMatrix(self.state_size, parameterization)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.antisymmetric.reset_parameters(self.sigma_w, self.init)

    def recurrent_matrix(self) -> Tensor:
        return self.antisymmetric()


class GatedAntisymmetricField(AntisymmetricField):
    """Gated AntisymmetricRNN, eq. 13: z = sigmoid(A h + V_z x + b_z), f = z * tanh(A h + V_h x + b_h),
    A = W - W^T - gamma I shared between gate and update. ``input_projection`` returns [V_z x + b_z, V_h x + b_h].
    """

    gated_form = True


class UnstructuredField(SingleLayerField):
    """The ablation of the AntisymmetricRNN paper (Table 2): eq. 12 / eq. 13 with W - W^T replaced by an
    unconstrained n x n matrix W (diffusion kept: A = W - gamma I); ``gated`` selects eq. 13's form."""

    def __init__(self, input_size: int, hidden_size: int, gated: bool = False, gamma: float = 0.01,
                 sigma_w: float = 1.0, init: str = "paper") -> None:
        super().__init__(input_size, hidden_size, gamma, gated, sigma_w, init)
        self.weight = nn.Parameter(torch.zeros(self.state_size, self.state_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        normal_(self.weight, self.state_size, self.sigma_w, self.init)

    def recurrent_matrix(self) -> Tensor:
        return self.weight
