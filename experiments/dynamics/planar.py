"""The planar recurrences of AntisymmetricRNN (000) section 4, Fig. 1 and App. D.

vanilla:  h_t = tanh(W h_{t-1})                        (a map, iterated directly)
feedback: dh/dt = tanh(W h + x(t)),  h_t = h_{t-1} + eps tanh(W h_{t-1} + x_t) under forward Euler,
          integrated here with any registered solver over the intervals [(t-1) eps, t eps] with the
          input x_t held on interval t.
All computations run in float64.
"""
from __future__ import annotations

import torch
from torch import Tensor

import solvers

DTYPE = torch.float64

STARTS: tuple[tuple[float, float], ...] = ((0.0, 0.5), (-0.5, -0.5), (0.5, -0.75))
"""The paper's three initial states (section 4)."""

FEEDBACK_MATRICES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "W+": ((2.0, -2.0), (0.0, 2.0)),
    "W-": ((-2.0, 2.0), (0.0, -2.0)),
    "W0": ((0.0, -2.0), (2.0, 0.0)),
    "Wdiff": ((-0.15, -2.0), (2.0, -0.15)),
}
"""Fig. 1(e)-(h): eigenvalues 2 (double), -2 (double), +-2i, -0.15 +- 2i."""


def matrix(name: str) -> Tensor:
    """One of the named feedback matrices of Fig. 1 as a float64 tensor."""
    if name not in FEEDBACK_MATRICES:
        raise ValueError(f"unknown feedback matrix {name!r}; known: {', '.join(FEEDBACK_MATRICES)}")
    return torch.tensor(FEEDBACK_MATRICES[name], dtype=DTYPE)


def gaussian_matrix(seed: int) -> Tensor:
    """2x2 matrix with independent N(0, 1) entries from ``torch.Generator().manual_seed(seed)``."""
    return torch.randn(2, 2, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


def orthogonal_matrix(seed: int) -> Tensor:
    """Random orthogonal 2x2 matrix: Q of the QR factorisation of a Gaussian matrix, signs fixed by diag(R)."""
    q, r = torch.linalg.qr(gaussian_matrix(seed))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def antisymmetric_gaussian(seed: int, gamma: float) -> Tensor:
    """M - M^T - gamma I with M Gaussian (App. D Fig. 3: the feedback RNN with diffusion)."""
    m = gaussian_matrix(seed)
    return m - m.T - gamma * torch.eye(2, dtype=DTYPE)


def starts(points: tuple[tuple[float, float], ...] = STARTS) -> Tensor:
    return torch.tensor(points, dtype=DTYPE)


def vanilla_trajectory(W: Tensor, h0: Tensor, T: int) -> Tensor:
    """h_t = tanh(W h_{t-1}) for t = 1..T from h0 ``(S, 2)`` -> ``(T+1, S, 2)``."""
    states = [h0]
    for _ in range(T):
        states.append(torch.tanh(states[-1] @ W.T))
    return torch.stack(states)


def feedback_trajectory(W: Tensor, h0: Tensor, T: int, eps: float, method: str,
                        inputs: Tensor | None = None, options: dict | None = None) -> Tensor:
    """Integrate dh/dt = tanh(W h + x_t) over T intervals of length eps -> ``(T+1, S, 2)``.

    ``inputs`` ``(T, S, 2)`` (or None for no input) is held on each interval; one ``solvers.odeint`` call
    per interval with ``step_size=eps`` (one step for fixed and implicit methods; the controller for adaptive
    ones; blocks (1, 1) for partitioned Euler, i.e. symplectic Euler on the 2-D system). Implicit methods
    solve Newton's stage equations per start (``batch_rows``: the S starts are independent systems).
    ``options`` (rtol, atol, max_steps) go to the adaptive solvers.
    """
    own = solvers.get_method(method).select(partition=(1, 1), batch_rows=True)
    states = [h0]
    for k in range(T):
        x = 0.0 if inputs is None else inputs[k]
        grid = torch.tensor([k * eps, (k + 1) * eps], dtype=DTYPE)
        sol = solvers.odeint(lambda t, h, x=x: torch.tanh(h @ W.T + x), states[-1], grid, method=method,
                             step_size=eps, **own, **(options or {}))
        states.append(sol[-1])
    return torch.stack(states)


def radius_ratio(traj: Tensor) -> Tensor:
    """|h_T| / |h_0| for each start of a trajectory ``(T+1, S, 2)``."""
    r = traj.norm(dim=-1)
    return r[-1] / r[0]
