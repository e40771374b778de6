"""Parameter building blocks of the fields: antisymmetric matrices and the two initialisations.

- Antisymmetric matrix W - W^T (AntisymmetricRNN eq. 8): ``"triangular"`` stores W strictly upper triangular,
  n(n-1)/2 parameters (the paper, Section 3.2); ``"full"`` stores a full R and forms R - R^T, n^2 parameters
  (the AFRNN authors' code).
- Initialisation ``"paper"`` (AntisymmetricRNN App. C): input-to-hidden N(0, 1/m), hidden-to-hidden
  N(0, sigma_w^2 / n), biases 0. ``"afrnn"`` (the AFRNN authors' code, see docs/design.md): standard
  deviation 1/fan_in instead of variance 1/fan_in (recurrent: sigma_w / n).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PARAMETERIZATIONS = ("triangular", "full")
INITS = ("paper", "afrnn")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; known: {', '.join(allowed)}")
    return value


def check_scale(scale: float, name: str = "sigma_w") -> float:
    """An initialisation scale: a finite number >= 0 (0 gives zero weights); ValueError otherwise."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"{name}, the scale of the recurrent weights' initialisation, must be a finite number "
                         f">= 0 (0: zero weights), got {scale!r}")
    return float(scale)


def init_std(fan_in: int, scale: float, init: str) -> float:
    """Standard deviation of a weight with the given fan-in: scale/sqrt(fan_in) (paper) or scale/fan_in (afrnn)."""
    check_choice("init", init, INITS)
    check_scale(scale)
    return scale / math.sqrt(fan_in) if init == "paper" else scale / fan_in


def normal_(weight: Tensor, fan_in: int, scale: float, init: str) -> Tensor:
    """Draw ``weight`` from N(0, init_std^2); a NaN, infinite or negative scale is refused (ValueError)."""
    check_scale(scale)
    with torch.no_grad():
        return weight.normal_(0.0, init_std(fan_in, scale, init)) if scale > 0 else weight.zero_()


class AntisymmetricMatrix(nn.Module):
    """An n x n antisymmetric matrix W - W^T from ``triangular`` (n(n-1)/2) or ``full`` (n^2) parameters."""

    def __init__(self, n: int, parameterization: str = "triangular") -> None:
        super().__init__()
        self.n = n
        self.parameterization = check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        if parameterization == "triangular":
            self.weight = nn.Parameter(torch.zeros(n * (n - 1) // 2))
            self.register_buffer("index", torch.triu_indices(n, n, offset=1), persistent=False)
        else:
            self.weight = nn.Parameter(torch.zeros(n, n))

    def reset_parameters(self, sigma_w: float, init: str) -> None:
        normal_(self.weight, self.n, sigma_w, init)

    def upper(self) -> Tensor:
        """W (strictly upper triangular for ``triangular``, full R for ``full``)."""
        if self.parameterization == "full":
            return self.weight
        rows, cols = self.index
        return self.weight.new_zeros(self.n, self.n).index_put((rows, cols), self.weight)

    def forward(self) -> Tensor:
        w = self.upper()
        return w - w.T

    def extra_repr(self) -> str:
        return f"n={self.n}, parameterization={self.parameterization!r}"


def shifted(matrix: Tensor, gamma: float) -> Tensor:
    """matrix - gamma * I (I the rectangular identity when the matrix is not square), eq. 12 / eq. 17-18."""
    if gamma == 0.0:
        return matrix
    eye = torch.eye(*matrix.shape, dtype=matrix.dtype, device=matrix.device)
    return matrix - gamma * eye
