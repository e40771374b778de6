"""Adaptive implicit methods (kvaerno3, kvaerno4, trbdf2: ESDIRK pairs, ``solvers.dirk``): their orders and
their error estimates' orders from log-log slopes, L-stability from R(z), stiff problems against scipy's Radau
at rtol 1e-12 (Robertson to t = 1e5, Van der Pol with mu = 1000), gradients by the implicit function theorem
against a closed form, landing on jumps, rows against the flattened solve, events."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import solvers
from solvers.controller import StepController
from solvers.dirk import DirkPair
from solvers.problems import ROBERTSON, VAN_DER_POL, robertson_f
from solvers.stiff_set import ours, relative_error, scipy_solve

F64 = torch.float64
PAIRS = ("kvaerno3", "kvaerno4", "trbdf2")


def scipy_solution(f, y0, t, method, rtol, atol):
    t = np.asarray(t, dtype=float)
    numpy_f = lambda s, y: f(torch.tensor(s, dtype=F64), torch.tensor(y, dtype=F64)).numpy()  # noqa: E731
    sol = solve_ivp(numpy_f, (t[0], t[-1]), y0.numpy(), method=method, rtol=rtol, atol=atol, t_eval=t)
    assert sol.success
    return sol.y.T


def test_registered_as_adaptive_implicit_and_l_stable():
    assert solvers.available("adaptive_implicit") == list(PAIRS)
    for name in PAIRS:
        method = solvers.get_method(name)
        assert method.adaptive and method.implicit and name not in solvers.available("implicit")
        assert {"A-stable", "L-stable"} <= set(method.properties)
        # R(z) -> 0 as z -> -inf, |R| <= 1 on the imaginary axis and the left half-plane
        z = np.concatenate([1j * np.logspace(-3, 6, 200), -np.logspace(-3, 6, 200) + 1j * np.logspace(-3, 6, 200)])
        assert method.amplification(z).max() <= 1.0 + 1e-12
    assert solvers.get_method("dopri5").properties == ()


@pytest.mark.parametrize("name", PAIRS)
def test_order_and_error_estimate_order_from_slopes(name):
    """One step of size dt on y' = -y + sin(t) y^2 from y = 0.5: the local error of the propagated solution is
    O(dt^(order + 1)) and the embedded estimate O(dt^error_order), both fitted within 0.2."""
    f = lambda t, y: -y + torch.sin(t) * y ** 2  # noqa: E731
    tableau = solvers.get_tableau(name)
    ref = lambda dt: scipy_solution(f, torch.tensor([0.5], dtype=F64), np.array([0.3, 0.3 + dt]), "Radau",  # noqa: E731
                                    1e-13, 1e-15)[-1]
    steps = np.array([0.04, 0.02, 0.01, 0.005])
    local, estimate = [], []
    for dt in steps:
        pair = DirkPair(tableau, StepController(rtol=1e-12, atol=1e-14), rows=True)
        y1, ks = pair.stages(f, torch.tensor(0.3, dtype=F64), torch.tensor([[0.5]], dtype=F64), float(dt), None)
        local.append(abs(float(y1) - float(ref(dt)[0])))
        estimate.append(abs(float(pair.error(float(dt), ks))))
    slope = lambda e: np.polyfit(np.log(steps), np.log(e), 1)[0]  # noqa: E731
    assert slope(local) == pytest.approx(tableau.order + 1, abs=0.2)
    assert slope(estimate) == pytest.approx(tableau.error_order, abs=0.2)


@pytest.mark.parametrize("name", PAIRS)
def test_global_order_of_the_fixed_step(name):
    """The same tableau as a fixed-step implicit method (its ``stepper``): global error slope = order."""
    f = lambda t, y: -2.0 * y + torch.cos(t)  # noqa: E731
    t = torch.tensor([0.0, 1.0], dtype=F64)
    exact = (2 * math.cos(1) + math.sin(1)) / 5 + (1 - 2 / 5) * math.exp(-2)
    steps = np.array([0.1, 0.05, 0.025])
    errors = [abs(float(_fixed(name, f, t, dt)) - exact) for dt in steps]
    assert np.polyfit(np.log(steps), np.log(errors), 1)[0] == pytest.approx(solvers.get_tableau(name).order, abs=0.2)


def _fixed(name, f, t, dt):
    stepper = solvers.get_method(name).stepper(rows=True)
    y = torch.tensor([[1.0]], dtype=F64)
    for k in range(round(1.0 / dt)):
        y = stepper(f, t[0] + k * dt, y, dt)
    return y[0, 0]


@pytest.mark.parametrize("problem, method, baseline", [(ROBERTSON, "kvaerno4", "Radau"),
                                                       (ROBERTSON, "trbdf2", "BDF"),
                                                       (VAN_DER_POL, "kvaerno4", "Radau")])
@pytest.mark.slow
def test_stiff_set_at_rtol_1e_6_within_10x_of_scipy(problem, method, baseline):
    """Error against scipy's Radau at rtol 1e-12 within 10x of scipy's own at the same rtol (the fourth-order
    pair against Radau, the second-order TR-BDF2 against BDF)."""
    rtol = 1e-6
    atol = rtol * problem.atol_factor
    reference = scipy_solve(problem, "Radau", 1e-12, 1e-12 * problem.atol_factor)[0]
    theirs = relative_error(scipy_solve(problem, baseline, rtol, atol)[0], reference)
    ys, (nfe, jacobians, lu, steps, _) = ours(problem, method, rtol, atol)
    assert relative_error(ys, reference) <= 10 * theirs
    assert 0 < jacobians and 0 < lu and nfe > steps
    if problem is ROBERTSON:
        assert np.abs(ys.sum(-1) - 1).max() < 1e-10  # the linear invariant y1 + y2 + y3 = 1


def test_explicit_pair_stops_where_the_implicit_one_runs():
    y0 = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    t = torch.tensor([0.0, 10.0], dtype=F64)
    with pytest.raises(solvers.StiffnessError, match="kvaerno4"):
        solvers.odeint(robertson_f, y0, t, method="dopri5", stiffness_interval=10)
    assert torch.isfinite(solvers.odeint(robertson_f, y0, t, method="kvaerno4")).all()


@pytest.mark.parametrize("name", PAIRS)
def test_gradients_match_the_closed_form(name):
    """y' = lam y: y(T) = y0 exp(lam T); d/dlam = T y(T), d/dy0 = exp(lam T), through the IFT stages."""
    lam = torch.tensor(-2.0, dtype=F64, requires_grad=True)
    y0 = torch.tensor([0.7], dtype=F64, requires_grad=True)
    T = 1.0
    yT = solvers.odeint(lambda t, y: lam * y, y0, torch.tensor([0.0, T], dtype=F64), method=name,
                        rtol=1e-7, atol=1e-9)[-1, 0]
    d_lam, d_y0 = torch.autograd.grad(yT, (lam, y0))
    assert float(d_lam) == pytest.approx(T * 0.7 * math.exp(-2 * T), rel=1e-4)
    assert float(d_y0) == pytest.approx(math.exp(-2 * T), rel=1e-4)


def test_lands_on_a_jump_of_a_stiff_forcing():
    """y' = -1000 (y - u(t)), u = 0 before t = 1 and 1 after: y(2) = 1 - exp(-1000) within the tolerance;
    steps land on t = 1 (no step straddles the jump)."""
    f = lambda t, y: -1000.0 * (y - (t >= 1.0).to(y.dtype))  # noqa: E731
    y0 = torch.tensor([0.0], dtype=F64)
    ys = solvers.odeint(f, y0, torch.tensor([0.0, 1.0, 2.0], dtype=F64), method="kvaerno4", jumps=[1.0],
                        rtol=1e-8, atol=1e-10)
    assert float(ys[1, 0]) == pytest.approx(0.0, abs=1e-9) and float(ys[2, 0]) == pytest.approx(1.0, abs=1e-7)


def test_rows_equal_the_flattened_solve():
    torch.manual_seed(0)
    C = -torch.eye(3, dtype=F64) * 50 + torch.randn(3, 3, dtype=F64)
    f = lambda t, y: torch.tanh(y @ C.T + torch.sin(t))  # noqa: E731
    y0 = torch.randn(2, 3, dtype=F64)
    t = torch.tensor([0.0, 0.25, 0.5], dtype=F64)
    rows, stats = solvers.odeint(f, y0, t, method="kvaerno4", batch_rows=True, rtol=1e-7, atol=1e-9, return_stats=True)
    flat = solvers.odeint(f, y0, t, method="kvaerno4", rtol=1e-7, atol=1e-9)
    assert torch.allclose(rows, flat, atol=1e-7) and stats.n_steps < 400


def test_event_time_under_an_implicit_pair():
    t_event, ys = solvers.odeint_event(lambda t, y: -y, torch.tensor([1.0], dtype=F64), 0.0,
                                       lambda t, y: y[0] - 0.5, method="kvaerno4", rtol=1e-10, atol=1e-12)
    assert float(t_event) == pytest.approx(math.log(2.0), abs=1e-8)


def test_newton_is_not_an_option_of_the_adaptive_pairs():
    with pytest.raises(ValueError, match="newton is only used by"):
        solvers.odeint(lambda t, y: -y, torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                       method="kvaerno4", newton=solvers.NewtonOptions())


def test_trajectory_ground_truth_of_a_stiff_van_der_pol_under_kvaerno4():
    """The trajectory task's batched ground truth (rows solved as their own systems) takes an adaptive implicit
    truth solver: Van der Pol with mu = 20 agrees with dopri5's truth to the tolerance."""
    from experiments.trajectory.simulate import simulate
    from experiments.trajectory.systems import get_system

    system = get_system("van-der-pol", mu=20.0)
    y0 = np.array([[2.0, 0.0], [1.0, 1.0], [-0.5, 0.3]])
    times = np.linspace(0.0, 2.0, 5)
    stiff, info = simulate(system, y0, times, method="kvaerno4", rtol=1e-5, atol=1e-5)
    explicit, _ = simulate(system, y0, times, method="dopri5", rtol=1e-10, atol=1e-10)
    assert np.abs(stiff - explicit).max() < 1e-3 * np.abs(explicit).max() and info["solver_kind"] == "adaptive_implicit"


@pytest.mark.parametrize("argv, match", [(["--rtols", "1e-6,x"], "--rtols takes comma-separated numbers"),
                                         (["--methods", "dopri5"], "--methods takes kvaerno3, kvaerno4, trbdf2")])
def test_stiff_set_command_refuses_bad_input(argv, match, capsys):
    from solvers.stiff_set import main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and match in capsys.readouterr().err


@pytest.mark.parametrize("name", ["kvaerno4", "trbdf2"])
def test_a_stiff_odernn_forward_completes_and_matches_scipy_radau(name):
    """AntisymmetricRNN's field with gamma 1e5, h' = tanh(C h + V x + b) with C = W - W^T - gamma I (stiff where
    the tanh is not saturated, flat where it is), and real inputs whose every sample jumps the held input (where
    dopri5 stops with StiffnessError): the implicit pairs complete with the states of scipy's Radau at rtol
    1e-10, solved per interval on the same equation in NumPy, to the pairs' tolerance. (Simplified Newton fails
    after each jump until the step is some halvings shorter; a continuation after the third failure made the
    20-step case 70 s long.)"""
    from odernn import ODERNN, AntisymmetricField
    torch.manual_seed(0)
    field = AntisymmetricField(3, 16, gamma=1e5).double()
    x = torch.randn(2, 4, 3, dtype=F64)
    rnn = ODERNN(field, name)
    with torch.no_grad():
        states, _ = rnn(x)
        C, u = field.coupling_matrix().numpy(), field.input_projection(x).numpy()
    assert rnn.last_stats.n_rejected > 0  # the jumps were felt
    for b in range(2):
        h = np.zeros(16)
        for k in range(4):
            h = solve_ivp(lambda t, y, v=u[b, k]: np.tanh(C @ y + v), (0.0, rnn.settings.step_size), h,
                          method="Radau", rtol=1e-10, atol=1e-13).y[:, -1]
            assert np.abs(states[b, k].numpy() - h).max() < 1e-7 + 1e-5 * np.abs(h).max()
