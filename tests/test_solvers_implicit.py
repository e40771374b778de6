"""Implicit Runge-Kutta: convergence orders, stability functions, Newton's method, IFT gradients, invariants."""
import math

import numpy as np
import pytest
import torch

from solvers import (NewtonCounter, NewtonError, NewtonOptions, available, get_tableau, imaginary_axis_limit,
                     implicit_rk_step, in_stability_region, rk_step, stability_function)
from solvers.errors import StepFailure
from solvers.stability import stability_coefficients, stability_polynomials

IMPLICIT = ["backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4"]
TIGHT = NewtonOptions(tol=1e-13, functional=False)  # Newton's method itself (no functional iteration first)
NEWTON = NewtonOptions(functional=False)
D = torch.float64


def fitted_order(step_sizes, errors) -> float:
    return float(np.polyfit(np.log(step_sizes), np.log(errors), 1)[0])


def antisymmetric(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=D)
    return (M - M.T) / math.sqrt(n)


def states(batch: int, n: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(seed), dtype=D)


class Nonlinear:
    """f(t, y) = tanh(y W^T) - y/2 + sin(2t) u: row-wise, non-autonomous, with its Jacobian."""

    def __init__(self, n: int, seed: int, W=None):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(n, n, generator=g, dtype=D) if W is None else W
        self.u = torch.randn(n, generator=g, dtype=D)

    def __call__(self, t, y):
        return torch.tanh(y @ self.W.T) - 0.5 * y + torch.sin(2.0 * torch.as_tensor(t, dtype=D)) * self.u

    def jacobian(self, t, y):
        sech2 = 1.0 - torch.tanh(y @ self.W.T) ** 2
        return sech2[:, :, None] * self.W - 0.5 * torch.eye(y.shape[1], dtype=D)


def integrate(step, f, y0, t_end, steps, **kw):
    y, dt = y0, t_end / steps
    for j in range(steps):
        y = step(f, j * dt, y, dt, **kw)
    return y


# --- tableaus and registry ---------------------------------------------------------------------------

def test_registry_lists_the_implicit_methods():
    assert available("implicit") == IMPLICIT
    assert all(not get_tableau(m).is_explicit and not get_tableau(m).is_adaptive for m in IMPLICIT)
    gl4 = get_tableau("gauss_legendre4")
    c = np.array(gl4.c)
    assert np.allclose(c**2 - c + 1 / 6, 0.0, atol=1e-15)  # roots of the shifted Legendre polynomial P_2
    assert np.allclose(np.array(gl4.A).sum(1), c, atol=1e-15)


# --- convergence orders ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", IMPLICIT)
def test_error_slope_matches_the_order_on_a_damped_rotation(method):
    """y' = (S - I/10) y, S antisymmetric: exact solution exp(t (S - I/10)) y0; caller-provided Jacobian."""
    M = 2.0 * antisymmetric(4, 0) - 0.1 * torch.eye(4, dtype=D)
    y0 = states(3, 4, 1)
    exact = y0 @ torch.linalg.matrix_exp(M).T
    f = lambda t, y: y @ M.T  # noqa: E731
    jac = lambda t, y: M.expand(y.shape[0], 4, 4)  # noqa: E731
    steps = [16, 32, 64, 128]
    errors = [float((integrate(implicit_rk_step, f, y0, 1.0, N, tableau=get_tableau(method), newton=TIGHT,
                               jacobian=jac) - exact).abs().max()) for N in steps]
    order = fitted_order([1 / N for N in steps], errors)
    assert abs(order - get_tableau(method).order) < 0.2, errors


@pytest.mark.parametrize("method", IMPLICIT)
def test_error_slope_matches_the_order_on_a_nonlinear_forced_field(method):
    """The nonlinear, time-dependent field with autograd Jacobians, against RK4 with 400 steps."""
    f, y0 = Nonlinear(3, 2), states(2, 3, 3)
    reference = integrate(rk_step, f, y0, 1.0, 400, tableau=get_tableau("rk4"))
    steps = [4, 8, 16, 32]
    errors = [float((integrate(implicit_rk_step, f, y0, 1.0, N, tableau=get_tableau(method), newton=TIGHT)
                     - reference).abs().max()) for N in steps]
    order = fitted_order([1 / N for N in steps], errors)
    assert abs(order - get_tableau(method).order) < 0.2, errors


# --- stability functions -----------------------------------------------------------------------------

Z = np.random.default_rng(0).normal(size=40) * 3 + 1j * np.random.default_rng(1).normal(size=40) * 3
CLOSED_FORMS = {
    "backward_euler": lambda z: 1 / (1 - z),
    "implicit_midpoint": lambda z: (1 + z / 2) / (1 - z / 2),
    "trapezoidal": lambda z: (1 + z / 2) / (1 - z / 2),
    "gauss_legendre4": lambda z: (1 + z / 2 + z**2 / 12) / (1 - z / 2 + z**2 / 12),
}


@pytest.mark.parametrize("method", IMPLICIT)
def test_stability_function_matches_its_closed_form(method):
    assert np.allclose(stability_function(method)(Z), CLOSED_FORMS[method](Z), rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=f"{method}' is implicit: its R\\(z\\) is a rational function"):
        stability_coefficients(method)


@pytest.mark.parametrize("method", IMPLICIT)
def test_one_step_on_y_prime_equals_lambda_y_multiplies_by_R(method):
    """lambda = a + ib as the real 2x2 field [[a, -b], [b, a]]: one step maps (1, 0) to (Re R(z), Im R(z))."""
    z = np.array([-0.3 + 0.7j, -50.0 + 3.0j, 0.4 - 1.5j, -2.0 - 8.0j])
    blocks = torch.tensor([[[w.real, -w.imag], [w.imag, w.real]] for w in z], dtype=D)  # dt = 1
    f = lambda t, y: torch.einsum("bij,bj->bi", blocks, y)  # noqa: E731
    y1 = implicit_rk_step(f, 0.0, torch.tensor([[1.0, 0.0]] * len(z), dtype=D), 1.0, get_tableau(method), TIGHT)
    R = CLOSED_FORMS[method](z)
    assert np.allclose(y1[:, 0].numpy() + 1j * y1[:, 1].numpy(), R, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", IMPLICIT)
def test_a_stable_methods_have_the_whole_imaginary_axis_and_left_half_plane(method):
    assert imaginary_axis_limit(method) == math.inf
    R = stability_function(method)
    assert np.all(np.abs(R(1j * np.linspace(-1e3, 1e3, 4001))) <= 1 + 1e-12)
    left = -np.abs(Z.real) + 1j * Z.imag
    assert in_stability_region(method, left).all()
    numerator, denominator = stability_polynomials(method)
    assert numerator[0] == denominator[0] == 1.0


def test_unstable_sets_of_the_implicit_methods():
    right = np.abs(Z.real) + 1e-3 + 1j * Z.imag
    for method in ("implicit_midpoint", "trapezoidal", "gauss_legendre4"):  # exactly the left half-plane
        assert not in_stability_region(method, right).any()
    # backward Euler is unstable only on the disk |z - 1| < 1 (and infinite at its pole z = 1)
    inside_disk = np.abs(right - 1) < 1
    assert np.array_equal(~in_stability_region("backward_euler", right), inside_disk) and inside_disk.any()
    assert not in_stability_region("backward_euler", np.array([1.0 + 0j]))[0]


# --- gradients ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", IMPLICIT)
def test_gradcheck_with_respect_to_state_time_step_and_a_parameter(method):
    base = Nonlinear(3, 4)
    y = states(2, 3, 5).requires_grad_()
    t = torch.tensor(0.3, dtype=D, requires_grad=True)
    dt = torch.tensor(0.4, dtype=D, requires_grad=True)
    W = base.W.clone().requires_grad_()

    def step(y, t, dt, W):
        return implicit_rk_step(Nonlinear(3, 4, W=W), t, y, dt, get_tableau(method), TIGHT)

    assert torch.autograd.gradcheck(step, (y, t, dt, W), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("method", ["implicit_midpoint", "gauss_legendre4"])
def test_simplified_newton_reaches_the_same_stages_with_one_jacobian_per_step_and_exact_gradients(method):
    f, tab = Nonlinear(3, 4), get_tableau(method)
    y = states(2, 3, 5)
    full, simplified = NewtonCounter(), NewtonCounter()
    with torch.no_grad():
        a = implicit_rk_step(f, 0.3, y, 0.4, tab, TIGHT, counter=full)
        b = implicit_rk_step(f, 0.3, y, 0.4, tab, NewtonOptions(tol=1e-13, simplified=True, functional=False),
                           counter=simplified)
    assert torch.allclose(a, b, atol=1e-11, rtol=0)
    assert simplified.jacobians == 1 and full.jacobians > 1 and simplified.iterations >= full.iterations
    W = f.W.clone().requires_grad_()

    def step(y, W):
        return implicit_rk_step(Nonlinear(3, 4, W=W), 0.3, y, 0.4, tab,
                                NewtonOptions(tol=1e-13, simplified=True, functional=False))

    assert torch.autograd.gradcheck(step, (y.clone().requires_grad_(), W), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradients_do_not_depend_on_how_the_jacobian_is_obtained_and_flow_over_steps():
    f = Nonlinear(3, 6)
    tab = get_tableau("gauss_legendre4")
    y0 = states(2, 3, 7)
    grads = []
    for jacobian in (None, f.jacobian):
        y = y0.clone().requires_grad_()
        y1 = integrate(implicit_rk_step, f, y, 1.0, 3, tableau=tab, newton=TIGHT, jacobian=jacobian)
        y1.square().sum().backward()
        grads.append(y.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)
    # against central differences of the whole 3-step solve in one direction
    v = states(2, 3, 8)
    loss = lambda y: integrate(implicit_rk_step, f, y, 1.0, 3, tableau=tab, newton=TIGHT).square().sum()  # noqa
    with torch.no_grad():
        fd = (loss(y0 + 1e-6 * v) - loss(y0 - 1e-6 * v)) / 2e-6
    assert float((grads[0] * v).sum()) == pytest.approx(float(fd), rel=1e-7)


# --- invariants --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [0.01, 0.7, 5.0, 100.0])
def test_gauss_methods_preserve_the_norm_on_linear_antisymmetric_fields(dt):
    S = antisymmetric(6, 9)
    f = lambda t, y: y @ S.T  # noqa: E731
    y0 = states(4, 6, 10)
    for method in ("implicit_midpoint", "gauss_legendre4"):
        y = integrate(implicit_rk_step, f, y0, 5 * dt, 5, tableau=get_tableau(method), newton=TIGHT)
        assert torch.allclose(y.norm(dim=1), y0.norm(dim=1), rtol=1e-12, atol=0), method
        assert (y - y0).abs().max() > 1e-4  # the state did move
    y = integrate(implicit_rk_step, f, y0, 5 * dt, 5, tableau=get_tableau("backward_euler"), newton=TIGHT)
    assert (y.norm(dim=1) < y0.norm(dim=1) * (1 - 1e-6)).all()  # backward Euler damps every row


def test_symplectic_methods_preserve_a_quadratic_invariant_of_a_nonlinear_field():
    """y' = S(y) y with S(y) = tanh(a . y) S1 + S2 antisymmetric: |y|^2 is conserved, and Gauss methods
    conserve quadratic invariants exactly (Hairer, Lubich, Wanner, section IV.2); the trapezoidal rule does not."""
    S1, S2, a = antisymmetric(4, 11), antisymmetric(4, 12), states(1, 4, 14)[0]
    f = lambda t, y: torch.einsum("bij,bj->bi", torch.tanh(y @ a)[:, None, None] * S1 + S2, y)  # noqa: E731
    y0 = 2.0 * states(3, 4, 13)
    drift = {}
    for method in ("implicit_midpoint", "gauss_legendre4", "trapezoidal"):
        y = integrate(implicit_rk_step, f, y0, 4.0, 8, tableau=get_tableau(method), newton=TIGHT)
        drift[method] = float((y.norm(dim=1) / y0.norm(dim=1) - 1).abs().max())
    assert drift["implicit_midpoint"] < 1e-12 and drift["gauss_legendre4"] < 1e-12, drift
    assert drift["trapezoidal"] > 1e-6, drift


# --- Newton's method ---------------------------------------------------------------------------------

def test_newton_counts_and_linear_convergence_in_one_update():
    M = antisymmetric(3, 14) - 0.2 * torch.eye(3, dtype=D)
    f = lambda t, y: y @ M.T  # noqa: E731
    calls = []

    def jac(t, y):
        calls.append(t)
        return M.expand(y.shape[0], 3, 3)

    for method, per_iteration in [("backward_euler", 1), ("trapezoidal", 1), ("gauss_legendre4", 2)]:
        counter, calls[:] = NewtonCounter(), []
        implicit_rk_step(f, 0.0, states(5, 3, 15), 0.5, get_tableau(method), NEWTON, jacobian=jac, counter=counter)
        # the first update solves a linear system exactly, the second confirms it (update ~ rounding)
        assert counter == NewtonCounter(iterations=2, jacobians=2 * per_iteration, factorisations=2), method
        assert len(calls) == counter.jacobians


def test_full_newton_converges_fast_and_rows_are_independent():
    f, tab = Nonlinear(4, 16), get_tableau("gauss_legendre4")
    y = states(6, 4, 17)
    counter = NewtonCounter()
    batched = implicit_rk_step(f, 0.2, y, 0.3, tab, TIGHT, counter=counter)
    assert counter.iterations <= 5 and counter.jacobians == 2 * counter.iterations
    rows = torch.cat([implicit_rk_step(f, 0.2, y[i:i + 1], 0.3, tab, TIGHT) for i in range(6)])
    assert torch.allclose(batched, rows, rtol=0, atol=1e-13)
    with_jac = implicit_rk_step(f, 0.2, y, 0.3, tab, TIGHT, jacobian=f.jacobian)
    assert torch.allclose(batched, with_jac, rtol=0, atol=1e-13)
    # the stage equation holds at the result: implicit midpoint is y1 = y + dt f(t + dt/2, (y + y1)/2)
    mid = implicit_rk_step(f, 0.2, y, 0.3, get_tableau("implicit_midpoint"), TIGHT)
    assert torch.allclose(mid, y + 0.3 * f(0.35, (y + mid) / 2), rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["rk4", "dopri5", "heun"])
def test_explicit_tableaus_give_the_explicit_step(method):
    f = Nonlinear(3, 18)
    y = states(2, 3, 19)
    expected = rk_step(f, 0.1, y, 0.2, get_tableau(method))
    assert torch.allclose(implicit_rk_step(f, 0.1, y, 0.2, get_tableau(method), TIGHT), expected, atol=1e-14)


def test_newton_failure_names_time_step_method_and_remedies():
    f = Nonlinear(3, 20)
    with pytest.raises(NewtonError) as info:
        implicit_rk_step(f, 0.25, states(2, 3, 21), torch.tensor(0.5, dtype=D), get_tableau("gauss_legendre4"),
                         NewtonOptions(tol=1e-12, max_iters=1, functional=False))
    err = info.value
    assert isinstance(err, StepFailure) and isinstance(err, RuntimeError)
    assert (err.t, err.dt) == (0.25, 0.5)
    message = str(err)
    for part in ["'gauss_legendre4'", "max_iters=1", "t=0.25", "dt=0.5", "last update has max-norm",
                 "smaller step", "larger max_iters", "looser tol"]:
        assert part in message, (part, message)
    assert str(err.at_step(3, 10)).startswith("step 3 of 10: Newton's method")


def test_non_finite_stages_raise_newton_error():
    f = lambda t, y: torch.where(y.abs() > 1.5, torch.full_like(y, math.nan), y.square())  # noqa: E731
    with pytest.raises(NewtonError, match=r"non-finite values in iteration \d+ at t=0, dt=1.*smaller step"):
        implicit_rk_step(f, 0.0, torch.ones(1, 2, dtype=D), 1.0, get_tableau("backward_euler"))


def test_bad_arguments_say_what_is_allowed():
    tab, f = get_tableau("implicit_midpoint"), (lambda t, y: -y)
    with pytest.raises(ValueError, match=r"2-D floating-point tensor \(batch, n\).*got shape \(3,\)"):
        implicit_rk_step(f, 0.0, torch.ones(3), 0.1, tab)
    with pytest.raises(ValueError, match=r"jacobian\(t, y\) returned \(2, 2\) for y of shape \(2, 2\); .*\(2, 2, 2\)"):
        implicit_rk_step(f, 0.0, torch.ones(2, 2), 0.1, tab, NEWTON, jacobian=lambda t, y: torch.eye(2))
    with pytest.raises(ValueError, match=r"f\(t, y\) returned \(2, 3\) for y of shape \(2, 2\)"):
        implicit_rk_step(lambda t, y: torch.ones(2, 3), 0.0, torch.ones(2, 2), 0.1, tab)
    with pytest.raises(ValueError, match="newton must be a NewtonOptions"):
        implicit_rk_step(f, 0.0, torch.ones(2, 2), 0.1, tab, newton=1e-8)
    for kwargs, match in [(dict(tol=0.0), "tol must be a finite number > 0, got 0.0"),
                          (dict(tol=math.nan), "tol must be a finite number > 0"),
                          (dict(max_iters=0), "max_iters must be an int >= 1, got 0"),
                          (dict(max_iters=2.5), "max_iters must be an int >= 1, got 2.5")]:
        with pytest.raises(ValueError, match=match):
            NewtonOptions(**kwargs)


def test_float32_state_uses_a_tolerance_floored_at_its_rounding():
    f = Nonlinear(3, 22)
    y = states(2, 3, 23)
    y32 = implicit_rk_step(lambda t, z: f(t, z.double()).float(), 0.0, y.float(), 0.5,
                           get_tableau("gauss_legendre4"), NewtonOptions(tol=1e-14))  # would never reach 1e-14
    assert y32.dtype == torch.float32
    assert torch.allclose(y32.double(), implicit_rk_step(f, 0.0, y, 0.5, get_tableau("gauss_legendre4"), TIGHT),
                          atol=1e-5)
