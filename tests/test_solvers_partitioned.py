"""Partitioned (Gauss-Seidel) Euler: literal transcription, first order, symplectic behaviour."""
import numpy as np
import pytest
import torch

from solvers import odeint, partitioned_euler_step
from solvers.problems import random_linear_problem


def coupled(t, y):
    """Two blocks x (2 components) and v (3 components) with a non-linear, time-dependent coupling."""
    x, v = y[..., :2], y[..., 2:]
    K = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=y.dtype)
    return torch.cat([torch.tanh(v @ K.T) - 0.1 * x, -torch.sin(x @ K) + torch.cos(t) * v], dim=-1)


def test_equals_a_literal_two_block_gauss_seidel_step():
    y = torch.randn(4, 5, dtype=torch.float64)
    t, dt = torch.tensor(0.3, dtype=torch.float64), 0.1
    x, v = y[..., :2], y[..., 2:]
    x_new = x + dt * coupled(t, torch.cat([x, v], -1))[..., :2]  # block 1 from the old state
    v_new = v + dt * coupled(t, torch.cat([x_new, v], -1))[..., 2:]  # block 2 sees the new block 1
    expected = torch.cat([x_new, v_new], -1)
    assert torch.allclose(partitioned_euler_step(coupled, t, y, dt, (2, 3)), expected, rtol=0, atol=1e-15)
    # a single block is forward Euler
    assert torch.equal(partitioned_euler_step(coupled, t, y, dt, (5,)), y + dt * coupled(t, y))


def test_three_blocks_each_see_the_updated_blocks_before_them():
    seen = []

    def f(t, y):
        seen.append(y.clone())
        return torch.ones_like(y)

    out = partitioned_euler_step(f, 0.0, torch.zeros(6), 0.5, (1, 2, 3))
    assert torch.equal(out, torch.full((6,), 0.5))
    assert [s.tolist() for s in seen] == [[0.0] * 6, [0.5] + [0.0] * 5, [0.5] * 3 + [0.0] * 3]


def test_first_order_convergence():
    problem = random_linear_problem(dim=10, seed=0)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    exact = problem.exact(t)[-1]
    steps = (0.04, 0.02, 0.01, 0.005)
    errors = [(odeint(problem.f, problem.y0, t, method="partitioned_euler", step_size=h, partition=(4, 6))[-1]
               - exact).abs().max().item() for h in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - 1.0) < 0.2, errors


def test_symplectic_on_the_harmonic_oscillator():
    """x' = v, v' = -x: symplectic Euler keeps the energy bounded, forward Euler lets it grow."""
    def oscillator(t, y):
        return torch.stack([y[..., 1], -y[..., 0]], dim=-1)

    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    t = torch.linspace(0.0, 100.0, 11, dtype=torch.float64)
    energy = lambda ys: ys.square().sum(-1)  # noqa: E731
    symplectic = odeint(oscillator, y0, t, method="partitioned_euler", step_size=0.1, partition=(1, 1))
    forward = odeint(oscillator, y0, t, method="euler", step_size=0.1)
    assert (energy(symplectic) - 1.0).abs().max().item() < 0.11
    assert energy(forward)[-1].item() > 100.0  # (1 + h^2)^(1000) ~ e^10


def test_bad_sizes():
    with pytest.raises(ValueError, match=r"partition sizes \(2, 2\) sum to 4, but the state's last dimension is 5"):
        partitioned_euler_step(coupled, 0.0, torch.zeros(5), 0.1, (2, 2))
