"""Gradients through solves (discretise-then-optimise), checked with torch.autograd.gradcheck in float64."""
import pytest
import torch
from torch.autograd import gradcheck

from solvers import odeint


def field(W):
    return lambda t, y: torch.tanh(y @ W.T) + 0.5 * torch.sin(t) * y


@pytest.fixture
def inputs():
    gen = torch.Generator().manual_seed(0)
    y0 = torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    W = torch.randn(3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    return y0, W


@pytest.mark.parametrize("method, step_size", [("rk4", 0.1), ("euler", None), ("midpoint", 0.07)])
def test_gradcheck_fixed_step_wrt_y0_and_a_parameter(inputs, method, step_size):
    t = torch.linspace(0.0, 0.6, 4, dtype=torch.float64)
    assert gradcheck(lambda y0, W: odeint(field(W), y0, t, method=method, step_size=step_size), inputs)


def test_gradcheck_partitioned_euler(inputs):
    t = torch.linspace(0.0, 0.4, 3, dtype=torch.float64)
    assert gradcheck(lambda y0, W: odeint(field(W), y0, t, method="partitioned_euler", step_size=0.1,
                                          partition=(1, 2)), inputs)


def test_gradcheck_adaptive_solve_with_fixed_accepted_steps(inputs):
    """Loose tolerances and close outputs: every step is clipped to the next output time and accepted, so
    the step sequence does not move under gradcheck's perturbations and the check is exact."""
    t = torch.linspace(0.0, 0.3, 7, dtype=torch.float64)

    def solve(y0, W):
        return odeint(field(W), y0, t, method="dopri5", rtol=1e-2, atol=1e-2, return_stats=True)

    _, stats = solve(*inputs)
    assert (stats.n_accepted, stats.n_rejected) == (len(t) - 1, 0)
    assert gradcheck(lambda y0, W: solve(y0, W)[0], inputs)


def decay(t, y):
    return -y


@pytest.mark.parametrize("method, tol", [("dopri5", 1e-10), ("bosh3", 1e-8), ("adaptive_heun", 1e-6)])
def test_adaptive_output_is_differentiable_in_the_output_times(method, tol):
    """y' = -y, y(0) = 1: y(t1) = exp(-(t1 - t0)), so d y(t1) / d(t0, t1) = (e^-1, -e^-1) at t = (0, 1)
    (the step sizes used to be floats, giving (0, 0))."""
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    ys = odeint(decay, torch.ones(1, dtype=torch.float64), t, method=method, rtol=tol, atol=tol)
    (grad,) = torch.autograd.grad(ys[-1, 0], t)
    e = torch.exp(torch.tensor(-1.0, dtype=torch.float64))
    assert torch.allclose(grad, torch.stack([e, -e]), atol=100 * tol), grad


def nonlinear(t, y):
    return torch.sin(3.0 * t) * y - y ** 3


def autonomous(t, y):
    return -y ** 3 + 0.5 * y.flip(-1)


# Step sizes that do not divide the intervals of T_GRAD, so gradcheck's perturbations keep the substep counts.
T_GRAD = (0.1, 0.4, 0.9)
# Output times close enough for every adaptive step to land on the next one at tolerance 3e-2.
T_LAND = (0.1, 0.15, 0.2, 0.25)


@pytest.mark.parametrize("method, options", [
    ("euler", dict(step_size=0.07)),
    ("rk4", {}),
    ("backward_euler", dict(step_size=0.07)),
    ("gauss_legendre4", dict(step_size=0.07)),
    ("partitioned_euler", dict(step_size=0.07, partition=(1, 1))),
])
def test_gradcheck_fixed_implicit_partitioned_with_respect_to_the_output_times(method, options):
    y0 = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(T_GRAD, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda y0, t: odeint(nonlinear, y0, t, method=method, **options), (y0, t))


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "adaptive_heun"])
def test_gradcheck_adaptive_with_respect_to_the_output_times_when_every_step_lands(method):
    """Every step lands on an output time, so the step sequence is a function of t alone (dt = t_k - t_now)
    and the derivative of the computed solution is exact, also for a non-autonomous f."""
    y0 = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(T_LAND, dtype=torch.float64, requires_grad=True)

    def solve(y0, t):
        return odeint(nonlinear, y0, t, method=method, rtol=3e-2, atol=3e-2, return_stats=True)

    assert solve(y0, t)[1].n_steps == len(T_LAND) - 1
    assert gradcheck(lambda y0, t: solve(y0, t)[0], (y0, t))


def test_gradcheck_adaptive_with_interior_steps():
    """Between output times the step sizes are detached (as in torchdiffeq): the derivative through them is
    of the order of the local error, far below gradcheck's tolerance at rtol 1e-8; the landing steps carry
    the dependence on t."""
    y0 = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(T_GRAD, dtype=torch.float64, requires_grad=True)
    ys, stats = odeint(autonomous, y0, t, method="dopri5", rtol=1e-8, atol=1e-8, return_stats=True)
    assert stats.n_accepted >= 3 * (len(T_GRAD) - 1)
    assert gradcheck(lambda y0, t: odeint(autonomous, y0, t, method="dopri5", rtol=1e-8, atol=1e-8), (y0, t))


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_gradcheck_output_times_through_torchdiffeq(method):
    t = torch.tensor(T_GRAD, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([0.7, -0.3], dtype=torch.float64)
    assert gradcheck(lambda t: odeint(nonlinear, y0, t, method=method, backend="torchdiffeq"), (t,))


def test_decreasing_output_times_have_mirrored_gradients():
    t = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    ys = odeint(decay, torch.ones(1, dtype=torch.float64), t, method="dopri5", rtol=1e-10, atol=1e-12)
    (grad,) = torch.autograd.grad(ys[-1, 0], t)  # y(t1) = exp(t0 - t1): (e, -e) at t = (1, 0)
    assert torch.allclose(grad, torch.tensor([1.0, -1.0], dtype=torch.float64) * torch.e, atol=1e-8), grad
