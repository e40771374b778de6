"""Stiffness detection for explicit embedded Runge-Kutta pairs (Hairer's test of DOPRI5).

On a stiff problem an explicit method's step size is bounded by its stability region, not by the tolerance:
the controller keeps h * |lambda| (lambda the dominant eigenvalue of df/dy) at the edge of the region, and
the solve takes a number of steps proportional to |lambda| whatever rtol is (y' = -1e5 (y - cos t) over
[0, 10] takes ~3e5 dopri5 steps). Hairer, Wanner, *Solving ODEs II*, section IV.2 ("Automatic stiffness
detection"), and the code DOPRI5 (Hairer, Norsett, Wanner I, section II.10) detect this from two evaluations
of f at the same time t1 = t + h at two nearby states, which need no extra work for DOPRI5 (its stages 6 and
7 are both at c = 1; stage 7 is f at the new solution):

    h * rho = h * ||f(t1, y1) - f(t1, Y)|| / ||y1 - Y||,

an estimate of h * |lambda| along y1 - Y (Y the input of stage 6). The test runs every ``interval`` accepted
steps, and after every accepted step while a positive result is pending. A test is positive when
h * rho > 0.98 * beta, beta the method's stability boundary on the negative real axis (0.98 * beta = 3.24 for
DOPRI5, whose code uses 3.25); 15 positive tests declare the problem stiff, and 6 negative ones in a row clear
the count (DOPRI5's constants). Here this generalises to any explicit pair: Y is the input of the last stage
other than the first-same-as-last one, and f(t1, Y) and f(t1, y1) are re-evaluated when that stage is not at
c = 1 or the pair is not first-same-as-last (one or two extra evaluations per test, none for DOPRI5).

Limits of the rule (Hairer & Wanner II, IV.2): the controller holds h * |lambda| at the stability boundary
for moderate tolerances; with stringent ones (relative to the size of the stiff transients) it may settle
below it (y' = -2000 (y - cos t) with DOPRI5: h * |lambda| ~ 3.12 at rtol 1e-6, ~ 2.5 at 1e-7, ~ 1.15 at
1e-9; y' = -1e5 (y - cos t) stays at the boundary down to rtol 1e-8). The test then stays negative and the
solve is bounded by ``max_steps`` only. When the steps are limited by accuracy, h * |lambda| sits well
inside the region and the test is negative.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from solvers.explicit import weighted_sum
from solvers.tableaus import ButcherTableau

Time = Union[float, Tensor]
POSITIVE_TESTS = 15
"""Positive tests (h * rho at the stability boundary) that declare a problem stiff (DOPRI5: 15)."""
NEGATIVE_TESTS = 6
"""Consecutive negative tests that clear the positive count (DOPRI5: 6)."""
BOUNDARY_FRACTION = 0.98
"""A test is positive when h * rho exceeds this fraction of the real stability boundary."""


@functools.lru_cache(maxsize=None)
def real_stability_boundary(tableau: ButcherTableau) -> float:
    """beta = sup{x > 0 : |R(-x')| <= 1 for all 0 < x' <= x} of an explicit tableau (R its stability
    polynomial, ``solvers.stability``): 2 for Heun, 2.51 for Bogacki-Shampine, 3.31 for DOPRI5."""
    from solvers.stability import stability_coefficients

    coeffs = stability_coefficients(tableau)
    R = np.polynomial.Polynomial(coeffs)
    x = np.linspace(0.0, 2.0 * tableau.stages ** 2, 20001)[1:]  # |R(-x)| <= 1 needs x <= 2 s^2
    unstable = np.flatnonzero(np.abs(R(-x)) > 1.0)
    if len(unstable) == 0:
        return float(x[-1])
    lo, hi = (x[unstable[0] - 1] if unstable[0] > 0 else 0.0), x[unstable[0]]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if abs(R(-mid)) <= 1.0 else (lo, mid)
    return float(lo)


@dataclass
class StiffnessDetector:
    """The test of the module docstring for one solve; ``interval`` accepted steps between routine tests."""

    tableau: ButcherTableau
    interval: int
    positive: int = 0
    negative: int = 0

    def __post_init__(self) -> None:
        self.limit = BOUNDARY_FRACTION * real_stability_boundary(self.tableau)
        s = self.tableau.stages
        self.fsal = self.tableau.is_fsal
        self.stage = s - 2 if self.fsal else s - 1  # Y: input of the last stage that is not f(t1, y1)

    def due(self, accepted: int) -> bool:
        """Whether the next accepted step (number ``accepted + 1``) is to be tested."""
        return self.positive > 0 or (accepted + 1) % self.interval == 0

    def estimate(self, f: Callable[[Time, Tensor], Tensor], t1: Time, y: Tensor, dt: Time, y1: Tensor,
                 ks: list[Tensor]) -> Tensor:
        """h * rho for the step of size ``dt`` from y to y1 (ending at ``t1``) with stages ``ks``, a 0-d tensor."""
        incr = weighted_sum(self.tableau.A[self.stage][:self.stage], ks)
        Y = y if incr is None else y + dt * incr
        f_Y = ks[self.stage] if self.tableau.c[self.stage] == 1.0 else f(t1, Y)
        f_y1 = ks[-1] if self.fsal else f(t1, y1)
        h = dt.detach().abs() if isinstance(dt, Tensor) else abs(dt)
        return h * _norm_ratio(f_y1 - f_Y, y1 - Y)

    def update(self, h_lambda: float) -> bool:
        """Record one test of an accepted step; True when the problem is now declared stiff."""
        if h_lambda > self.limit:
            self.negative = 0
            self.positive += 1
            return self.positive >= POSITIVE_TESTS
        self.negative += 1
        if self.negative >= NEGATIVE_TESTS:
            self.positive = 0
        return False


def _norm_ratio(a: Tensor, b: Tensor) -> Tensor:
    """||a|| / ||b|| (Euclidean) without overflow for huge entries (each scaled by its max-norm first); 0 when
    b = 0."""
    a_max, b_max = a.abs().amax(), b.abs().amax()
    a_unit = torch.linalg.vector_norm(a / torch.where(a_max > 0, a_max, 1.0))
    b_unit = torch.linalg.vector_norm(b / torch.where(b_max > 0, b_max, 1.0))
    ratio = (a_max / torch.where(b_max > 0, b_max, 1.0)) * (a_unit / torch.where(b_unit > 0, b_unit, 1.0))
    return torch.where(b_max > 0, ratio, 0.0)


def make_detector(tableau: ButcherTableau, interval: Optional[int]) -> Optional[StiffnessDetector]:
    """A detector for an explicit pair, or None when ``interval`` is None (detection off)."""
    return None if interval is None else StiffnessDetector(tableau, interval)
