"""``ImexRK``: implicit-explicit Runge-Kutta for a field that declares a linear part, f(t, y) = L y + N(t, y).

The linear part L (``f.linear_part``: a vector, meaning diag(L), or an (n, n) matrix acting as y L^T on rows)
is taken implicitly with the tableau (c, A_I, b_I), the rest N = f - L y explicitly with (c, A_E, b_E), both
with s stages and A_I lower triangular (Ascher, Ruuth and Spiteri 1997, eq. 2.3):

    Y_i = y + dt sum_{j<i} (a^E_ij N_j + a^I_ij L Y_j) + dt a^I_ii L Y_i,   N_i = f(t + c_i dt, Y_i) - L Y_i,
    y'  = y + dt sum_i (b^E_i N_i + b^I_i L Y_i).

L is constant, so each stage is one linear solve (I - dt a^I_ii L) Y_i = rhs, a division when L is diagonal:
no Newton iteration, and the step is differentiated by autograd like an explicit one. On the linearised
problem dh/dt = J h the one-step map is the matrix

    M = I + dt sum_i (b^E_i (J - L) + b^I_i L) S_i,   S_i = (I - dt a^I_ii L)^{-1} (I + dt sum_{j<i} (a^E_ij
        (J - L) + a^I_ij L) S_j),

which depends on J and L separately (not on dt * lambda(J) alone): the stability check assesses its
eigenvalues. For scalar J = lambda_E + lambda_I, L = lambda_I it is the split stability function
R(z_E, z_I) = 1 + (z_E b_E + z_I b_I)^T (I - z_E A_E - z_I A_I)^{-1} 1.

Registered pairs: ``imex_euler`` (forward-backward Euler, ARS(1,1,1), order 1: with coRNN's linear part,
damping and y' = z implicit, it is the coRNN paper's eq. 3) and ``ars222`` (ARS(2,2,2), order 2, L-stable
implicit part, stiffly accurate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from solvers.implicit import NewtonOptions
from solvers.methods.base import Method, Stepper, assess_on_one_step_eigenvalues
from solvers.tableaus import ButcherTableau


@dataclass(frozen=True)
class ImexPair:
    """The two tableaus of an IMEX Runge-Kutta method (same c, explicit A_E strictly lower, A_I lower)."""

    explicit: ButcherTableau
    implicit: ButcherTableau

    def __post_init__(self) -> None:
        e, i = self.explicit, self.implicit
        if e.c != i.c:
            raise ValueError(f"IMEX pair {e.name!r}/{i.name!r}: the two tableaus need the same c")
        if not e.is_explicit:
            raise ValueError(f"IMEX pair: {e.name!r} must be explicit (A strictly lower triangular)")
        if any(a != 0.0 for r, row in enumerate(i.A) for a in row[r + 1:]):
            raise ValueError(f"IMEX pair: {i.name!r} must be diagonally implicit (A lower triangular)")


def _pair(name: str, order: int, c, a_explicit, b_explicit, a_implicit, b_implicit) -> ImexPair:
    return ImexPair(ButcherTableau(f"{name} (explicit)", c, a_explicit, b_explicit, order),
                    ButcherTableau(f"{name} (implicit)", c, a_implicit, b_implicit, order))


IMEX_EULER = _pair("imex_euler", 1, [0, 1], [[0, 0], [1, 0]], [1, 0], [[0, 0], [0, 1]], [0, 1])
_G = 1.0 - 1.0 / math.sqrt(2.0)
_D = 1.0 - 1.0 / (2.0 * _G)
ARS222 = _pair("ars222", 2, [0, _G, 1], [[0, 0, 0], [_G, 0, 0], [_D, 1 - _D, 0]], [_D, 1 - _D, 0],
               [[0, 0, 0], [0, _G, 0], [0, 1 - _G, _G]], [0, 1 - _G, _G])


def linear_part(f: Callable) -> Tensor:
    """The linear part L that ``f`` declares (``f.linear_part``), checked: a vector (diagonal) or a square
    matrix."""
    linear = getattr(f, "linear_part", None)
    if not isinstance(linear, Tensor) or linear.dim() not in (1, 2) or (
            linear.dim() == 2 and linear.shape[0] != linear.shape[1]):
        got = "none" if linear is None else (tuple(linear.shape) if isinstance(linear, Tensor)
                                              else type(linear).__name__)
        raise ValueError(f"IMEX methods need f.linear_part, the linear part L of f(t, y) = L y + N(t, y): a "
                         f"tensor of shape (n,) (diagonal) or (n, n); got {got}")
    return linear


def _apply(linear: Tensor, y: Tensor) -> Tensor:
    return linear * y if linear.dim() == 1 else y @ linear.T


def _solve(linear: Tensor, scale: Tensor, rhs: Tensor) -> Tensor:
    """Y with Y - scale * L Y = rhs (scale = dt * a_ii, a number or a (B, 1) tensor of per-row steps)."""
    if linear.dim() == 1:
        return rhs / (1.0 - scale * linear)
    eye = torch.eye(linear.shape[0], dtype=rhs.dtype, device=rhs.device)
    if isinstance(scale, Tensor) and scale.dim():  # per-row steps: one matrix per row
        return torch.linalg.solve(eye - scale.reshape(-1, 1, 1) * linear, rhs.unsqueeze(-1)).squeeze(-1)
    flat = rhs.reshape(-1, rhs.shape[-1])  # one matrix for every row: one factorisation, the rows as columns
    return torch.linalg.solve(eye - scale * linear, flat.T).T.reshape(rhs.shape)


def imex_step(f: Callable, t, y: Tensor, dt, pair: ImexPair) -> Tensor:
    """One step of the IMEX pair from (t, y) (module docstring); y (n,) or (B, n) rows."""
    linear = linear_part(f).to(y.dtype)
    e, i = pair.explicit, pair.implicit
    s = len(e.c)
    needed = [e.b[k] != 0.0 or any(e.A[r][k] != 0.0 for r in range(k + 1, s)) for k in range(s)]
    explicit_parts: list[Optional[Tensor]] = []
    linear_parts: list[Tensor] = []
    for k in range(s):
        rhs = y
        for j in range(k):
            if e.A[k][j] != 0.0:
                rhs = rhs + (dt * e.A[k][j]) * explicit_parts[j]
            if i.A[k][j] != 0.0:
                rhs = rhs + (dt * i.A[k][j]) * linear_parts[j]
        stage = _solve(linear, dt * i.A[k][k], rhs) if i.A[k][k] != 0.0 else rhs
        linear_parts.append(_apply(linear, stage))
        explicit_parts.append(f(t + e.c[k] * dt, stage) - linear_parts[k] if needed[k] else None)
    out = y
    for k in range(s):
        if e.b[k] != 0.0:
            out = out + (dt * e.b[k]) * explicit_parts[k]
        if i.b[k] != 0.0:
            out = out + (dt * i.b[k]) * linear_parts[k]
    return out


def one_step_matrix(jac: Tensor, linear: Tensor, dt: float, pair: ImexPair) -> Tensor:
    """M (..., n, n) of the pair on dh/dt = J h with the split (J - L, L) (module docstring)."""
    n = jac.shape[-1]
    eye = torch.eye(n, dtype=jac.dtype, device=jac.device)
    lin = torch.diag_embed(linear.to(jac.dtype)) if linear.dim() == 1 else linear.to(jac.dtype)
    rest = jac - lin
    e, i = pair.explicit, pair.implicit
    stages: list[Tensor] = []
    out = eye.expand_as(jac)
    for k in range(len(e.c)):
        acc = eye.expand_as(jac)
        for j in range(k):
            acc = acc + dt * (e.A[k][j] * rest + i.A[k][j] * lin) @ stages[j]
        stage = torch.linalg.solve(eye - dt * i.A[k][k] * lin, acc) if i.A[k][k] != 0.0 else acc
        stages.append(stage)
        out = out + dt * (e.b[k] * rest + i.b[k] * lin) @ stage
    return out


class ImexRK(Method):
    kind = "imex"
    needs_jacobian = True

    def __init__(self, name: str, pair: ImexPair) -> None:
        super().__init__(name, pair.explicit.order)
        self.pair = pair

    @property
    def imex_pair(self) -> ImexPair:
        return self.pair

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        self.check_options(partition=partition, newton=newton)
        return Stepper(lambda f, t, y, dt: imex_step(f, t, y, dt, self.pair))

    def one_step_eigenvalues(self, jac: Tensor, dt: float, blocks: Sequence[slice],
                             linear: Optional[Tensor] = None) -> Tensor:
        if linear is None:
            raise ValueError(f"{self.name!r} splits f = L y + N: its one-step matrix needs the field's linear part "
                             f"L (linear=...)")
        return torch.linalg.eigvals(one_step_matrix(jac, linear, dt, self.pair))

    def assess(self, z: np.ndarray, mu: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        return assess_on_one_step_eigenvalues(self.name, mu)

    @property
    def criterion(self) -> str:
        return "spectral radius of the IMEX one-step matrix (implicit linear part, explicit rest) <= 1"
