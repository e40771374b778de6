"""Test problems shared by the demo, the benchmarks and the tests: linear ones with exact solutions, and the
stiff set (Robertson, Van der Pol with mu = 1000), checked against scipy's Radau."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
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


@dataclass(frozen=True)
class StiffProblem:
    """A stiff initial value problem whose right-hand side ``f(t, y)`` takes torch tensors (our solvers) and
    numpy arrays (scipy's, for references) alike; ``t`` are the output times."""

    name: str
    f: Callable[[Any, Any], Any]
    y0: tuple[float, ...]
    t: tuple[float, ...]
    atol_factor: float
    """atol = rtol * atol_factor (Robertson's y2 is ~1e-5, so its atol must sit far below rtol)."""


def _stack(y: Any) -> Callable[[list], Any]:
    return (lambda parts: torch.stack(parts, -1)) if isinstance(y, Tensor) else np.array


def robertson_f(t: Any, y: Any) -> Any:
    """Robertson's chemical kinetics (Hairer & Wanner II, section IV.1, eq. 1.4): rates 0.04, 1e4, 3e7."""
    y1, y2, y3 = y[..., 0], y[..., 1], y[..., 2]
    return _stack(y)([-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2 ** 2, 3e7 * y2 ** 2])


def van_der_pol_f(t: Any, y: Any, mu: float = 1000.0) -> Any:
    """Van der Pol's oscillator y'' = mu (1 - y^2) y' - y as a first-order system (stiff for large mu)."""
    return _stack(y)([y[..., 1], mu * (1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]])


ROBERTSON = StiffProblem("robertson", robertson_f, (1.0, 0.0, 0.0), (0.0, 1e-2, 1.0, 1e2, 1e4, 1e5), 1e-4)
"""Robertson to t = 1e5, outputs over seven decades."""
VAN_DER_POL = StiffProblem("van_der_pol", van_der_pol_f, (2.0, 0.0), (0.0, 150.0, 300.0, 450.0, 600.0, 750.0, 900.0),
                           1.0)
"""Van der Pol with mu = 1000 over its slow phase and first fast transition (near t = 807)."""
STIFF_SET = (ROBERTSON, VAN_DER_POL)
