"""The neural-ODE field h' = MLP(h, x) (``odernn.fields.neural``): its value against the formula written out,
its parameter count, gradcheck in float64 under an explicit and an implicit solver, every registered solver
but the IMEX and partitioned ones (which need a declared linear part or several blocks and say so), learning,
and bad settings refused."""
from __future__ import annotations

import pytest
import torch

import solvers
from odernn import build_rnn, count_parameters
from odernn.fields import NeuralODEField

D = torch.float64


def test_value_is_the_perceptron_written_out():
    torch.manual_seed(0)
    field = NeuralODEField(3, 5, width=7, depth=3).double()
    h, x = torch.randn(4, 5, dtype=D), torch.randn(4, 3, dtype=D)
    z = torch.tanh(h @ field.first.weight.T + x @ field.input.weight.T + field.input.bias)
    for layer in field.hidden:
        z = torch.tanh(z @ layer.weight.T + layer.bias)
    expected = z @ field.out.weight.T + field.out.bias
    assert torch.allclose(field(0.0, h, field.input_projection(x)), expected, atol=1e-14)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_parameter_count(depth):
    m, n, w = 2, 6, 9
    rnn = build_rnn("neural-ode", m, n, width=w, depth=depth)
    assert count_parameters(rnn) == (m * w + w) + n * w + (depth - 1) * (w * w + w) + (w * n + n)


@pytest.mark.parametrize("solver", ["euler", "implicit_midpoint"])
def test_gradcheck(solver):
    torch.manual_seed(1)
    rnn = build_rnn("neural-ode", 2, 3, solver=solver, step_size=0.3, width=4).double()
    names = [name for name, _ in rnn.named_parameters()]
    x = torch.randn(2, 3, 2, dtype=D, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in rnn.parameters()]

    def states(x, *weights):
        return torch.func.functional_call(rnn, dict(zip(names, weights)), (x,))[0]

    assert torch.autograd.gradcheck(states, (x, *weights))


def test_every_registered_solver_runs_it_and_imex_and_partitioned_say_what_they_need():
    torch.manual_seed(2)
    x = torch.randn(4, 6, 2)
    for name in solvers.available():
        refusal = ("linear part" if name in solvers.available("imex") else
                   "more than one block" if name in solvers.available("partitioned") else None)
        if refusal is not None:  # one block and no declared linear part: said, not silently run otherwise
            with pytest.raises(ValueError, match=refusal):
                build_rnn("neural-ode", 2, 8, solver=name, step_size=0.2)(x)
            continue
        rnn = build_rnn("neural-ode", 2, 8, solver=name, step_size=0.2)
        out, last = rnn(x)
        assert out.shape == (4, 6, 8) and torch.isfinite(out).all(), name


def test_it_learns_a_running_sum():
    """Regress the running mean of the inputs from the state (a linear readout): 40 Adam steps cut the loss
    by more than half."""
    torch.manual_seed(3)
    rnn = build_rnn("neural-ode", 1, 8, solver="midpoint", step_size=0.5)
    readout = torch.nn.Linear(8, 1)
    x = torch.randn(16, 8, 1)
    target = x.cumsum(1) / torch.arange(1, 9).view(1, -1, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *readout.parameters()], lr=0.03)
    losses = []
    for _ in range(40):
        loss = (readout(rnn(x)[0]) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kwargs, match", [(dict(width=0), "width must be a positive integer"),
                                           (dict(depth=0), "depth must be a positive integer"),
                                           (dict(out_scale=0.0), "out_scale must be a finite number > 0"),
                                           (dict(sigma_w=2.0), "unknown option.*sigma_w.*allowed: width, depth")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_rnn("neural-ode", 2, 4, **kwargs)
