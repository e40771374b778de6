"""Reversible Heun: order 2, exact inverse, O(1)-memory backward equal to autograd through the same steps."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import solvers
from odernn import ODERNN, AFRNNField, AntisymmetricField, GatedAntisymmetricField
from odernn.integrators import ReversibleScan, SteppedScan
from experiments.benchmark import saved_bytes
from solvers.reversible import reversible_heun_inverse, reversible_heun_step

pytestmark = pytest.mark.usefixtures("float64")


def test_the_inverse_step_undoes_the_step():
    f = lambda t, y: torch.sin(t) * torch.tanh(y) - 0.3 * y  # noqa: E731
    y, z = torch.randn(4, 3), torch.randn(4, 3)
    y1, z1, _ = reversible_heun_step(f, torch.tensor(0.2), y, z, 0.37)
    y0, z0, _ = reversible_heun_inverse(f, torch.tensor(0.2), y1, z1, 0.37)
    assert torch.allclose(y0, y, atol=1e-14) and torch.allclose(z0, z, atol=1e-14)


def test_order_two_through_odeint():
    A = torch.tensor([[-0.1, 1.0], [-1.0, -0.1]])
    y0 = torch.tensor([1.0, 0.5])
    t = torch.tensor([0.0, 2.0])
    exact = torch.linalg.matrix_exp(2.0 * A) @ y0
    steps = [0.1, 0.05, 0.025, 0.0125]
    errors = [float((solvers.odeint(lambda t, y: y @ A.T, y0, t, method="reversible_heun", step_size=h)[-1]
                     - exact).abs().max()) for h in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - 2.0) < 0.2, (errors, slope)


@pytest.mark.parametrize("make_field", [lambda: AntisymmetricField(2, 4, gamma=0.1),
                                        lambda: GatedAntisymmetricField(2, 3, gamma=0.1),
                                        lambda: AFRNNField(2, [2, 3], gamma=0.1)], ids=["antisym", "gated", "afrnn"])
@pytest.mark.parametrize("substeps", [1, 3])
def test_o1_memory_backward_equals_autograd_through_the_same_steps(make_field, substeps):
    torch.manual_seed(0)
    field = make_field()
    x = torch.randn(3, 6, 2, requires_grad=True)
    h0 = torch.randn(3, field.state_size, requires_grad=True)
    model = ODERNN(field, "reversible_heun", step_size=0.3, substeps=substeps)
    assert type(model.integrator) is ReversibleScan
    results = []
    for integrator in (model.integrator, SteppedScan(model.method)):
        model.integrator = integrator
        outputs, h_n = model(x, h0)
        loss = outputs.pow(3).sum() + h_n.pow(2).sum()
        results.append([outputs, *torch.autograd.grad(loss, [x, h0, *field.parameters()])])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-8, rtol=0), float((a - b).abs().max())


def test_gradcheck_through_the_reversible_backward():
    torch.manual_seed(1)
    field = AntisymmetricField(2, 3, gamma=0.1)
    model = ODERNN(field, "reversible_heun", step_size=0.4, substeps=2)
    names = [n for n, _ in model.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in model.parameters()]
    x, h0 = torch.randn(2, 4, 2, requires_grad=True), torch.randn(2, 3, requires_grad=True)

    def run(x, h0, *weights):
        return torch.func.functional_call(model, dict(zip(names, weights)), (x, h0))[0]

    assert torch.autograd.gradcheck(run, (x, h0, *weights))


def test_saved_memory_does_not_grow_with_the_sequence_length():
    field = AntisymmetricField(1, 8, gamma=0.1)
    x_short, x_long = torch.randn(4, 50, 1), torch.randn(4, 400, 1)
    reversible = ODERNN(field, "reversible_heun", step_size=0.1)
    euler = ODERNN(field, "euler", step_size=0.1, fast_path=False)
    assert saved_bytes(euler, x_long) > 6 * saved_bytes(euler, x_short)
    # the reversible scan saves h0, x, the last pair and the parameters: x grows (the caller's input, 1 feature)
    grow = saved_bytes(reversible, x_long) - saved_bytes(reversible, x_short)
    assert grow == (400 - 50) * 4 * 1 * 8


def test_frozen_parameters_and_time_gradients():
    field = AntisymmetricField(2, 3, gamma=0.1)
    field.input.weight.requires_grad_(False)
    model = ODERNN(field, "reversible_heun", step_size=0.2)
    x = torch.randn(2, 4, 2)
    model(x)[1].sum().backward()
    assert field.input.weight.grad is None and field.antisymmetric.weight.grad is not None
    with pytest.raises(ValueError, match="no gradient with respect to the observation times"):
        model(x, times=torch.tensor([0.1, 0.3, 0.4, 0.9], requires_grad=True))
    with pytest.raises(ValueError, match="no integrator runs method 'reversible_heun'"):
        ODERNN(field, "reversible_heun", interpolation="linear")
