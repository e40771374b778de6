"""Adaptive embedded Runge-Kutta: accuracy, agreement with torchdiffeq, landing on output times, stats."""
import math

import pytest
import torch
import torchdiffeq

import solvers.adaptive
import solvers.pair
from solvers import SolveStats, StepController, StiffnessError, available, get_tableau, odeint
from solvers.stiffness import real_stability_boundary
from solvers.problems import random_linear_problem


@pytest.fixture(scope="module")
def problem():
    return random_linear_problem(dim=10, seed=0)


def relative_error(ys, exact):
    """Max over output times of ||y - exact|| / ||exact|| (infinity norm)."""
    return ((ys - exact).abs().amax(-1) / exact.abs().amax(-1)).max().item()


def test_dopri5_meets_rtol_1e8_and_agrees_with_torchdiffeq(problem):
    t = torch.linspace(0.0, 3.0, 7, dtype=torch.float64)
    exact = problem.exact(t)
    ys, stats = odeint(problem.f, problem.y0, t, method="dopri5", rtol=1e-8, atol=1e-10, return_stats=True)
    assert relative_error(ys, exact) < 1e-8
    ref = torchdiffeq.odeint(problem.f, problem.y0, t, method="dopri5", rtol=1e-8, atol=1e-10)
    assert relative_error(ref, exact) < 1e-7  # the reference itself, to know the scale of agreement
    assert relative_error(ys, ref) < 1e-7
    assert stats.n_accepted > 0 and stats.n_steps == stats.n_accepted + stats.n_rejected
    # 6 stages per attempt (FSAL) + 1 per output time after landing (not after the last) + 2 to start
    assert stats.nfe == 6 * stats.n_steps + (len(t) - 2) + 2


@pytest.mark.parametrize("method", available("adaptive"))
def test_every_adaptive_method_converges_as_the_tolerance_shrinks(problem, method):
    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    exact = problem.exact(t)
    errors, nfes = [], []
    rtols = (1e-4, 1e-6, 1e-8) if get_tableau(method).order >= 3 else (1e-3, 1e-4, 1e-5)  # 2nd order: costly
    for rtol in rtols:
        ys, stats = odeint(problem.f, problem.y0, t, method=method, rtol=rtol, atol=rtol * 1e-2, return_stats=True)
        errors.append(relative_error(ys, exact))
        nfes.append(stats.nfe)
        assert errors[-1] < 30 * rtol, (method, rtol, errors)
    assert errors[0] > errors[1] > errors[2] and nfes[0] < nfes[1] < nfes[2]


def test_steps_land_on_every_output_time_and_never_cross_one(problem, monkeypatch):
    attempts = []
    rk_stages = solvers.pair.rk_stages

    def spy(f, t, y, dt, tableau, k0=None):
        attempts.append((float(t), float(t) + dt))
        return rk_stages(f, t, y, dt, tableau, k0)

    monkeypatch.setattr(solvers.pair, "rk_stages", spy)
    t = torch.tensor([0.0, 0.013, 0.5, 0.51, 1.7, 3.0], dtype=torch.float64)
    ys, stats = odeint(problem.f, problem.y0, t, method="dopri5", rtol=1e-6, return_stats=True)
    assert len(attempts) == stats.n_steps
    outputs = t.tolist()
    for start, end in attempts:
        assert not any(start < s < end - 1e-12 for s in outputs), (start, end)
    ends = {end for _, end in attempts}
    assert all(any(abs(end - s) < 1e-15 for end in ends) for s in outputs[1:])
    assert relative_error(ys, problem.exact(t)) < 1e-5


def test_rejections_are_counted_and_the_solution_still_meets_the_tolerance():
    def stiffish(t, y):
        return -50.0 * (y - torch.cos(t))

    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    ys, stats = odeint(stiffish, torch.zeros(1, dtype=torch.float64), t, method="bosh3", rtol=1e-6,
                       atol=1e-8, return_stats=True, first_step=1.0)
    assert stats.n_rejected > 0 and stats.n_accepted > 0
    exact = 2500 / 2501 * torch.cos(t[1]) + 50 / 2501 * torch.sin(t[1]) - 2500 / 2501 * torch.exp(-50 * t[1])
    assert abs(ys[-1, 0] - exact).item() < 1e-5


def test_max_steps_and_controller_validation(problem):
    t = torch.tensor([0.0, 10.0], dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"max_steps=5 steps and reached only t="):
        odeint(problem.f, problem.y0, t, method="dopri5", rtol=1e-10, max_steps=5)
    with pytest.raises(ValueError, match="rtol must be finite and >= 0"):
        odeint(problem.f, problem.y0, t, method="dopri5", rtol=-1.0)
    with pytest.raises(ValueError, match="need 0 < min_factor < 1 < max_factor"):
        StepController(min_factor=2.0)
    with pytest.raises(ValueError, match=r"unknown options \['foo'\].*allowed: safety"):
        odeint(problem.f, problem.y0, t, method="dopri5", foo=1)


def test_stats_add():
    total = SolveStats(10, 3, 2, 1) + SolveStats(5, 2, 2, 0)
    assert total == SolveStats(nfe=15, n_steps=5, n_accepted=4, n_rejected=1)


def test_real_stability_boundaries_of_the_explicit_methods():
    """beta with |R(-x)| <= 1 on (0, beta]: Heun 2, classic RK4 2.785 (Hairer & Wanner II, Fig. IV.2.1),
    Bogacki-Shampine 2.513, DOPRI5 3.307 (its code tests h * lambda > 3.25)."""
    expected = {"adaptive_heun": 2.0, "rk4": 2.7853, "bosh3": 2.5127, "dopri5": 3.3066}
    for name, beta in expected.items():
        assert abs(real_stability_boundary(get_tableau(name)) - beta) < 1e-4, name


def oscillator(t, y):
    return torch.stack([y[..., 1], -y[..., 0]], dim=-1)


@pytest.mark.parametrize("method, rtol", [("dopri5", 1e-9), ("bosh3", 1e-5), ("adaptive_heun", 1e-3)])
def test_stiffness_test_is_silent_on_a_non_stiff_problem_and_fires_on_a_stiff_one(method, rtol):
    """Tested every 20 accepted steps (instead of 1000) to keep this fast: an oscillation over 5 periods, whose
    steps are limited by accuracy, passes; y' = -2000 (y - cos t), limited by stability, stops (at moderate
    tolerances: see solvers.stiffness for stringent ones)."""
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    t = torch.tensor([0.0, 10 * math.pi], dtype=torch.float64)
    ys, stats = odeint(oscillator, y0, t, method=method, rtol=rtol, atol=rtol * 1e-3, stiffness_interval=20,
                       return_stats=True)
    assert stats.n_accepted > 5 * 20 and (ys[-1] - y0).abs().max() < 100 * rtol
    with pytest.raises(StiffnessError, match=f"looks stiff for '{method}'"):
        odeint(lambda t, y: -2000.0 * (y - torch.cos(t)), torch.zeros(1, dtype=torch.float64), t, method=method,
               rtol=1e-5, atol=1e-8, stiffness_interval=20)
