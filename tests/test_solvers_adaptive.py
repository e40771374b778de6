"""Adaptive embedded Runge-Kutta: accuracy, agreement with torchdiffeq, landing on output times, stats."""
import pytest
import torch
import torchdiffeq

import solvers.adaptive
from solvers import SolveStats, StepController, available, get_tableau, odeint
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
    rk_stages = solvers.adaptive.rk_stages

    def spy(f, t, y, dt, tableau, k0=None):
        attempts.append((float(t), float(t) + dt))
        return rk_stages(f, t, y, dt, tableau, k0)

    monkeypatch.setattr(solvers.adaptive, "rk_stages", spy)
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
