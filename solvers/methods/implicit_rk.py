"""``ImplicitRK``: an implicit Runge-Kutta method on a grid (backward Euler, implicit midpoint, trapezoidal,
Gauss-Legendre 4), its stage equations solved by Newton's method (``solvers.implicit``).

A step whose stage equations are not found (``NewtonError`` after Newton and the continuation in the step
size) is subdivided: the same method takes two half steps over the interval, each subdivided again where it
fails, at most ``MAX_SUBDIVISION_DEPTH`` levels deep (2^4 = 16 steps); ``SolveStats.n_subdivided`` counts the
subdivisions. The result is the method's own discretisation on a finer grid of that interval (same
stability region, smaller local error), never a different method."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from torch import Tensor

from solvers.implicit import NewtonCounter, NewtonError, NewtonOptions, implicit_rk_step
from solvers.methods.base import Stepper
from solvers.methods.tableau_method import TableauMethod
from solvers.tableaus import ButcherTableau


class ImplicitRK(TableauMethod):
    kind = "implicit"
    implicit = True
    options = ("newton", "batch_rows")

    @property
    def implicit_tableau(self) -> ButcherTableau:
        return self.tableau

    @property
    def properties(self) -> tuple[str, ...]:
        """A-stable when |R| <= 1 on the imaginary axis and R has no pole in the left half-plane (checked on
        the tableau's R); symplectic for the Gauss methods (b_i a_ij + b_j a_ji = b_i b_j)."""
        a, b = np.asarray(self.tableau.A, dtype=float), np.asarray(self.tableau.b, dtype=float)
        symplectic = np.allclose(b[:, None] * a + (b[:, None] * a).T, np.outer(b, b))
        from solvers.stability import imaginary_axis_limit
        return (("A-stable",) if imaginary_axis_limit(self.name) == float("inf") else ()) + \
            (("symplectic",) if symplectic else ())

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        self.check_options(partition=partition)
        stepper = Stepper(lambda f, t, y, dt: y)
        options, tableau = newton or NewtonOptions(), self.tableau

        def on_rows(f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
            return implicit_rk_step(f, t, y, dt, tableau, options, jacobian=getattr(f, "jacobian", None),
                                    counter=stepper.counter)

        def flattened(f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
            row = lambda t_, r: f(t_, r.view(y.shape)).reshape(1, -1)  # noqa: E731
            return implicit_rk_step(row, t, y.reshape(1, -1), dt, tableau, options,
                                    counter=stepper.counter).view(y.shape)

        step = on_rows if rows else flattened
        stepper.step = lambda f, t, y, dt: subdivided(step, f, t, y, dt, stepper.counter)
        return stepper


MAX_SUBDIVISION_DEPTH = 4
"""Halvings of a step whose stage equations were not found, before the step fails (at most 16 steps)."""


def subdivided(step: Callable, f: Callable, t: object, y: Tensor, dt: object, counter: NewtonCounter,
               depth: int = 0) -> Tensor:
    """``step(f, t, y, dt)``, or where it raises ``NewtonError`` two half steps, recursively (module docstring)."""
    try:
        return step(f, t, y, dt)
    except NewtonError as failure:
        if depth == MAX_SUBDIVISION_DEPTH:
            raise NewtonError(f"{failure} Subdividing the step {depth} times (into {2 ** depth} steps) did not help "
                              f"either.", failure.t, failure.dt) from None
        counter.subdivided += 1
        half = dt * 0.5
        middle = subdivided(step, f, t, y, half, counter, depth + 1)
        return subdivided(step, f, t + half, middle, half, counter, depth + 1)
