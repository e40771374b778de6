"""UnICORNN as a field: partitioned Euler over its blocks (z_1, y_1, ..., z_L, y_L) is the authors' stacked
update, as their recurrence runs layer by layer (experiments.authors_cells); the psMNIST parameter count is the paper's;
gradcheck holds; other solvers run it."""
from __future__ import annotations

import pytest
import torch

from experiments import authors_cells
from odernn import ODERNN, SequenceClassifier, build_rnn, count_parameters
from odernn.fields import UnICORNNField

pytestmark = pytest.mark.usefixtures("float64")


def test_partitioned_euler_is_the_authors_stacked_update():
    torch.manual_seed(0)
    field = UnICORNNField(2, [4, 3, 5], alpha=3.0)
    x = torch.randn(3, 25, 2)
    outputs, _ = ODERNN(field, "partitioned_euler", step_size=0.19)(x)
    assert torch.allclose(outputs[..., field.blocks[-1]], authors_cells.unicornn(x, field, 0.19), atol=1e-12)


def test_parameter_count_of_the_psmnist_model():
    model = SequenceClassifier(build_rnn("unicornn", 1, 256, solver="partitioned_euler", step_size=0.19,
                                         alpha=30.65), 10)
    assert count_parameters(model) == 136_202 and len(model.rnn.field.layer_sizes) == 3


@pytest.mark.parametrize("solver", ["partitioned_euler", "rk4", "implicit_midpoint"])
def test_gradcheck_under_several_solvers(solver):
    torch.manual_seed(1)
    rnn = build_rnn("unicornn", 2, [2, 3], solver=solver, step_size=0.1, alpha=2.0)
    x = torch.randn(2, 4, 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x)[1], (x,))
