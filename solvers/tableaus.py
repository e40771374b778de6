"""Butcher tableaus of the explicit and implicit Runge-Kutta methods.

A Runge-Kutta method for y' = f(t, y) with s stages is fixed by its tableau (c, A, b):

    k_i     = f(t + c_i dt, y + dt * sum_j a_ij k_j),   i = 1..s
    y_{n+1} = y_n + dt * sum_i b_i k_i

(Hairer, Norsett, Wanner, *Solving ODEs I*, eq. II.1.8). With A strictly lower triangular the method is
explicit: each k_i follows from the earlier ones. Otherwise it is implicit and the stages solve a nonlinear
system (Hairer, Wanner, *Solving ODEs II*, section IV.8; ``solvers.implicit``). Embedded pairs add weights
``b_err`` of a solution of another order (``embedded_order``); the local error estimate is
``dt * sum_i (b_i - b_err_i) k_i``, O(dt^error_order) with error_order = min(order, embedded_order) + 1.
Pairs exist for explicit tableaus and for diagonally implicit ones (A lower triangular: ESDIRK pairs, each
stage one implicit equation, ``solvers.dirk``).
Coefficients are written as exact fractions (or, when irrational, computed with ``math.sqrt``) and stored
as Python floats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence, Union

Number = Union[int, float, str, Fraction]

_ROW_SUM_TOL = 1e-12


@dataclass(frozen=True)
class ButcherTableau:
    """A Runge-Kutta tableau, validated on creation.

    ``c`` (s,), ``A`` (s, s), ``b`` (s,) and optional ``b_err`` (s,), all tuples of floats; ``order`` is
    the order of the solution given by ``b``. ``A`` strictly lower triangular makes an explicit method, any
    other ``A`` an implicit one (``is_explicit``).
    Raises ``ValueError`` for inconsistent shapes, ``c_i != sum_j a_ij``, a non-positive order, non-finite
    entries, or ``b_err`` on a fully implicit tableau (error control is implemented for explicit and diagonally
    implicit pairs). ``embedded_order`` (the order of the ``b_err`` solution) defaults to ``order - 1``.
    """

    name: str
    c: tuple[float, ...]
    A: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    b_err: Optional[tuple[float, ...]] = None
    embedded_order: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", _float_tuple(self.c, "c", self.name))
        object.__setattr__(self, "A", tuple(_float_tuple(row, "A", self.name) for row in self.A))
        object.__setattr__(self, "b", _float_tuple(self.b, "b", self.name))
        if self.b_err is not None:
            object.__setattr__(self, "b_err", _float_tuple(self.b_err, "b_err", self.name))
        self._validate()

    def _validate(self) -> None:
        s = len(self.c)
        where = f"tableau {self.name!r}"
        if s == 0:
            raise ValueError(f"{where}: needs at least one stage, got c=()")
        if len(self.A) != s or any(len(row) != s for row in self.A):
            shape = (len(self.A), tuple(len(row) for row in self.A))
            raise ValueError(f"{where}: A must be {s}x{s} to match len(c)={s}, got rows of lengths {shape}")
        if len(self.b) != s:
            raise ValueError(f"{where}: b must have {s} entries to match len(c), got {len(self.b)}")
        if self.b_err is not None and len(self.b_err) != s:
            raise ValueError(f"{where}: b_err must have {s} entries to match len(c), got {len(self.b_err)}")
        if not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"{where}: order must be a positive int, got {self.order!r}")
        for i, row in enumerate(self.A):
            if abs(sum(row) - self.c[i]) > _ROW_SUM_TOL * max(1.0, abs(self.c[i])):
                raise ValueError(f"{where}: c[{i}] = {self.c[i]} must equal the row sum of A[{i}] = {sum(row)}")
        if self.b_err is not None and not self.is_diagonally_implicit:
            i, j = next((i, j) for i in range(s) for j in range(i + 1, s) if self.A[i][j] != 0.0)
            raise ValueError(f"{where}: b_err (an embedded pair for error control) is only allowed for explicit "
                             f"or diagonally implicit tableaus (A lower triangular), but A[{i}][{j}] = {self.A[i][j]}")
        if self.embedded_order is not None and (self.b_err is None or not isinstance(self.embedded_order, int)
                                                or self.embedded_order < 1):
            raise ValueError(f"{where}: embedded_order must be a positive int and needs b_err, got "
                             f"{self.embedded_order!r}")

    @property
    def stages(self) -> int:
        """Number of stages s."""
        return len(self.c)

    @property
    def is_explicit(self) -> bool:
        """True when A is strictly lower triangular, so every stage follows from the earlier ones."""
        return all(self.A[i][j] == 0.0 for i in range(self.stages) for j in range(i, self.stages))

    @property
    def is_diagonally_implicit(self) -> bool:
        """True when A is lower triangular: stage i depends on k_1..k_i only (explicit when also a_ii = 0)."""
        return all(self.A[i][j] == 0.0 for i in range(self.stages) for j in range(i + 1, self.stages))

    @property
    def is_stiffly_accurate(self) -> bool:
        """The last row of A is b (so c_s = 1): the new solution is the last stage value, k_s = f(t1, y1)."""
        return self.A[-1] == self.b

    @property
    def error_order(self) -> int:
        """The power of dt in the local error estimate: min(order, embedded order) + 1 (the step-size exponent)."""
        embedded = self.order - 1 if self.embedded_order is None else self.embedded_order
        return min(self.order, embedded) + 1

    @property
    def is_adaptive(self) -> bool:
        """True for an embedded pair (``b_err`` given), usable with error control."""
        return self.b_err is not None

    @property
    def is_fsal(self) -> bool:
        """First-same-as-last: the last stage is f at the new solution (c_s = 1, a_sj = b_j, b_s = 0)."""
        return self.c[-1] == 1.0 and self.A[-1][:-1] == self.b[:-1] and self.b[-1] == 0.0


def _float_tuple(values: Sequence[Number], field: str, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(Fraction(v)) if isinstance(v, str) else float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tableau {name!r}: {field} must be a sequence of numbers, got {values!r}") from exc
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"tableau {name!r}: {field} has a non-finite entry: {out}")
    return out


def _explicit(name: str, order: int, lower: Sequence[Sequence[Number]], b: Sequence[Number],
              b_err: Optional[Sequence[Number]] = None) -> ButcherTableau:
    """Build a tableau from the rows of A below the diagonal (row i has i entries); c is their row sums."""
    s = len(b)
    rows = [[Fraction(v) for v in row] + [Fraction(0)] * (s - len(row)) for row in lower]
    c = [sum(row, Fraction(0)) for row in rows]
    return ButcherTableau(name=name, c=c, A=rows, b=[Fraction(v) for v in b], order=order,
                          b_err=None if b_err is None else [Fraction(v) for v in b_err])


EULER = _explicit("euler", 1, [[]], [1])
"""Forward Euler, order 1::

    0 |
    --+--
      | 1
"""

MIDPOINT = _explicit("midpoint", 2, [[], ["1/2"]], [0, 1])
"""Explicit midpoint rule, order 2::

    0   |
    1/2 | 1/2
    ----+---------
        | 0    1
"""

HEUN = _explicit("heun", 2, [[], [1]], ["1/2", "1/2"])
"""Heun's method (explicit trapezoidal rule), order 2::

    0 |
    1 | 1
    --+---------
      | 1/2  1/2
"""

RALSTON = _explicit("ralston", 2, [[], ["2/3"]], ["1/4", "3/4"])
"""Ralston's second-order method (minimal truncation-error bound)::

    0   |
    2/3 | 2/3
    ----+---------
        | 1/4  3/4
"""

RK3 = _explicit("rk3", 3, [[], ["1/2"], [-1, 2]], ["1/6", "2/3", "1/6"])
"""Kutta's third-order method::

    0   |
    1/2 | 1/2
    1   | -1   2
    ----+--------------
        | 1/6  2/3  1/6
"""

RK4 = _explicit("rk4", 4, [[], ["1/2"], [0, "1/2"], [0, 0, 1]], ["1/6", "1/3", "1/3", "1/6"])
"""The classic fourth-order Runge-Kutta method::

    0   |
    1/2 | 1/2
    1/2 | 0    1/2
    1   | 0    0    1
    ----+-------------------
        | 1/6  1/3  1/3  1/6
"""

RK38 = _explicit("rk38", 4, [[], ["1/3"], ["-1/3", 1], [1, -1, 1]], ["1/8", "3/8", "3/8", "1/8"])
"""Kutta's 3/8 rule, order 4 (torchdiffeq's ``rk4``)::

    0   |
    1/3 | 1/3
    2/3 | -1/3  1
    1   | 1     -1   1
    ----+--------------------
        | 1/8   3/8  3/8  1/8
"""

BOSH3 = _explicit("bosh3", 3, [[], ["1/2"], [0, "3/4"], ["2/9", "1/3", "4/9"]],
                  ["2/9", "1/3", "4/9", 0], b_err=["7/24", "1/4", "1/3", "1/8"])
"""Bogacki-Shampine 3(2) pair, FSAL (b: order 3, b_err: order 2)::

    0   |
    1/2 | 1/2
    3/4 | 0     3/4
    1   | 2/9   1/3  4/9
    ----+----------------------
    b   | 2/9   1/3  4/9  0
    b_e | 7/24  1/4  1/3  1/8
"""

DOPRI5 = _explicit(
    "dopri5", 5,
    [[], ["1/5"], ["3/40", "9/40"], ["44/45", "-56/15", "32/9"],
     ["19372/6561", "-25360/2187", "64448/6561", "-212/729"],
     ["9017/3168", "-355/33", "46732/5247", "49/176", "-5103/18656"],
     ["35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84"]],
    ["35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84", 0],
    b_err=["5179/57600", 0, "7571/16695", "393/640", "-92097/339200", "187/2100", "1/40"])
"""Dormand-Prince 5(4) pair, FSAL (b: order 5, b_err: order 4)::

    0    |
    1/5  | 1/5
    3/10 | 3/40        9/40
    4/5  | 44/45       -56/15       32/9
    8/9  | 19372/6561  -25360/2187  64448/6561  -212/729
    1    | 9017/3168   -355/33      46732/5247  49/176   -5103/18656
    1    | 35/384      0            500/1113    125/192  -2187/6784    11/84
    -----+---------------------------------------------------------------------------
    b    | 35/384      0            500/1113    125/192  -2187/6784    11/84     0
    b_e  | 5179/57600  0            7571/16695  393/640  -92097/339200 187/2100  1/40
"""

ADAPTIVE_HEUN = _explicit("adaptive_heun", 2, [[], [1]], ["1/2", "1/2"], b_err=[1, 0])
"""Heun's method with forward Euler embedded (b: order 2, b_err: order 1)::

    0   |
    1   | 1
    ----+---------
    b   | 1/2  1/2
    b_e | 1    0
"""

BACKWARD_EULER = ButcherTableau("backward_euler", c=[1], A=[[1]], b=[1], order=1)
"""Backward (implicit) Euler, order 1, L-stable: R(z) = 1 / (1 - z) (Hairer, Wanner II, section IV.3)::

    1 | 1
    --+--
      | 1
"""

IMPLICIT_MIDPOINT = ButcherTableau("implicit_midpoint", c=["1/2"], A=[["1/2"]], b=[1], order=2)
"""Implicit midpoint rule, order 2: the 1-stage Gauss method, A-stable and symplectic, so it conserves
every quadratic invariant (Hairer, Lubich, Wanner, *Geometric Numerical Integration*, sections IV.2, VI.4);
R(z) = (1 + z/2) / (1 - z/2)::

    1/2 | 1/2
    ----+----
        | 1
"""

TRAPEZOIDAL = ButcherTableau("trapezoidal", c=[0, 1], A=[[0, 0], ["1/2", "1/2"]], b=["1/2", "1/2"], order=2)
"""Trapezoidal rule (Crank-Nicolson), order 2: the 2-stage Lobatto IIIA method, A-stable, with the stability
function of the implicit midpoint rule (Hairer, Wanner II, section IV.5). The first stage is explicit
(k_1 = f(t, y))::

    0 | 0    0
    1 | 1/2  1/2
    --+---------
      | 1/2  1/2
"""

_R3 = math.sqrt(3.0)
GAUSS_LEGENDRE4 = ButcherTableau(
    "gauss_legendre4", c=[0.5 - _R3 / 6, 0.5 + _R3 / 6],
    A=[[0.25, 0.25 - _R3 / 6], [0.25 + _R3 / 6, 0.25]], b=[0.5, 0.5], order=4)
"""2-stage Gauss(-Legendre) method, order 4: A-stable and symplectic (conserves quadratic invariants);
R(z) = (1 + z/2 + z^2/12) / (1 - z/2 + z^2/12) (Hairer, Wanner II, section IV.5)::

    1/2 - sqrt(3)/6 | 1/4              1/4 - sqrt(3)/6
    1/2 + sqrt(3)/6 | 1/4 + sqrt(3)/6  1/4
    ----------------+----------------------------------
                    | 1/2              1/2
"""


def _esdirk(name: str, order: int, gamma: float, lower: Sequence[Sequence[float]], b_err: Sequence[float],
            embedded_order: Optional[int] = None) -> ButcherTableau:
    """An ESDIRK pair: an explicit first stage, then diagonal ``gamma``; ``lower`` holds the rows of A below the
    diagonal of stages 2..s (row i has i - 1 entries); c is the row sums; stiffly accurate (b is A's last row)."""
    s = len(lower) + 1
    rows = [[0.0] * s] + [list(row) + [gamma] + [0.0] * (s - len(row) - 1) for row in lower]
    return ButcherTableau(name=name, c=[sum(row) for row in rows], A=rows, b=rows[-1], order=order, b_err=b_err,
                          embedded_order=embedded_order)


_G3 = 0.43586652150
KVAERNO3 = _esdirk("kvaerno3", 3, _G3, [
    [_G3],
    [(-4 * _G3 ** 2 + 6 * _G3 - 1) / (4 * _G3), (1 - 2 * _G3) / (4 * _G3)],
    [(6 * _G3 - 1) / (12 * _G3), -1 / ((24 * _G3 - 12) * _G3), (-6 * _G3 ** 2 + 6 * _G3 - 1) / (6 * _G3 - 3)]],
    b_err=[(-4 * _G3 ** 2 + 6 * _G3 - 1) / (4 * _G3), (1 - 2 * _G3) / (4 * _G3), _G3, 0.0])
"""Kvaerno's ESDIRK 3(2), 4 stages, L-stable and stiffly accurate (A. Kvaerno, *Singly diagonally implicit
Runge-Kutta methods with an explicit first stage*, BIT 44, 2004): gamma = 0.43586652150, the embedded
second-order solution is stage 3's value (b_err = A's third row), so error control costs nothing extra."""


def _kvaerno4_lower(g: float) -> list[list[float]]:
    """Rows of Kvaerno's 4(3) tableau below the diagonal, as polynomials in gamma (Kvaerno 2004)."""
    p = lambda *coefficients: sum(a * g ** k for k, a in enumerate(reversed(coefficients)))  # noqa: E731
    q = p(12, -6, 1)
    return [
        [g],
        [p(144, -180, 81, -15, 1) * g / q ** 2, p(-36, 39, -15, 2) * g / q ** 2],
        [p(-144, 396, -330, 117, -18, 1) / (12 * g ** 2 * p(12, -9, 2)),
         p(72, -126, 69, -15, 1) / (12 * g ** 2 * p(3, -1)),
         p(-6, 6, -1) * q ** 2 / (12 * g ** 2 * p(12, -9, 2) * p(3, -1))],
        [p(288, -312, 120, -18, 1) / (48 * g ** 2 * p(12, -9, 2)), p(24, -12, 1) / (48 * g ** 2 * p(3, -1)),
         -q ** 3 / (48 * g ** 2 * p(3, -1) * p(12, -9, 2) * p(6, -6, 1)), p(-24, 36, -12, 1) / p(24, -24, 4)]]


_G4 = 0.5728160625
_K4 = _kvaerno4_lower(_G4)
KVAERNO4 = _esdirk("kvaerno4", 4, _G4, _K4, b_err=_K4[2] + [_G4, 0.0])
"""Kvaerno's ESDIRK 4(3), 5 stages, L-stable and stiffly accurate (Kvaerno 2004, the method that advances the
fourth-order solution): gamma = 0.5728160625; the embedded third-order solution is stage 4's value."""

_S2 = math.sqrt(2.0)
TRBDF2 = _esdirk("trbdf2", 2, 1 - _S2 / 2, [[1 - _S2 / 2], [_S2 / 4, _S2 / 4]],
                 b_err=[(1 - _S2 / 4) / 3, (3 * _S2 / 4 + 1) / 3, (1 - _S2 / 2) / 3], embedded_order=3)
"""TR-BDF2 as an ESDIRK (Hosea & Shampine, *Analysis and implementation of TR-BDF2*, Appl. Numer. Math. 20,
1996): a trapezoidal stage to t + (2 - sqrt 2) dt, then BDF2; order 2, L-stable, stiffly accurate, with a
third-order embedded solution for the error estimate (error_order 3)::

    0          | 0
    2 - sqrt 2 | d      d
    1          | w      w      d            d = 1 - sqrt(2)/2, w = sqrt(2)/4
    -----------+---------------------
               | w      w      d
               | (1-w)/3 (3w+1)/3 d/3
"""

TABLEAUS: dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, HEUN, RALSTON, RK3, RK4, RK38, BOSH3, DOPRI5, ADAPTIVE_HEUN,
                        BACKWARD_EULER, IMPLICIT_MIDPOINT, TRAPEZOIDAL, GAUSS_LEGENDRE4, KVAERNO3, KVAERNO4, TRBDF2)
}
"""Every named tableau, by name."""
