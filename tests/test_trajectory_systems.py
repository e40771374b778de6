"""Built-in systems of the trajectory task: ground truth from one batched solvers.odeint call against scipy's
DOP853 on equations written out independently here, on shared and irregular times, under fixed-step and
implicit solvers too; initial conditions; clear errors."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from experiments.trajectory.simulate import SimulationSettings, generate, observation_times, simulate
from experiments.trajectory.systems import SYSTEMS, get_system, parse_params


def _double_pendulum(y, p):
    """The Euler-Lagrange equations M(q) q'' = r(q, q') of L = T - V solved by a linear solve, not eq. 19-20."""
    th1, w1, th2, w2 = y
    d = th1 - th2
    coupling = p.m2 * p.L1 * p.L2 * np.cos(d)
    mass = np.array([[(p.m1 + p.m2) * p.L1**2, coupling], [coupling, p.m2 * p.L2**2]])
    force = np.array([-p.m2 * p.L1 * p.L2 * w2**2 * np.sin(d) - (p.m1 + p.m2) * p.g * p.L1 * np.sin(th1),
                      p.m2 * p.L1 * p.L2 * w1**2 * np.sin(d) - p.m2 * p.g * p.L2 * np.sin(th2)])
    acc = np.linalg.solve(mass, force)
    return np.array([w1, acc[0], w2, acc[1]])


# Right-hand sides written out in numpy, independent of the torch modules under test.
REFERENCE = {
    "pendulum": lambda y, p: np.array([y[1], -(p.g / p.L) * np.sin(y[0]) - p.damping * y[1]]),
    "damped-oscillator": lambda y, p: np.array([y[1], -p.omega**2 * y[0] - 2 * p.zeta * p.omega * y[1]]),
    "van-der-pol": lambda y, p: np.array([y[1], p.mu * (1 - y[0] ** 2) * y[1] - y[0]]),
    "lorenz63": lambda y, p: np.array([p.sigma * (y[1] - y[0]), y[0] * (p.rho - y[2]) - y[1], y[0] * y[1] - p.beta * y[2]]),
    "fitzhugh-nagumo": lambda y, p: np.array([y[0] - y[0] ** 3 / 3 - y[1] + p.I, p.eps * (y[0] + p.a - p.b * y[1])]),
    "double-pendulum": _double_pendulum,
}


def scipy_reference(name, params, y0, times):
    """One DOP853 solve per trajectory at rtol = atol = 1e-12; times (k, T)."""
    return np.stack([solve_ivp(lambda t, y: REFERENCE[name](y, params), (t[0], t[-1]), y, method="DOP853",
                               t_eval=t, rtol=1e-12, atol=1e-12).y.T for y, t in zip(y0, times)])


@pytest.mark.parametrize("irregular", [False, True], ids=["shared-grid", "irregular"])
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_ground_truth_matches_scipy(name, irregular):
    truth = generate(SimulationSettings(system=name, n=5, steps=12, irregular=irregular, data_seed=3))
    assert truth.states.shape == (5, 12, len(SYSTEMS[name].state_names)) and truth.times.shape == (5, 12)
    assert truth.metadata["solver"] == "dopri5" and truth.metadata["rtol"] == 1e-12
    params = get_system(name).params
    ref = scipy_reference(name, params, truth.states[:, 0], truth.times)
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(truth.states - ref).max() < 1e-9 * scale
    if irregular:  # each trajectory its own times, starting at 0
        assert not np.allclose(truth.times[0], truth.times[1]) and np.all(truth.times[:, 0] == 0)


def test_any_registered_solver_by_name():
    system = get_system("van-der-pol")
    y0 = system.initial_conditions(3, 0)
    times = observation_times(3, 6, 0.2, True, 0.5, 0)
    ref = scipy_reference("van-der-pol", system.params, y0, times)
    for method, step, tol in (("rk4", 1e-2, 1e-6), ("gauss_legendre4", 0.05, 5e-5), ("bosh3", None, 1e-6)):
        states, info = simulate(system, y0, times, method, rtol=1e-9, atol=1e-9, step_size=step)
        assert info["solver"] == method
        assert np.abs(states - ref).max() < tol, method
    # first order: halving the step halves the error (no trajectory's step exceeds step_size)
    errors = [np.abs(simulate(system, y0, times, "partitioned_euler", step_size=h)[0] - ref).max() for h in (1e-2, 5e-3)]
    assert 1.7 < errors[0] / errors[1] < 2.3 and errors[0] < 0.05


def test_closed_form_and_conservation():
    """Damped oscillator against its closed form; undamped pendulum conserves energy."""
    osc = get_system("damped-oscillator", omega=2.0, zeta=0.1)
    y0 = np.array([[1.0, 0.0]])
    t = np.linspace(0, 3, 31)
    states, _ = simulate(osc, y0, t)
    wd = 2.0 * np.sqrt(1 - 0.01)
    x = np.exp(-0.2 * t) * (np.cos(wd * t) + 0.2 / wd * np.sin(wd * t))
    assert np.abs(states[0, :, 0] - x).max() < 1e-10
    pend = get_system("pendulum")
    states, _ = simulate(pend, pend.initial_conditions(6, 1), np.linspace(0, 5, 51))
    energy = pend.energy(torch.as_tensor(states)).numpy()
    assert np.abs(energy - energy[:, :1]).max() < 1e-9


def test_initial_conditions_follow_the_documented_ranges():
    y = get_system("lorenz63").initial_conditions(2000, 0)
    assert np.abs(y[:, :2]).max() <= 15 and y[:, 2].min() >= 10 and y[:, 2].max() <= 40
    assert np.array_equal(y, get_system("lorenz63").initial_conditions(2000, 0))
    assert not np.array_equal(y, get_system("lorenz63").initial_conditions(2000, 1))
    p = get_system("pendulum", max_angle=0.5, max_velocity=0.1).initial_conditions(500, 2)
    assert np.abs(p[:, 0]).max() <= 0.5 and np.abs(p[:, 1]).max() <= 0.1 and np.abs(p[:, 0]).max() > 0.45
    # the authors' draw: each variable uniform in [-90, 90] degrees (deg/s), in radians
    assert np.array_equal(get_system("double-pendulum").initial_conditions(7, 5),
                          np.radians(np.random.default_rng(5).uniform(-90, 90, size=(7, 4))))


def test_times_and_settings():
    t = observation_times(3, 5, 0.1, False, 0.8, 0)
    assert np.allclose(t, np.arange(5) * 0.1) and t.shape == (3, 5)
    t = observation_times(200, 6, 0.1, True, 0.5, 0)
    gaps = np.diff(t, axis=1)
    assert gaps.min() >= 0.05 and gaps.max() <= 0.15 and np.all(t[:, 0] == 0)
    s = SimulationSettings(system="van-der-pol", params=(("mu", 2.0),))
    assert s.build_system().params.mu == 2.0 and s.resolved_steps == SYSTEMS["van-der-pol"].default_steps


@pytest.mark.parametrize("kwargs,match", [
    (dict(system="nope"), "unknown system 'nope'; known systems: damped-oscillator"),
    (dict(system="pendulum", params=(("mu", 1.0),)), "unknown parameter.*mu.*known: g, L"),
    (dict(system="pendulum", params=(("L", -1.0),)), "L must be a finite number > 0"),
    (dict(n=2), "at least|>= 3"),
    (dict(truth_solver="rk5"), "rk5"),
    (dict(jitter=1.0), r"jitter must lie in \[0, 1\)"),
])
def test_bad_settings_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimulationSettings(**kwargs)


def test_parse_params():
    assert parse_params(["mu=2", " zeta = 0.5"]) == {"mu": 2.0, "zeta": 0.5}
    for bad in ("mu", "=2", "mu=two"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse_params([bad])
    with pytest.raises(ValueError, match="last dimension of 3"):
        get_system("lorenz63")(torch.tensor(0.0), torch.zeros(2))
