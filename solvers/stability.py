"""Linear stability of the Runge-Kutta methods, computed from their tableaus.

Applied to the test equation y' = lambda y, one step of a Runge-Kutta method multiplies y by R(z),
z = dt * lambda, with the stability function (Hairer, Wanner, *Solving ODEs II*, eq. IV.3.2 and
Proposition IV.3.2)

    R(z) = 1 + z b^T (I - z A)^{-1} 1 = det(I - z A + z 1 b^T) / det(I - z A),

a rational function whose numerator and denominator have degree <= s. Both determinants are polynomials
det(I - z M) = sum_k d_k z^k whose coefficients are those of the characteristic polynomial of M, computed
exactly (in rational arithmetic on the tableau's float entries) by the Faddeev-LeVerrier recursion. For an
explicit tableau A is nilpotent, so the denominator is 1 and R(z) = 1 + sum_{k=1}^{s} z^k b^T A^{k-1} 1 is
a polynomial. The stability region is {z : |R(z)| <= 1}; it is unbounded for the A-stable implicit
methods, which contain the whole left half-plane (section IV.3).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, Optional, Sequence, Union

import numpy as np
from numpy.polynomial import polynomial as npoly

from solvers.registry import Method, get_method, get_tableau, method_of_tableau
from solvers.tableaus import ButcherTableau

MethodLike = Union[str, Method, ButcherTableau]
_COEFF_TOL = 1e-12


def _tableau(method: MethodLike) -> ButcherTableau:
    if isinstance(method, ButcherTableau):
        return method
    name = method.name if isinstance(method, Method) else method
    if get_method(name).tableau is None:
        raise ValueError(f"method {name!r} ({get_method(name).kind}) has no Butcher tableau, so no stability "
                         f"function R(z); stability functions exist for methods with a tableau")
    return get_tableau(name)


def _method(method: MethodLike) -> Method:
    """The method object of a name, a method, or a bare tableau (its registered method, else a new one)."""
    if isinstance(method, Method):
        return method
    if isinstance(method, ButcherTableau):
        return method_of_tableau(method)
    return get_method(method)


def _det_one_minus_z(M: list[list[Fraction]]) -> list[Fraction]:
    """Coefficients d_0..d_s (ascending) of det(I - z M) = sum_k d_k z^k, exactly (Faddeev-LeVerrier:
    they are the coefficients of det(lambda I - M) = sum_k d_k lambda^{s-k})."""
    s = len(M)
    coeffs = [Fraction(1)]
    Mk = [[Fraction(0)] * s for _ in range(s)]
    for k in range(1, s + 1):
        # M_k = M M_{k-1} + d_{k-1} I;  d_k = -tr(M M_k) / k
        Mk = [[sum((M[i][m] * Mk[m][j] for m in range(s)), Fraction(0)) + (coeffs[-1] if i == j else 0)
               for j in range(s)] for i in range(s)]
        trace = sum((M[i][m] * Mk[m][i] for i in range(s) for m in range(s)), Fraction(0))
        coeffs.append(-trace / k)
    return coeffs


def stability_polynomials(method: MethodLike) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of R(z) = P(z) / Q(z), coefficients in ascending powers (s + 1 each):
    P(z) = det(I - z A + z 1 b^T), Q(z) = det(I - z A); Q = [1, 0, ..., 0] for explicit tableaus."""
    tab = _tableau(method)
    A = [[Fraction(a) for a in row] for row in tab.A]
    b = [Fraction(v) for v in tab.b]
    shifted = [[A[i][j] - b[j] for j in range(tab.stages)] for i in range(tab.stages)]
    numerator = np.array([float(v) for v in _det_one_minus_z(shifted)])
    denominator = np.array([float(v) for v in _det_one_minus_z(A)])
    return numerator, denominator


def stability_coefficients(method: MethodLike) -> np.ndarray:
    """Coefficients (ascending powers) of the stability polynomial R(z) of an explicit method:
    [1, b^T 1, b^T A 1, ..., b^T A^{s-1} 1]. ``ValueError`` for implicit methods, whose R(z) is rational
    (``stability_polynomials``)."""
    tab = _tableau(method)
    if not tab.is_explicit:
        raise ValueError(f"method {tab.name!r} is implicit: its R(z) is a rational function, not a polynomial; "
                         f"use stability_polynomials for its numerator and denominator")
    return stability_polynomials(tab)[0]


def stability_function(method: MethodLike) -> Callable[[np.ndarray], np.ndarray]:
    """R(z) of a method (name, Method or tableau) as a function of complex numpy arrays (inf at its poles)."""
    numerator, denominator = stability_polynomials(method)

    def R(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=complex)
        with np.errstate(divide="ignore", invalid="ignore"):
            return npoly.polyval(z, numerator) / npoly.polyval(z, denominator)

    R.__doc__ = (f"Stability function of {_tableau(method).name}: P(z) / Q(z) with ascending coefficients "
                 f"P: {numerator.tolist()}, Q: {denominator.tolist()}")
    return R


def in_stability_region(method: MethodLike, z: np.ndarray) -> np.ndarray:
    """Boolean array: |R(z)| <= 1 (up to 1e-12, so z = 0 counts as inside), tested as |P(z)| <= |Q(z)|
    so that poles of R are outside without dividing by zero."""
    numerator, denominator = stability_polynomials(method)
    z = np.asarray(z, dtype=complex)
    return np.abs(npoly.polyval(z, numerator)) <= (1.0 + 1e-12) * np.abs(npoly.polyval(z, denominator))


def imaginary_axis_limit(method: MethodLike) -> float:
    """Largest y >= 0 such that |R(i y')| <= 1 for all 0 <= y' <= y (0 when only z = 0 is stable there,
    ``inf`` when the whole imaginary axis is, as for A-stable methods).

    With R = P / Q, |R(iy)| <= 1 iff D(y) = |P(iy)|^2 - |Q(iy)|^2 <= 0, a real polynomial with D(0) = 0;
    coefficients below 1e-12 (rounding of terms that cancel exactly) are dropped. The answer is ``inf`` when D
    vanishes identically (|R(iy)| = 1, e.g. the Gauss methods), 0 when D is positive right after 0, else
    the first root of D where it turns positive, refined with Brent's method to 1e-14 (``inf`` if none).
    """
    numerator, denominator = stability_polynomials(method)
    powers = np.arange(len(numerator))
    p = np.zeros(2 * len(numerator) - 1)
    for coeffs, sign in ((numerator, 1.0), (denominator, -1.0)):
        r_iy = coeffs * (1j ** powers)  # P(iy) = sum_k p_k i^k y^k
        p = npoly.polyadd(p, sign * npoly.polyadd(npoly.polymul(r_iy.real, r_iy.real),
                                                  npoly.polymul(r_iy.imag, r_iy.imag)))
    p[np.abs(p) < _COEFF_TOL] = 0.0
    nonzero = np.flatnonzero(p)
    if len(nonzero) == 0:
        return float("inf")
    if p[nonzero[0]] > 0:
        return 0.0
    from scipy.optimize import brentq  # here, not at import: scipy.optimize takes ~0.5 s to load

    P = lambda y: float(npoly.polyval(y, p))  # noqa: E731
    roots = np.roots(p[nonzero[0]:][::-1])
    positive = sorted(r.real for r in roots if r.real > 0 and abs(r.imag) <= 1e-6 * max(1.0, abs(r)))
    for r in positive:
        delta = 1e-6 * max(1.0, r)
        if P(r + delta) > 0:
            return float(brentq(P, max(r - delta, 0.5 * r), r + delta, xtol=1e-14, rtol=1e-15))
    return float("inf")


def plot_stability_region(methods: Union[MethodLike, Sequence[MethodLike]],
                          eigenvalues: Optional[np.ndarray] = None, ax=None, resolution: int = 400):
    """Draw {z : |R(z)| <= 1} of each method (filled, with its boundary |R(z)| = 1) on a matplotlib Axes.

    ``eigenvalues`` (complex, already multiplied by the step size: z = dt * lambda) are drawn as points.
    Creates a new figure when ``ax`` is None (without pyplot, so any backend works); returns the Axes.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if isinstance(methods, (str, Method, ButcherTableau)):
        methods = [methods]
    objects = [_method(m) for m in methods]
    for method in objects:
        if method.needs_jacobian:
            raise ValueError(f"method {method.name!r} has no stability region in the z = dt * lambda plane: its "
                             f"one-step map depends on the block structure of the Jacobian")
    if ax is None:
        ax = Figure(figsize=(6, 5)).add_subplot()
    eig = None if eigenvalues is None else np.asarray(eigenvalues, dtype=complex).ravel()
    half = _plot_half_width(objects, eig)
    x = np.linspace(-half, half, resolution)
    Z = x[None, :] + 1j * x[:, None]
    colors = [f"C{i}" for i in range(len(objects))]
    handles = []
    for method, color in zip(objects, colors):
        modulus = np.minimum(np.nan_to_num(method.amplification(Z), nan=1e3, posinf=1e3), 1e3)
        ax.contourf(x, x, modulus, levels=[0.0, 1.0], colors=[color], alpha=0.2)
        ax.contour(x, x, modulus, levels=[1.0], colors=[color], linewidths=1.5)
        handles.append(Patch(facecolor=color, edgecolor=color, alpha=0.5, label=method.name))
    if eig is not None:
        handles.append(ax.scatter(eig.real, eig.imag, s=12, c="k", marker="x", zorder=3,
                                  label=r"$\Delta t\,\lambda$"))
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.axvline(0.0, color="0.5", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_title("stability regions: one-step growth <= 1")
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return ax


def _plot_half_width(methods: Sequence[Method], eig: Optional[np.ndarray]) -> float:
    """Half-width of a square view holding every eigenvalue and every bounded region (found on a coarse grid).

    A region that reaches the edge of the coarse grid is unbounded (implicit methods): the view then holds
    its complement, the unstable set, when that is bounded (backward Euler: the disk |z - 1| < 1).
    """
    x = np.linspace(-8.0, 8.0, 161)
    Z = x[None, :] + 1j * x[:, None]
    edge = np.zeros(Z.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    extent = 1.0
    for method in methods:
        inside = ~method.outside(Z)
        shown = inside if not inside[edge].any() else ~inside if not (~inside)[edge].any() else None
        if shown is not None and shown.any():
            extent = max(extent, np.abs(Z[shown].real).max(), np.abs(Z[shown].imag).max())
    if eig is not None and eig.size:
        extent = max(extent, np.abs(eig.real).max(), np.abs(eig.imag).max())
    return 1.15 * float(extent)
