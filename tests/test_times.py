"""Observation times in ODERNN: uniform times reproduce the default grid, per-sample times match scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import solvers
from odernn import ODERNN, AFRNNField, AntisymmetricField, GatedAntisymmetricField

pytestmark = pytest.mark.usefixtures("float64")

ONE_PER_KIND = ["euler", "rk4", "backward_euler", "implicit_midpoint", "partitioned_euler", "dopri5", "bosh3"]


def data(batch=3, steps=5, m=2, seed=0):
    return torch.randn(batch, steps, m, generator=torch.Generator().manual_seed(seed))


def irregular_times(batch, steps, seed=1):
    gaps = 0.05 + 0.4 * torch.rand(batch, steps, generator=torch.Generator().manual_seed(seed))
    return gaps.cumsum(-1)


def scipy_states(field, x, times, t0=0.0):
    """Interval by interval with DOP853 at 1e-12: x_k held on (t_{k-1}, t_k] of each sample's own grid."""
    with torch.no_grad():
        U = field.input_projection(x).numpy()
        C = field.coupling_matrix().numpy()
    times = times.expand(x.shape[0], -1).numpy() if times.dim() == 1 else times.numpy()
    out = np.zeros((x.shape[0], x.shape[1], field.state_size))
    for b in range(x.shape[0]):
        h, start = np.zeros(field.state_size), t0
        for k in range(x.shape[1]):
            rhs = lambda t, y, u=U[b, k]: np.tanh(C @ y + u)  # noqa: E731
            h = solve_ivp(rhs, (start, times[b, k]), h, method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
            out[b, k], start = h, times[b, k]
    return torch.from_numpy(out)


@pytest.mark.parametrize("solver", ONE_PER_KIND)
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-sample"])
def test_uniform_times_reproduce_the_default_grid_under_every_solver_kind(solver, shared):
    torch.manual_seed(0)
    field = AFRNNField(2, [2, 3], gamma=0.1)
    x, eps = data(), 0.3
    model = ODERNN(field, solver, step_size=eps, substeps=2, rtol=1e-7, atol=1e-9)
    times = eps * torch.arange(1, 6, dtype=torch.float64)
    times = times if shared else times.expand(3, 5)
    default = model(x)[0]
    given = model(x, times=times)[0]
    tol = 1e-8 if solvers.get_method(solver).kind == "adaptive" else 1e-12
    assert torch.allclose(given, default, atol=tol, rtol=0), float((given - default).abs().max())


@pytest.mark.parametrize("solver,substeps,tol", [("dopri5", 1, 1e-8), ("rk4", 20, 1e-6),
                                                 ("gauss_legendre4", 20, 1e-6)])
def test_per_sample_irregular_times_match_scipy_sample_by_sample(solver, substeps, tol):
    torch.manual_seed(1)
    field = AntisymmetricField(2, 4, gamma=0.1, sigma_w=2.0)
    with torch.no_grad():
        field.input.weight.mul_(3)  # large jumps of the held input at every sample's own times
    x, times = data(), irregular_times(3, 5)
    model = ODERNN(field, solver, step_size=0.5, substeps=substeps, rtol=1e-10, atol=1e-12)
    got = model(x, times=times)[0]
    assert torch.allclose(got, scipy_states(field, x, times), atol=tol, rtol=0)


def test_fixed_methods_take_ceil_interval_over_step_substeps_per_sample():
    """A batch with irregular times equals each sample run alone (its own step counts), to rounding."""
    field = GatedAntisymmetricField(2, 3, gamma=0.1)
    x, times = data(), irregular_times(3, 5)
    model = ODERNN(field, "rk4", step_size=0.1)
    batched = model(x, times=times)[0]
    expected_steps = int(torch.ceil(torch.cat([times[:, :1], times.diff(dim=-1)], -1) / 0.1 - 1e-9).max(0).values.sum())
    assert model.last_stats.n_steps == expected_steps
    for b in range(3):
        alone = model(x[b:b + 1], times=times[b])[0]
        assert torch.allclose(batched[b:b + 1], alone, atol=1e-13, rtol=0)


def test_t0_moves_the_start_and_gradients_reach_the_times():
    field = AntisymmetricField(2, 3, gamma=0.1)
    x = data(batch=2, steps=3)
    times = torch.tensor([[0.4, 0.9, 1.0], [0.2, 0.5, 1.3]], requires_grad=True)
    model = ODERNN(field, "rk4", step_size=0.05)
    shifted = model(x, times=times.detach() + 1.0, t0=1.0)[0]
    assert torch.allclose(shifted, model(x, times=times.detach())[0], atol=1e-12)
    (grad,) = torch.autograd.grad(model(x, times=times)[1].sum(), times)
    assert grad.shape == (2, 3) and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("times,match", [
    (torch.tensor([0.1, 0.2, math.nan]), "must be finite"),
    (torch.tensor([0.1, 0.3, 0.2]), r"increase strictly.*times\[2\] = 0.2"),
    (torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.1, 0.4]]), r"sample 1, times\[1\]"),
    (torch.tensor([0.0, 0.2, 0.3]), r"start after t0=0"),
    (torch.tensor([0.1, 0.2]), r"shape \(T,\) = \(3,\) or \(B, T\) = \(2, 3\).*got \(2,\)"),
    (torch.ones(3, 3), r"got \(3, 3\)"),
])
def test_bad_times_get_a_clear_error(times, match):
    with pytest.raises(ValueError, match=match):
        ODERNN(AntisymmetricField(2, 3))(data(batch=2, steps=3), times=times)


def test_float32_default_grid_takes_one_step_per_sample_in_every_integrator():
    """float32 grid times k * eps carry rounding of ~1e-6 near t = 8: still exactly one Euler step each."""
    torch.set_default_dtype(torch.float32)
    field = AntisymmetricField(1, 4, gamma=0.1)
    x = torch.randn(2, 784, 1)
    results = []
    for fast_path in (True, False):
        model = ODERNN(field, "euler", step_size=0.01, fast_path=fast_path)
        results.append(model(x)[0])
        assert model.last_stats.n_steps == 784
    assert torch.allclose(results[0], results[1], atol=1e-5)
