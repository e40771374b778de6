"""LEM and Lipschitz RNN as fields: each paper's own update (the authors' formulas, transcribed in experiments.authors_cells) is
the field under the authors' scheme (partitioned Euler over LEM's blocks (z, y); forward Euler for Lipschitz
RNN); the parameter counts are the papers'; gradcheck holds; other solvers run them."""
from __future__ import annotations

import pytest
import torch

from experiments import authors_cells
from odernn import ODERNN, SequenceClassifier, build_rnn, count_parameters
from odernn.fields import LEMField, LipschitzField

pytestmark = pytest.mark.usefixtures("float64")


def test_lem_under_partitioned_euler_is_the_authors_update():
    torch.manual_seed(0)
    field = LEMField(3, 5)
    x = torch.randn(4, 30, 3)
    outputs, _ = ODERNN(field, "partitioned_euler", step_size=0.21)(x)
    assert torch.allclose(outputs[..., 5:], authors_cells.lem(x, field, 0.21), atol=1e-12)


def test_lipschitz_under_euler_is_the_authors_update():
    torch.manual_seed(1)
    field = LipschitzField(3, 6, beta=0.75, gamma=0.001, alpha=1.3, init_std=8.0)
    x = torch.randn(4, 30, 3)
    outputs, _ = ODERNN(field, "euler", step_size=0.03)(x)
    assert torch.allclose(outputs, authors_cells.lipschitz(x, field, 0.03), atol=1e-12)


def test_parameter_counts_of_the_smnist_models():
    lem = SequenceClassifier(build_rnn("lem", 1, 128, solver="partitioned_euler", step_size=0.21), 10)
    lip = SequenceClassifier(build_rnn("lipschitz", 1, 128, step_size=0.03, gamma=0.001, beta=0.75), 10)
    assert (count_parameters(lem), count_parameters(lip)) == (68_362, 34_314)


@pytest.mark.parametrize("name,solver", [("lem", "partitioned_euler"), ("lem", "rk4"), ("lipschitz", "euler"),
                                         ("lipschitz", "implicit_midpoint"), ("lem", "dopri5")])
def test_gradcheck_and_every_kind_of_solver(name, solver):
    torch.manual_seed(2)
    rnn = build_rnn(name, 2, 3, solver=solver, step_size=0.1, **({"gamma": 0.01} if name == "lipschitz" else {}))
    x = torch.randn(2, 4, 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x)[1], (x,))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="beta must lie in \\[0, 1\\]"):
        LipschitzField(1, 4, beta=1.5)
    with pytest.raises(ValueError, match="unknown option"):
        build_rnn("lem", 1, 4, epsilon=0.5)
