"""Fixed-step Runge-Kutta: convergence orders, agreement with torchdiffeq, the generic step, the grid."""
import numpy as np
import pytest
import torch
import torchdiffeq

from solvers import available, get_tableau, odeint, rk_step
from solvers.explicit import step_counts
from solvers.problems import random_linear_problem

STEP_SIZES = (0.2, 0.1, 0.05, 0.025)


def fitted_order(step_sizes, errors) -> float:
    return float(np.polyfit(np.log(step_sizes), np.log(errors), 1)[0])


@pytest.fixture(scope="module")
def problem():
    return random_linear_problem(dim=10, seed=0)


@pytest.mark.parametrize("method", available("fixed"))
def test_error_slope_matches_the_order(problem, method):
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    exact = problem.exact(t)[-1]
    errors = [(odeint(problem.f, problem.y0, t, method=method, step_size=h)[-1] - exact).abs().max().item()
              for h in STEP_SIZES]
    assert abs(fitted_order(STEP_SIZES, errors) - get_tableau(method).order) < 0.2, errors


def forced(t, y, A=random_linear_problem(dim=4, seed=1).A):
    """A non-autonomous field, so that the stage times t + c_i dt matter."""
    return y @ A.T + torch.sin(3.0 * t) * torch.arange(1.0, 5.0, dtype=y.dtype)


@pytest.mark.parametrize("ours, theirs", [("euler", "euler"), ("midpoint", "midpoint"), ("rk38", "rk4"),
                                          ("heun", "heun2")])
@pytest.mark.parametrize("field", ["linear", "forced"])
def test_agrees_with_torchdiffeq_on_the_same_grid(problem, ours, theirs, field):
    f, y0 = (problem.f, problem.y0) if field == "linear" else (forced, torch.ones(3, 4, dtype=torch.float64))
    t = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)
    ys = odeint(f, y0, t, method=ours)
    ref = torchdiffeq.odeint(f, y0, t, method=theirs)
    assert (ys - ref).abs().max().item() < 1e-10


def test_euler_step_is_exactly_y_plus_dt_f(problem):
    y = problem.y0.repeat(3, 1)
    for t, dt in [(0.3, 0.1), (torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64))]:
        assert torch.equal(rk_step(problem.f, t, y, dt, get_tableau("euler")), y + dt * problem.f(t, y))


def test_stage_times_and_evaluations_follow_the_tableau():
    calls = []

    def f(t, y):
        calls.append(t)
        return torch.ones_like(y)

    t0, dt = torch.tensor(1.0), torch.tensor(0.5)
    rk_step(f, t0, torch.zeros(2), dt, get_tableau("rk4"))
    assert calls[0] is t0  # c_1 = 0: t itself
    assert [float(c) for c in calls] == [1.0, 1.25, 1.25, 1.5]
    calls.clear()
    y1 = rk_step(f, 1.0, torch.zeros(2), 0.5, get_tableau("rk38"))  # Python floats work too
    assert calls == [1.0, 1.0 + 0.5 / 3, 1.0 + 1.0 / 3, 1.5] and torch.allclose(y1, torch.full((2,), 0.5))


def test_fixed_grid_lands_on_every_output_time_with_equal_step_counts():
    seen = []

    def f(t, y):
        seen.append(float(t))
        return torch.ones_like(y)

    t = torch.tensor([0.0, 0.3, 0.35, 1.0], dtype=torch.float64)
    ys, stats = odeint(f, torch.zeros(1, dtype=torch.float64), t, method="euler", step_size=0.1,
                       return_stats=True)
    assert torch.allclose(ys[:, 0], t, atol=1e-15)  # y = t exactly integrated: outputs at the output times
    expected = [0.0, 0.1, 0.2, 0.3] + list(0.35 + 0.65 / 7 * np.arange(7))
    assert np.allclose(seen, expected, atol=1e-15)
    assert (stats.nfe, stats.n_steps, stats.n_accepted, stats.n_rejected) == (11, 11, 11, 0)
    counts = step_counts(torch.tensor([0.0, 0.3, 0.61, 0.66], dtype=torch.float64), 0.1)
    assert counts.tolist() == [3, 4, 1]
    grid = torch.arange(785, dtype=torch.float32) * 0.01  # float32 widths off by ~1e-6 near t = 8
    assert bool((step_counts(grid, 0.01) == 1).all()) and bool((step_counts(grid, 0.005) == 2).all())


def test_decreasing_times_integrate_backwards(problem):
    t = torch.linspace(1.0, 0.0, 21, dtype=torch.float64)
    ys = odeint(problem.f, problem.y0, t, method="rk4")
    exact = torch.stack([torch.linalg.matrix_exp((s - 1.0) * problem.A) @ problem.y0 for s in t])
    assert (ys - exact).abs().max().item() < 1e-5
    ref = torchdiffeq.odeint(problem.f, problem.y0, t, method="rk4")  # the 3/8 rule
    assert (odeint(problem.f, problem.y0, t, method="rk38") - ref).abs().max().item() < 1e-10


def test_shapes_batches_and_float32():
    y0 = torch.randn(5, 2, 3)
    t = torch.linspace(0, 1, 4)
    ys = odeint(lambda t, y: -y, y0, t, method="rk4")
    assert ys.shape == (4, 5, 2, 3) and ys.dtype == torch.float32 and torch.equal(ys[0], y0)
    assert torch.allclose(ys[-1], y0 * np.exp(-1.0), atol=1e-3)
    single = odeint(lambda t, y: -y, y0, torch.tensor([0.0]))
    assert single.shape == (1, 5, 2, 3) and torch.equal(single[0], y0)


def test_time_is_a_0d_tensor_with_the_states_dtype():
    kinds = set()

    def f(t, y):
        kinds.add((type(t), t.dim(), t.dtype))
        return -y

    for method in ("rk4", "dopri5"):
        ys = odeint(f, torch.ones(2, dtype=torch.float64), [0.0, 0.1, 1.0], method=method)
    assert kinds == {(torch.Tensor, 0, torch.float64)}
    seen = []
    odeint(lambda t, y: seen.append(t) or -y, torch.ones(1, dtype=torch.float64), [0.0, 0.1], method="euler")
    assert seen[0].item() == 0.0 and ys.dtype == torch.float64  # a list of times keeps float64 precision
    ones = odeint(lambda t, y: torch.ones_like(y), torch.zeros(1, dtype=torch.float64), [0.0, 0.1], method="euler")
    assert ones[1].item() == 0.1
