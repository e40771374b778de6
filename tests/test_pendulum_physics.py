"""The double pendulum's vector field (eq. 19-20) against the Lagrangian derivation of ``reference``, energy
conservation of the field, and the authors' initial conditions."""
import numpy as np
import pytest
import torch

from experiments.double_pendulum.physics import DoublePendulum, initial_conditions, output_times
from experiments.double_pendulum.reference import lagrangian_rhs

PARAMS = [DoublePendulum(), DoublePendulum(m1=1.3, m2=0.7, L1=0.8, L2=1.4, g=9.81)]


@pytest.mark.parametrize("pendulum", PARAMS)
def test_field_matches_lagrangian_derivation(pendulum):
    y = torch.as_tensor(np.random.default_rng(0).uniform(-3, 3, size=(64, 4)))
    ours = pendulum(torch.tensor(0.0, dtype=torch.float64), y).numpy()
    reference = np.stack([lagrangian_rhs(row, pendulum) for row in y.numpy()])
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pendulum", PARAMS)
def test_field_conserves_energy(pendulum):
    """dE/dt = grad E . f vanishes at every state (the field is Hamiltonian)."""
    y = torch.as_tensor(np.random.default_rng(1).uniform(-3, 3, size=(64, 4))).requires_grad_(True)
    (grad,) = torch.autograd.grad(pendulum.energy(y).sum(), y)
    power = (grad * pendulum(torch.tensor(0.0, dtype=torch.float64), y.detach())).sum(-1)
    scale = grad.abs().sum(-1) * pendulum(torch.tensor(0.0, dtype=torch.float64), y.detach()).abs().max(-1).values
    assert torch.all(power.abs() <= 1e-12 * scale)


def test_field_keeps_batch_shape_and_rest_is_equilibrium():
    p = DoublePendulum()
    y = torch.zeros(3, 5, 4, dtype=torch.float64)
    assert p(torch.tensor(0.0), y).shape == (3, 5, 4)
    assert torch.count_nonzero(p(torch.tensor(0.0), y)) == 0
    pos = p.positions(y)
    assert torch.allclose(pos[..., 3], torch.full((3, 5), -(p.L1 + p.L2), dtype=torch.float64))


def test_energy_and_positions_of_known_state():
    p = DoublePendulum(m1=2.0, m2=1.0, L1=1.0, L2=0.5, g=10.0)
    y = torch.tensor([np.pi / 2, 0.0, np.pi / 2, 0.0], dtype=torch.float64)  # both rods horizontal, at rest
    assert float(p.energy(y)) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(p.positions(y).numpy(), [1.0, 0.0, 1.5, 0.0], atol=1e-12)


def test_initial_conditions_follow_authors_ranges_and_seed():
    y0 = initial_conditions(4000, seed=3)
    assert y0.shape == (4000, 4)
    assert np.all(np.abs(y0) <= np.pi / 2)
    assert np.all(np.abs(y0).max(axis=0) > 0.98 * np.pi / 2)  # the whole range is used, in radians
    np.testing.assert_array_equal(y0, initial_conditions(4000, seed=3))
    assert not np.array_equal(y0, initial_conditions(4000, seed=4))
    np.testing.assert_allclose(output_times(), np.arange(30) / 10, atol=1e-15)


@pytest.mark.parametrize("bad", [dict(m1=0.0), dict(L2=-1.0), dict(g=float("nan"))])
def test_bad_parameters_are_rejected(bad):
    with pytest.raises(ValueError, match="positive"):
        DoublePendulum(**bad)


def test_bad_shapes_and_counts_are_rejected():
    with pytest.raises(ValueError, match="last dimension of 4"):
        DoublePendulum()(torch.tensor(0.0), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="positive integer"):
        initial_conditions(0, seed=0)
