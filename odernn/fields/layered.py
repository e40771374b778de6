"""Multi-layer fields of the AFRNN paper (002_*.txt): AFRNN (eq. 11, Theorem 3, diffusion eq. 17-18),
the stacked 2-ARNN (no feedback) and FRNN (feedback with its own unconstrained matrix).

The flat state h = [g^1, ..., g^N] (bottom layer first, ``blocks[i]`` its slice) obeys
    dg^n/dt = tanh( sum_k C^{nk} g^k + E^n x + b^n ),   E^n = 0 for n > 1 (input into layer 1 only),
with the coupling matrix C (``coupling_matrix()``) built from blocks:
- diagonal C^{nn} = R_n - R_n^T - gamma I (antisymmetric, eq. 17-18);
- feedforward C^{nk}, k < n coupled: W^{kn} - gamma I (the rectangular identity for unequal widths; the
  authors' code subtracts gamma here too, eq. 17-18);
- feedback C^{kn}: AFRNN -(W^{kn} - gamma I)^T (Theorem 3: W^{kn} = -(W^{nk})^T), so C = antisymmetric - gamma I;
  FRNN a free matrix F^{kn}; 2-ARNN none.
``coupling="consecutive"`` couples layers n and n+1 (the paper's default, zero blocks elsewhere); ``"dense"``
couples every pair. Two layers with consecutive coupling give eq. 17-18 (g = layer 1, h = layer 2, W = W^{12}).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import TanhForm, VectorField, check_gamma, check_positive_int, make_blocks
from .params import INITS, PARAMETERIZATIONS, AntisymmetricMatrix, check_choice, normal_, shifted
from .single import affine

COUPLINGS = ("consecutive", "dense")
FEEDBACKS = ("antisymmetric", "free", "none")


def coupled_pairs(n_layers: int, coupling: str) -> list[tuple[int, int]]:
    """(lower k, upper n) layer pairs joined by a feedforward matrix W^{kn}."""
    check_choice("coupling", coupling, COUPLINGS)
    if coupling == "consecutive":
        return [(k, k + 1) for k in range(n_layers - 1)]
    return [(k, n) for n in range(n_layers) for k in range(n)]


class LayeredField(VectorField):
    """Shared machinery of the block fields; ``feedback`` selects AFRNN / FRNN / 2-ARNN."""

    def __init__(self, input_size: int, layer_sizes: list[int], gamma: float, coupling: str, feedback: str,
                 parameterization: str, sigma_w: float, init: str) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.blocks = make_blocks(layer_sizes)
        self.layer_sizes = [b.stop - b.start for b in self.blocks]
        self.state_size = self.blocks[-1].stop
        self.input_proj_size = self.layer_sizes[0]
        self.gamma = check_gamma(gamma)
        self.coupling = coupling
        self.feedback = check_choice("feedback", feedback, FEEDBACKS)
        self.pairs = coupled_pairs(len(self.layer_sizes), coupling)
        self.sigma_w = float(sigma_w)
        self.init = check_choice("init", init, INITS)
        check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        sizes = self.layer_sizes
        self.input = nn.Linear(self.input_size, sizes[0])
        self.upper_bias = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in sizes[1:]])
        self.diagonal = nn.ModuleList([AntisymmetricMatrix(s, parameterization) for s in sizes])
        self.feedforward = nn.ParameterList([nn.Parameter(torch.zeros(sizes[n], sizes[k])) for k, n in self.pairs])
        self.feedback_weight = nn.ParameterList(
            [nn.Parameter(torch.zeros(sizes[k], sizes[n])) for k, n in self.pairs] if feedback == "free" else [])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        normal_(self.input.weight, self.input_size, 1.0, self.init)
        nn.init.zeros_(self.input.bias)
        for bias in self.upper_bias:
            nn.init.zeros_(bias)
        for matrix in self.diagonal:
            matrix.reset_parameters(self.sigma_w, self.init)
        for (k, _), weight in zip(self.pairs, self.feedforward):
            normal_(weight, self.layer_sizes[k], self.sigma_w, self.init)
        for (_, n), weight in zip(self.pairs, self.feedback_weight):
            normal_(weight, self.layer_sizes[n], self.sigma_w, self.init)

    def coupling_blocks(self) -> list[list[Tensor | None]]:
        """blocks[n][k] = C^{nk}, the effect of layer k on layer n's pre-activation (None: zero)."""
        n_layers = len(self.layer_sizes)
        grid: list[list[Tensor | None]] = [[None] * n_layers for _ in range(n_layers)]
        for n, matrix in enumerate(self.diagonal):
            grid[n][n] = shifted(matrix(), self.gamma)
        for i, ((k, n), weight) in enumerate(zip(self.pairs, self.feedforward)):
            grid[n][k] = shifted(weight, self.gamma)
            if self.feedback == "antisymmetric":
                grid[k][n] = -grid[n][k].T
            elif self.feedback == "free":
                grid[k][n] = self.feedback_weight[i]
        return grid

    def coupling_matrix(self) -> Tensor:
        grid = self.coupling_blocks()
        ref = grid[0][0]
        rows = [torch.cat([block if block is not None else ref.new_zeros(self.layer_sizes[n], self.layer_sizes[k])
                           for k, block in enumerate(row)], dim=1) for n, row in enumerate(grid)]
        return torch.cat(rows, dim=0)

    def input_projection(self, x: Tensor) -> Tensor:
        """E x + b^1, the input term of layer 1 (the only layer that sees x, Theorem 3)."""
        return self.input(x)

    def matrices(self) -> tuple[Tensor, ...]:
        """(C, rows of C for layer 1, ..., rows of C for layer N)."""
        coupling = self.coupling_matrix()
        return (coupling, *(coupling[block] for block in self.blocks))

    def tanh_form(self) -> TanhForm:
        """C of ``coupling_matrix()``; V is E padded with zero rows for the upper layers, b = [b^1, ..., b^N]."""
        upper = sum(self.layer_sizes[1:])
        weight = torch.cat([self.input.weight, self.input.weight.new_zeros(upper, self.input_size)])
        return TanhForm(self.coupling_matrix(), weight, torch.cat([self.input.bias, *self.upper_bias]))

    def evaluate_block(self, mats: tuple[Tensor, ...], i: int, h: Tensor, u: Tensor) -> Tensor:
        offset = u if i == 0 else self.upper_bias[i - 1]
        return torch.tanh(affine(offset, h, mats[1 + i]) if i == 0 else offset + h @ mats[1 + i].T)

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        return torch.cat([self.evaluate_block(mats, i, h, u) for i in range(len(self.blocks))], dim=-1)

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, layer_sizes={self.layer_sizes}, gamma={self.gamma}, "
                f"coupling={self.coupling!r}, feedback={self.feedback!r}, init={self.init!r}")


def layer_list(layer_sizes: list[int] | tuple[int, ...] | int, default_layers: int = 2) -> list[int]:
    return [layer_sizes] * default_layers if isinstance(layer_sizes, int) else list(layer_sizes)


class AFRNNField(LayeredField):
    """Antisymmetric feedback RNN (eq. 11, Theorem 3, diffusion eq. 17-18): any number of layers of any
    widths; the whole coupling matrix is antisymmetric - gamma I. Full R - R^T parameters by default."""

    def __init__(self, input_size: int, layer_sizes: list[int] | int, gamma: float = 0.01,
                 coupling: str = "consecutive", parameterization: str = "full", sigma_w: float = 1.0,
                 init: str = "paper") -> None:
        super().__init__(input_size, layer_list(layer_sizes), gamma, coupling, "antisymmetric",
                         parameterization, sigma_w, init)


class StackedAntisymmetricField(LayeredField):
    """2-ARNN (and N-ARNN): antisymmetric layers stacked with feedforward matrices W^{kn} - gamma I, no feedback."""

    def __init__(self, input_size: int, layer_sizes: list[int] | int, gamma: float = 0.01,
                 coupling: str = "consecutive", parameterization: str = "full", sigma_w: float = 1.0,
                 init: str = "paper") -> None:
        super().__init__(input_size, layer_list(layer_sizes), gamma, coupling, "none", parameterization,
                         sigma_w, init)


class FRNNField(LayeredField):
    """FRNN: AFRNN without Theorem 3's constraint, the feedback C^{kn} a free matrix with its own parameters."""

    def __init__(self, input_size: int, layer_sizes: list[int] | int, gamma: float = 0.01,
                 coupling: str = "consecutive", parameterization: str = "full", sigma_w: float = 1.0,
                 init: str = "paper") -> None:
        super().__init__(input_size, layer_list(layer_sizes), gamma, coupling, "free", parameterization,
                         sigma_w, init)
