"""``Method``: a named integration method that owns its behaviour (diffrax's solver classes).

A method says what it is through capabilities, never through a kind string that callers compare:
- ``stepper(...)``: its step for the one fixed-step loop (``solvers.explicit.integrate_fixed``); methods with
  their own loop (``adaptive``) have none;
- ``pair(controller, norm, rows)``: for an ``adaptive`` method, the embedded pair the adaptive loop runs
  (``solvers.pair``: explicit stages, or ``solvers.dirk``: implicit ones solved by simplified Newton);
- ``adaptive``: it runs the adaptive loop (an embedded error estimate and a step-size controller);
- ``reversible``: its step has an exact inverse (a step of zero is then not the identity);
- ``implicit``: its step solves an equation (Newton), so the derivative of a step comes from the implicit
  function theorem rather than from differentiating the iteration;
- ``options``: the method-specific ``odeint`` options it takes (``partition``, ``newton``, ``batch_rows``), and
  ``select(**candidates)`` keeps just those, so a caller holding every option passes them without asking
  which method it has;
- ``callbacks``: the torchdiffeq step callbacks of f that its loop calls (a solve warns, as torchdiffeq does,
  about one that f defines and the method never calls);
- ``explicit_tableau``, ``partitioned``, ``imex_pair``: what a specialised ODERNN integrator may exploit (an
  explicit Butcher tableau to walk, a block order to sweep, the tableau pair of an implicit-explicit split);
- ``assess(z, mu)``: the one-step amplification of the linearised problem dh/dt = J h at the eigenvalues
  z = dt * lambda(J), and where it leaves the stability region, from the method's own one-step map; a method
  whose map is not a function of dt * J alone (``needs_jacobian``) gives its one-step matrix's eigenvalues
  ``mu`` from the Jacobians (``one_step_eigenvalues``) and is assessed on them;
- ``order`` and ``properties`` (A-stable, symplectic, reversible) for tables.
``kind`` is a label for tables and messages only. One module per kind holds each class
(``explicit_rk``, ``embedded_rk``, ``implicit_rk``, ``adaptive_dirk``, ``partitioned_euler``,
``reversible_heun``, ``imex_rk``), and the
registry (``solvers.registry``) names the instances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, Sequence

import numpy as np
from torch import Tensor

from solvers.implicit import NewtonCounter, NewtonOptions
from solvers.tableaus import ButcherTableau

if TYPE_CHECKING:
    from solvers.methods.imex_rk import ImexPair

OUTSIDE_TOLERANCE = 1e-12
"""A one-step amplification above 1 + this counts as outside the stability region (rounding of |mu| = 1)."""


@dataclass
class Stepper:
    """A callable step ``(f, t, y, dt) -> y_next`` of one method plus its counters; ``counts()`` gives the
    ``SolveStats`` fields it adds (Newton iterations, Jacobians)."""

    step: Callable[[Callable, object, Tensor, object], Tensor]
    counter: NewtonCounter = field(default_factory=NewtonCounter)

    def __call__(self, f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
        return self.step(f, t, y, dt)

    def counts(self) -> dict[str, int]:
        return dict(n_newton=self.counter.iterations, n_jacobians=self.counter.jacobians,
                    n_continued=self.counter.continued, n_lu=self.counter.factorisations,
                    n_subdivided=self.counter.subdivided, n_functional=self.counter.functional)


class Method:
    """Base of every method class; instances are immutable and compared by name."""

    kind: ClassVar[str] = ""
    adaptive: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    partitioned: ClassVar[bool] = False
    implicit: ClassVar[bool] = False
    needs_jacobian: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()
    callbacks: ClassVar[tuple[str, ...]] = ("callback_step", "callback_accept_step")
    """The torchdiffeq step callbacks of f its loop calls (the fixed-step loop never rejects a step)."""

    def __init__(self, name: str, order: int, tableau: Optional[ButcherTableau] = None) -> None:
        self._name, self._order, self._tableau = name, int(order), tableau

    name = property(lambda self: self._name)
    order = property(lambda self: self._order)
    tableau = property(lambda self: self._tableau, doc="its Butcher tableau, or None for a method without one")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, order={self.order})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Method) and type(other) is type(self) and other.name == self.name

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    @property
    def explicit_tableau(self) -> Optional[ButcherTableau]:
        """The tableau when each step is the explicit Runge-Kutta walk of it (a fused scan may walk it)."""
        return None

    @property
    def imex_pair(self) -> Optional[ImexPair]:
        """The (explicit, implicit) tableau pair when each step splits f = L y + N, L taken implicitly
        (``imex_rk``), else None."""
        return None

    @property
    def implicit_tableau(self) -> Optional[ButcherTableau]:
        """The tableau when each step solves its stage equations at a fixed step (``solvers.implicit``: the
        functional iteration first, Newton's method where it does not contract), else None."""
        return None

    @property
    def properties(self) -> tuple[str, ...]:
        """Structural properties for tables: "A-stable", "symplectic", "reversible"."""
        return ("reversible",) if self.reversible else ()

    # ---------------------------------------------------------------------------------- options and steps
    def select(self, **candidates: Any) -> dict[str, Any]:
        """The candidates that are this method's own options (the rest are another method's)."""
        return {name: value for name, value in candidates.items() if name in self.options}

    def check_options(self, *, partition: Optional[Sequence[int]] = None, newton: Optional[NewtonOptions] = None,
                      batch_rows: bool = False) -> None:
        """Refuse, naming it, an option that this method does not use (it would be silently ignored)."""
        given = {"partition": partition is not None, "newton": newton is not None, "batch_rows": bool(batch_rows)}
        stray = [name for name, present in given.items() if present and name not in self.options]
        if stray:
            from solvers.registry import methods_taking
            name, users = stray[0], methods_taking(stray[0])
            raise ValueError(f"{name} is only used by method{'s' if len(users) > 1 else ''} "
                             f"{', '.join(repr(m) for m in users)}, not by {self.name!r}")

    def stepper(self, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
        """Its step for the one fixed-step loop. ``rows``: y (B, n) holds B independent systems."""
        raise ValueError(f"method {self.name!r} is {self.kind}: it has its own loop, not a fixed step")

    def pair(self, controller: Any, norm: Any = None, rows: bool = False) -> Any:
        """The embedded pair that the adaptive loop runs (adaptive methods only)."""
        raise ValueError(f"method {self.name!r} is {self.kind}: it has no embedded pair for error control")

    # --------------------------------------------------------------------------------------- stability
    def amplification(self, z: np.ndarray) -> np.ndarray:
        """The largest modulus of the one-step growth factors at complex z = dt * lambda (any shape)."""
        raise ValueError(f"method {self.name!r} has no one-step growth factor as a function of dt * lambda alone; "
                         f"its stability needs the whole Jacobian (stability(z, jac, dt, blocks))")

    def outside(self, z: np.ndarray) -> np.ndarray:
        """Where z lies outside the method's stability region."""
        return self.amplification(z) > 1.0 + OUTSIDE_TOLERANCE

    def one_step_eigenvalues(self, jac: Tensor, dt: float, blocks: Sequence[slice],
                             linear: Optional[Tensor] = None) -> Tensor:
        """Eigenvalues (..., m) of the one-step matrix on dh/dt = J h for Jacobians ``jac`` (..., n, n), for a
        method that ``needs_jacobian`` (``blocks``: the field's blocks; ``linear``: its declared linear part);
        the others are assessed on z = dt * lambda alone."""
        raise ValueError(f"method {self.name!r}: its one-step growth is a function of dt * lambda; use assess(z)")

    def assess(self, z: np.ndarray, mu: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """(amplification, outside mask), shaped like z, at the eigenvalues z = dt * lambda; a method that
        ``needs_jacobian`` is assessed on ``mu`` (from ``one_step_eigenvalues``) instead."""
        return self.amplification(z), self.outside(z)

    @property
    def criterion(self) -> str:
        """The stability criterion, in words, for reports."""
        return "max |one-step growth factor| <= 1"


def assess_on_one_step_eigenvalues(name: str, mu: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``assess`` of a method that ``needs_jacobian``: |mu| and where it exceeds 1."""
    if mu is None:
        raise ValueError(f"{name!r} has no R(z): pass mu, the eigenvalues of its amplification matrix "
                         f"(one_step_eigenvalues of the Jacobians)")
    amp = np.abs(np.asarray(mu))
    return amp, amp > 1.0 + OUTSIDE_TOLERANCE
