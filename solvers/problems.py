"""Test problems with exact solutions, shared by the demo, the benchmarks and the tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class LinearProblem:
    """y' = A y, y(0) = y0, with the exact solution y(t) = exp(t A) y0 (``torch.linalg.matrix_exp``). The
    problem is itself the right-hand side f(t, y), carrying ``linear_part`` (the part of A an IMEX method
    takes implicitly) when one is declared."""

    A: Tensor
    y0: Tensor
    linear_part: Optional[Tensor] = None

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        """dy/dt = A y (y may carry leading batch dimensions)."""
        return y @ self.A.T

    __call__ = f

    def exact(self, t: Tensor) -> Tensor:
        """exp(t_k A) y0 for every t_k: shape (len(t), *y0.shape)."""
        expm = torch.linalg.matrix_exp(t.reshape(-1, 1, 1) * self.A)
        return self.y0 @ expm.transpose(-1, -2)


def random_linear_problem(dim: int = 10, seed: int = 0, dtype: torch.dtype = torch.float64,
                          shift: float = 0.5) -> LinearProblem:
    """A = G / sqrt(dim) - shift * I with G standard normal: by the circular law its eigenvalues fill the
    disc of radius ~1 around -shift, an O(1) spectrum with both decaying and oscillating modes. Its declared
    linear part is the shift, -shift I (as a diagonal)."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(dim, dim, generator=gen, dtype=dtype)
    A = G / dim ** 0.5 - shift * torch.eye(dim, dtype=dtype)
    return LinearProblem(A=A, y0=torch.randn(dim, generator=gen, dtype=dtype),
                         linear_part=torch.full((dim,), -shift, dtype=dtype))
