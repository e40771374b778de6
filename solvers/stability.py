"""Linear stability of the Runge-Kutta methods, computed from their tableaus.

Applied to the test equation y' = lambda y, one step of a Runge-Kutta method multiplies y by R(z),
z = dt * lambda, with the stability function (Hairer, Wanner, *Solving ODEs II*, eq. IV.3.2)

    R(z) = 1 + z b^T (I - z A)^{-1} 1.

For an explicit tableau A is nilpotent, so R(z) = 1 + sum_{k=1}^{s} z^k b^T A^{k-1} 1 is a polynomial whose
coefficients are computed once from the tableau. The stability region is {z : |R(z)| <= 1}.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
from numpy.polynomial import polynomial as npoly
from scipy.optimize import brentq

from solvers.registry import Method, get_method, get_tableau
from solvers.tableaus import ButcherTableau

MethodLike = Union[str, Method, ButcherTableau]
_COEFF_TOL = 1e-12


def _tableau(method: MethodLike) -> ButcherTableau:
    if isinstance(method, ButcherTableau):
        return method
    name = method.name if isinstance(method, Method) else method
    if get_method(name).tableau is None:
        raise ValueError(f"method {name!r} is partitioned and has no Butcher tableau, so no stability "
                         f"function R(z); stability functions exist for methods with a tableau")
    return get_tableau(name)


def stability_coefficients(method: MethodLike) -> np.ndarray:
    """Coefficients (ascending powers) of R(z): [1, b^T 1, b^T A 1, ..., b^T A^{s-1} 1]."""
    tab = _tableau(method)
    A, b = np.array(tab.A), np.array(tab.b)
    coeffs, v = [1.0], np.ones(tab.stages)
    for _ in range(tab.stages):
        coeffs.append(float(b @ v))
        v = A @ v
    return np.array(coeffs)


def stability_function(method: MethodLike) -> Callable[[np.ndarray], np.ndarray]:
    """R(z) of a method (name, Method or tableau) as a function of complex numpy arrays."""
    coeffs = stability_coefficients(method)

    def R(z: np.ndarray) -> np.ndarray:
        return npoly.polyval(np.asarray(z, dtype=complex), coeffs)

    R.__doc__ = f"Stability function of {_tableau(method).name}: polynomial with coefficients {coeffs.tolist()}"
    return R


def in_stability_region(method: MethodLike, z: np.ndarray) -> np.ndarray:
    """Boolean array: |R(z)| <= 1 (up to 1e-12, so z = 0 counts as inside)."""
    return np.abs(stability_function(method)(z)) <= 1.0 + 1e-12


def imaginary_axis_limit(method: MethodLike) -> float:
    """Largest y >= 0 such that |R(i y')| <= 1 for all 0 <= y' <= y (0 when only z = 0 is stable there).

    |R(iy)|^2 - 1 is a real polynomial P(y) with P(0) = 0; coefficients below 1e-12 (rounding of terms that
    cancel exactly) are dropped. The answer is 0 when P is positive right after 0, else the first root of P
    where it turns positive, refined with Brent's method to 1e-14.
    """
    c = stability_coefficients(method)
    powers = np.arange(len(c))
    r_iy = c * (1j ** powers)  # R(iy) = sum_k c_k i^k y^k
    p = npoly.polyadd(npoly.polymul(r_iy.real, r_iy.real), npoly.polymul(r_iy.imag, r_iy.imag))
    p[0] -= 1.0
    p[np.abs(p) < _COEFF_TOL] = 0.0
    nonzero = np.flatnonzero(p)
    if len(nonzero) == 0 or p[nonzero[0]] > 0:
        return 0.0
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
    tableaus = [_tableau(m) for m in methods]
    if ax is None:
        ax = Figure(figsize=(6, 5)).add_subplot()
    eig = None if eigenvalues is None else np.asarray(eigenvalues, dtype=complex).ravel()
    half = _plot_half_width(tableaus, eig)
    x = np.linspace(-half, half, resolution)
    Z = x[None, :] + 1j * x[:, None]
    colors = [f"C{i}" for i in range(len(tableaus))]
    handles = []
    for tab, color in zip(tableaus, colors):
        modulus = np.abs(stability_function(tab)(Z))
        ax.contourf(x, x, modulus, levels=[0.0, 1.0], colors=[color], alpha=0.2)
        ax.contour(x, x, modulus, levels=[1.0], colors=[color], linewidths=1.5)
        handles.append(Patch(facecolor=color, edgecolor=color, alpha=0.5, label=tab.name))
    if eig is not None:
        handles.append(ax.scatter(eig.real, eig.imag, s=12, c="k", marker="x", zorder=3,
                                  label=r"$\Delta t\,\lambda$"))
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.axvline(0.0, color="0.5", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_title("stability regions |R(z)| <= 1")
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return ax


def _plot_half_width(tableaus: Sequence[ButcherTableau], eig: Optional[np.ndarray]) -> float:
    """Half-width of a square view holding every region (found on a coarse grid) and every eigenvalue."""
    x = np.linspace(-8.0, 8.0, 161)
    Z = x[None, :] + 1j * x[:, None]
    extent = 1.0
    for tab in tableaus:
        inside = Z[in_stability_region(tab, Z)]
        extent = max(extent, np.abs(inside.real).max(), np.abs(inside.imag).max())
    if eig is not None and eig.size:
        extent = max(extent, np.abs(eig.real).max(), np.abs(eig.imag).max())
    return 1.15 * float(extent)
