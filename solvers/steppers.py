"""Every non-adaptive method as a stepper ``(f, t, y, dt) -> y_next`` for the one fixed-step loop.

``make_stepper`` is the single place where a registered method's kind picks its step: the explicit
Runge-Kutta step of its tableau (``solvers.explicit``), the implicit one with Newton's method
(``solvers.implicit``), or partitioned Euler over blocks (``solvers.partitioned``). A stepper carries the
counters of its own work (Newton iterations, Jacobians) for ``SolveStats``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from torch import Tensor

from solvers.explicit import rk_step
from solvers.implicit import NewtonCounter, NewtonOptions, implicit_rk_step
from solvers.partitioned import check_partition, partitioned_euler_step
from solvers.registry import Method, available
from solvers.reversible import reversible_heun_step


@dataclass
class Stepper:
    """A callable step of one method plus its counters; ``counts()`` gives the ``SolveStats`` fields it adds.

    ``rows``: y is (B, n) with independent rows (each sample its own ODE), so an implicit stage system is
    solved per row with (B, n, n) Jacobians; otherwise y is flattened to one row (any f may couple any
    entries). A right-hand side with a ``jacobian(t, y) -> (B, n, n)`` method supplies its own Jacobian to
    implicit methods (``rows`` only); otherwise autograd forms it.
    """

    step: Callable[[Callable, object, Tensor, object], Tensor]
    counter: NewtonCounter = field(default_factory=NewtonCounter)

    def __call__(self, f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
        return self.step(f, t, y, dt)

    def counts(self) -> dict[str, int]:
        return dict(n_newton=self.counter.iterations, n_jacobians=self.counter.jacobians)


def make_stepper(method: Method, *, partition: Optional[Sequence[int]] = None, state_size: Optional[int] = None,
                 newton: Optional[NewtonOptions] = None, rows: bool = False) -> Stepper:
    """The stepper of a fixed, implicit or partitioned ``method`` (adaptive methods have their own loop).

    ``partition`` (block sizes of y's last dimension, ``state_size`` long in all) is required by
    partitioned methods and refused by the others; ``newton`` is used by implicit methods only.
    """
    if partition is not None and method.kind != "partitioned":
        raise ValueError(f"partition is only used by method 'partitioned_euler', not {method.name!r}")
    if newton is not None and method.kind != "implicit":
        raise ValueError(f"newton options are only used by the implicit methods "
                         f"({', '.join(available('implicit'))}), not by {method.name!r}")
    if method.kind == "fixed":
        return Stepper(functools.partial(rk_step, tableau=method.tableau))
    if method.kind == "partitioned":
        if partition is None:
            raise ValueError(f"method {method.name!r} needs partition=(sizes of the blocks of y's last "
                             f"dimension), e.g. partition=(n1, n2)")
        sizes = check_partition(partition, state_size) if state_size is not None else tuple(partition)
        return Stepper(functools.partial(partitioned_euler_step, sizes=sizes))
    if method.kind == "implicit":
        stepper = Stepper(lambda f, t, y, dt: y)
        options = newton or NewtonOptions()

        def on_rows(f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
            return implicit_rk_step(f, t, y, dt, method.tableau, options, jacobian=getattr(f, "jacobian", None),
                                    counter=stepper.counter)

        def flattened(f: Callable, t: object, y: Tensor, dt: object) -> Tensor:
            row = lambda t_, r: f(t_, r.view(y.shape)).reshape(1, -1)  # noqa: E731
            return implicit_rk_step(row, t, y.reshape(1, -1), dt, method.tableau, options,
                                    counter=stepper.counter).view(y.shape)

        stepper.step = on_rows if rows else flattened
        return stepper
    if method.kind == "reversible":
        return ReversibleStepper()
    raise ValueError(f"method {method.name!r} is {method.kind}: it has its own adaptive loop, not a fixed step")


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
