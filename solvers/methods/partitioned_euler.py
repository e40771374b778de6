"""``PartitionedEuler``: Gauss-Seidel Euler over blocks of the state (``solvers.partitioned``): block i moves
with the new values of the blocks before it. For two blocks of an antisymmetric coupling it is symplectic
Euler. Its one-step map of dh/dt = J h is the matrix M = (I - dt L)^{-1} (I + dt (D + U)) over the blocks
(L, D, U the strictly lower, diagonal and strictly upper block parts of J), not a function of dt * J alone."""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from solvers.implicit import NewtonOptions
from solvers.methods.base import Method, Stepper, assess_on_one_step_eigenvalues
from solvers.partitioned import check_partition, partitioned_euler_step


def one_step_matrix_eigenvalues(jac: Tensor, dt: float, blocks: Sequence[slice]) -> Tensor:
    """Eigenvalues (..., n) of M = (I - dt L)^{-1} (I + dt (D + U)) for Jacobians ``jac`` (..., n, n); block 1
    is updated first, block i sees the new blocks < i."""
    n = jac.shape[-1]
    owner = torch.empty(n, dtype=torch.long, device=jac.device)
    for i, block in enumerate(blocks):
        owner[block] = i
    lower = (owner[:, None] > owner[None, :]).to(jac.dtype)
    eye = torch.eye(n, dtype=jac.dtype, device=jac.device)
    return torch.linalg.eigvals(torch.linalg.solve(eye - dt * jac * lower, eye + dt * jac * (1 - lower)))


class PartitionedEuler(Method):
    kind = "partitioned"
    partitioned = True
    needs_jacobian = True
    options = ("partition",)

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        self.check_options(newton=newton)
        if partition is None:
            raise ValueError(f"method {self.name!r} needs partition=(sizes of the blocks of y's last "
                             f"dimension), e.g. partition=(n1, n2)")
        sizes = check_partition(partition, state_size) if state_size is not None else tuple(partition)
        return Stepper(functools.partial(partitioned_euler_step, sizes=sizes))

    def one_step_eigenvalues(self, jac: Tensor, dt: float, blocks: Sequence[slice],
                             linear: Optional[Tensor] = None) -> Tensor:
        return one_step_matrix_eigenvalues(jac, dt, blocks)

    def assess(self, z: np.ndarray, mu: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        return assess_on_one_step_eigenvalues(self.name, mu)

    @property
    def criterion(self) -> str:
        return "spectral radius of the partitioned-Euler amplification matrix <= 1"
