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
