"""Stability functions from the tableaus (polynomial for explicit, rational for implicit methods),
imaginary-axis limits, the region plot."""
import math

import matplotlib
import numpy as np
import pytest

from solvers import (get_tableau, imaginary_axis_limit, in_stability_region, plot_stability_region,
                     stability_function)
from solvers.stability import stability_coefficients, stability_polynomials
from solvers.tableaus import TABLEAUS

matplotlib.use("Agg")
RNG = np.random.default_rng(0)
Z = RNG.normal(size=50) * 2 + 1j * RNG.normal(size=50) * 2


EXPLICIT = sorted(n for n in TABLEAUS if TABLEAUS[n].is_explicit)


def taylor(numerator: np.ndarray, denominator: np.ndarray, terms: int) -> np.ndarray:
    """The first ``terms`` Taylor coefficients of P(z) / Q(z) at 0 (Q(0) = 1), by power-series division."""
    p = np.zeros(terms)
    p[: min(terms, len(numerator))] = numerator[:terms]
    out = np.zeros(terms)
    for k in range(terms):
        out[k] = p[k] - sum(denominator[j] * out[k - j] for j in range(1, min(k, len(denominator) - 1) + 1))
    return out


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_R_equals_the_resolvent_formula_and_exp_up_to_the_order(name):
    tab = get_tableau(name)
    A, b, one = np.array(tab.A), np.array(tab.b), np.ones(tab.stages)
    resolvent = np.array([1 + z * b @ np.linalg.solve(np.eye(tab.stages) - z * A, one) for z in Z])
    assert np.allclose(stability_function(name)(Z), resolvent, rtol=1e-10, atol=1e-10)
    # a method of order p reproduces exp(z) up to z^p: the first p + 1 Taylor coefficients are 1/k!, the next not
    coeffs = taylor(*stability_polynomials(name), tab.order + 2)
    assert np.allclose(coeffs[: tab.order + 1], [1 / math.factorial(k) for k in range(tab.order + 1)], atol=1e-15)
    assert abs(coeffs[tab.order + 1] - 1 / math.factorial(tab.order + 1)) > 1e-4


@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_R_is_the_polynomial_series(name):
    tab = get_tableau(name)
    A, b, one = np.array(tab.A), np.array(tab.b), np.ones(tab.stages)
    series = 1 + sum(Z**k * (b @ np.linalg.matrix_power(A, k - 1) @ one) for k in range(1, tab.stages + 1))
    assert np.allclose(stability_function(name)(Z), series, rtol=1e-12, atol=1e-12)
    numerator, denominator = stability_polynomials(name)
    assert np.array_equal(denominator, np.eye(1, tab.stages + 1)[0])  # Q(z) = det(I - zA) = 1 exactly
    assert np.array_equal(stability_coefficients(name), numerator)


def test_dopri5_stability_polynomial():
    expected = 1 + Z + Z**2 / 2 + Z**3 / 6 + Z**4 / 24 + Z**5 / 120 + Z**6 / 600
    assert np.allclose(stability_function("dopri5")(Z), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name, limit", [
    ("rk4", 2 * math.sqrt(2)), ("rk38", 2 * math.sqrt(2)), ("rk3", math.sqrt(3)), ("bosh3", math.sqrt(3)),
    ("euler", 0.0), ("midpoint", 0.0), ("heun", 0.0), ("ralston", 0.0), ("adaptive_heun", 0.0),
    ("backward_euler", math.inf), ("implicit_midpoint", math.inf), ("trapezoidal", math.inf),
    ("gauss_legendre4", math.inf)])
def test_imaginary_axis_limits(name, limit):
    assert imaginary_axis_limit(name) == pytest.approx(limit, abs=1e-6)


@pytest.mark.parametrize("name", EXPLICIT)
def test_imaginary_axis_limit_against_a_scan(name):
    y_max = imaginary_axis_limit(name)
    R = stability_function(name)
    inside = 1j * np.linspace(0.0, y_max, 2001)
    assert np.all(np.abs(R(inside)) <= 1 + 1e-12)
    assert abs(R(1j * (y_max + 1e-2))) > 1.0 + 1e-12  # beyond it: outside
    assert np.array_equal(in_stability_region(name, inside), np.ones(inside.shape, bool))


def test_region_membership_on_the_real_axis():
    assert in_stability_region("euler", np.array([-2.0, -1.0, 0.0, 0.1])).tolist() == [True, True, True, False]
    # RK4's real-axis interval is about [-2.785, 0]
    assert in_stability_region("rk4", np.array([-2.78, -2.79])).tolist() == [True, False]


def test_implicit_regions_contain_the_left_half_plane_and_exclude_poles():
    left = -np.abs(Z.real) + 1j * Z.imag
    for name in ("backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4"):
        assert in_stability_region(name, left).all(), name
    assert in_stability_region("backward_euler", np.array([3.0, 1.0, 0.5, -0.5])).tolist() == [True, False, False, True]
    with np.errstate(all="raise"):  # R is infinite at its pole z = 1, without a division warning
        assert np.isinf(stability_function("backward_euler")(np.array([1.0 + 0j]))[0])


def test_partitioned_euler_has_no_stability_function():
    with pytest.raises(ValueError, match=r"'partitioned_euler' \(partitioned\) has no Butcher tableau"):
        stability_function("partitioned_euler")


def test_plot_writes_a_png_with_the_eigenvalues(tmp_path):
    eig = np.array([-0.5 + 1.0j, -0.1 - 2.0j, -3.0 + 0.0j])
    ax = plot_stability_region(["euler", "rk4", get_tableau("dopri5")], eigenvalues=eig)
    points = [c for c in ax.collections if c.get_offsets().shape == (3, 2)]
    assert len(points) == 1 and np.allclose(points[0].get_offsets(), np.c_[eig.real, eig.imag])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["euler", "rk4", "dopri5"] and len(labels) == 4
    path = tmp_path / "regions.png"
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plot_of_unbounded_implicit_regions(tmp_path):
    ax = plot_stability_region(["backward_euler", "gauss_legendre4", "rk4"])
    # the view holds rk4's bounded region (to -2.79) and backward Euler's unstable disk |z - 1| < 1
    x_min, x_max = ax.get_xlim()
    assert -4.0 < x_min < -2.79 and 2.0 < x_max < 4.0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["backward_euler", "gauss_legendre4", "rk4"]
    path = tmp_path / "implicit.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 10_000
