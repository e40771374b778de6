"""Reversible Heun: an algebraically reversible two-state method (Kidger, Foster, Li, Lyons, "Efficient and
accurate gradients for neural SDEs", NeurIPS 2021, Algorithm 1; diffrax's ``ReversibleHeun``), order 2 for ODEs.

The state is a pair (y, z), z_0 = y_0. One step of size dt from t, with f_n = f(t, z_n):

    z_{n+1} = 2 y_n - z_n + dt f_n
    y_{n+1} = y_n + dt/2 (f_n + f(t + dt, z_{n+1}))

and it can be run backwards exactly, in exact arithmetic, from (y_{n+1}, z_{n+1}) alone:

    z_n = 2 y_{n+1} - z_{n+1} - dt f(t + dt, z_{n+1})
    y_n = y_{n+1} - dt/2 (f(t, z_n) + f(t + dt, z_{n+1})).

So backpropagation needs no stored states: the backward pass reconstructs each (y_n, z_n) from the next one
and differentiates that step locally (O(1) memory in the number of steps, ``odernn.integrators.reversible``).
Linearly, on y' = lambda y, the pair is stable for z = dt lambda on the imaginary axis with |z| <= 1 (and not
for Re z < 0, where the z-component oscillates: the method is meant for non-stiff problems). Each step costs
one evaluation of f when f(t + dt, z_{n+1}) is reused as the next step's f_n (f continuous there), two when
a jump of f separates the steps.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from torch import Tensor

Time = Union[float, Tensor]
Field = Callable[[Time, Tensor], Tensor]


def reversible_heun_step(f: Field, t: Time, y: Tensor, z: Tensor, dt: Time,
                         f_start: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """(y_{n+1}, z_{n+1}, f(t + dt, z_{n+1})) from (y_n, z_n); ``f_start`` = f(t, z_n) if already known."""
    f_start = f(t, z) if f_start is None else f_start
    z_next = 2 * y - z + dt * f_start
    f_end = f(t + dt, z_next)
    return y + (0.5 * dt) * (f_start + f_end), z_next, f_end


def reversible_heun_inverse(f: Field, t: Time, y_next: Tensor, z_next: Tensor, dt: Time,
                            f_end: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """(y_n, z_n, f(t, z_n)) from (y_{n+1}, z_{n+1}): the step from t to t + dt run backwards;
    ``f_end`` = f(t + dt, z_{n+1}) if already known."""
    f_end = f(t + dt, z_next) if f_end is None else f_end
    z = 2 * y_next - z_next - dt * f_end
    f_start = f(t, z)
    return y_next - (0.5 * dt) * (f_start + f_end), z, f_start
