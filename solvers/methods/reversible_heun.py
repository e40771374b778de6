"""``ReversibleHeun``: reversible Heun (Kidger et al. 2021; ``solvers.reversible``), order 2, a state pair
(y, z) stepped so that the step can be run backwards exactly.

On dh/dt = lambda h with z = dt * lambda the step maps (y, z) by M = [[1 + z, z^2 / 2], [2, z - 1]], whose
eigenvalues mu = z +- sqrt(z^2 + 1) have product -1: both have modulus 1 exactly on the imaginary segment
[-i, i] and one exceeds 1 everywhere else, so the method is stable only for undamped oscillation with
|dt * lambda| <= 1 and every damped field (Re lambda < 0) is outside."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from torch import Tensor

from solvers.implicit import NewtonOptions
from solvers.methods.base import Method, Stepper
from solvers.reversible import reversible_heun_step


class ReversibleStepper(Stepper):
    """Reversible Heun as a stepper of the fixed-step loop: it carries its second state z (z_0 = y_0) from one
    call to the next, so one instance serves one solve. Plain autograd through it stores every step; the
    O(1)-memory backward that reconstructs the states is ODERNN's ``ReversibleScan``."""

    def __init__(self) -> None:
        super().__init__(self._step)
        self.z: Optional[Tensor] = None

    def _step(self, f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
        y_next, self.z, _ = reversible_heun_step(f, t, y, y if self.z is None else self.z, dt)
        return y_next


class ReversibleHeun(Method):
    kind = "reversible"
    reversible = True

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        self.check_options(partition=partition, newton=newton)
        return ReversibleStepper()

    def amplification(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=complex)
        root = np.sqrt(z * z + 1.0)
        return np.maximum(np.abs(z + root), np.abs(z - root))

    @property
    def criterion(self) -> str:
        return "max |z +- sqrt(z^2 + 1)| <= 1 (eigenvalues of its one-step matrix on the pair (y, z))"
