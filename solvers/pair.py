"""``Pair``: what the adaptive loop (``solvers.adaptive``) needs from an embedded Runge-Kutta pair, and
``ExplicitPair``, the explicit one (dopri5, bosh3, adaptive_heun).

A pair computes the stages of one attempted step and the local error estimate dt * sum_i (b_i - b_err_i) k_i
from them; the loop owns the step-size control, the landing on output times and the failure messages. An
implicit pair (``solvers.dirk.DirkPair``) may fail to solve its stage equations at a step size: ``stages``
then returns None and the loop retries with a smaller step.
"""
from __future__ import annotations

from typing import Optional, Protocol

from torch import Tensor

from solvers.explicit import Field, Time, rk_stages, weighted_sum
from solvers.stiffness import StiffnessDetector, make_detector
from solvers.tableaus import ButcherTableau

SHRINK_AFTER_FAILED_STAGES = 0.5
"""Factor of the step size after an attempt whose stage equations could not be solved (Hairer & Wanner II,
section IV.8: halve the step when Newton's method fails)."""


class Pair(Protocol):
    """The stages and error estimate of one attempt; ``reuse_last``: k_s is f at the new solution."""

    tableau: ButcherTableau
    reuse_last: bool

    def stages(self, f: Field, t: Time, y: Tensor, dt: Time, k0: Optional[Tensor]
               ) -> Optional[tuple[Tensor, list[Tensor]]]: ...

    def error(self, dt: Time, ks: list[Tensor]) -> Tensor: ...

    def detector(self, interval: Optional[int]) -> Optional[StiffnessDetector]: ...

    def counts(self) -> dict[str, int]: ...


class ExplicitPair:
    """An explicit embedded pair: its stages in sequence (``rk_stages``), k_1 reused from the last step when
    the tableau is first-same-as-last; stiffness detected from the stages (``solvers.stiffness``)."""

    def __init__(self, tableau: ButcherTableau) -> None:
        if tableau.b_err is None:
            raise ValueError(f"tableau {tableau.name!r} has no embedded weights b_err; adaptive methods need them")
        self.tableau, self.reuse_last = tableau, tableau.is_fsal
        self.err_weights = [b - be for b, be in zip(tableau.b, tableau.b_err)]

    def stages(self, f: Field, t: Time, y: Tensor, dt: Time, k0: Optional[Tensor]
               ) -> Optional[tuple[Tensor, list[Tensor]]]:
        return rk_stages(f, t, y, dt, self.tableau, k0)

    def error(self, dt: Time, ks: list[Tensor]) -> Tensor:
        return dt * weighted_sum(self.err_weights, ks)

    def detector(self, interval: Optional[int]) -> Optional[StiffnessDetector]:
        return make_detector(self.tableau, interval)

    def counts(self) -> dict[str, int]:
        return {}
