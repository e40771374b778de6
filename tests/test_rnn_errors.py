"""Bad input to ODERNN gets a ValueError naming the problem."""
from __future__ import annotations

import math

import pytest
import torch

from odernn import ODERNN, AFRNNField, AntisymmetricField


@pytest.fixture
def model():
    return ODERNN(AntisymmetricField(3, 4))


@pytest.mark.parametrize("x,h0,match", [
    (torch.randn(2, 5), None, "3-D tensor"),
    (torch.randn(2, 5, 3, 1), None, "3-D tensor"),
    (torch.randn(2, 5, 2), None, "2 features.*input_size=3"),
    (torch.randn(2, 0, 3), None, "empty sequence"),
    (torch.tensor([[[0.0, math.nan, 1.0]]]), None, "NaN or Inf"),
    (torch.tensor([[[0.0, math.inf, 1.0]]]), None, "NaN or Inf"),
    (torch.randn(2, 5, 3), torch.zeros(2, 5), r"h0 must have shape.*\(2, 4\)"),
    (torch.randn(2, 5, 3), torch.zeros(4), r"h0 must have shape"),
    ([[1.0, 2.0, 3.0]], None, "3-D tensor"),
])
def test_bad_sequences(model, x, h0, match):
    with pytest.raises(ValueError, match=match):
        model(x, h0)


@pytest.mark.parametrize("kwargs,match", [
    ({"step_size": 0.0}, "step_size must be a positive finite"),
    ({"step_size": -0.1}, "step_size must be a positive finite"),
    ({"step_size": math.nan}, "step_size must be a positive finite"),
    ({"step_size": math.inf}, "step_size must be a positive finite"),
    ({"substeps": 0}, "substeps must be an integer >= 1"),
    ({"substeps": 1.5}, "substeps must be an integer >= 1"),
    ({"solver": "rk5"}, "unknown solver 'rk5'; known solvers: euler, .*dopri5"),
    ({"solver": "partitioned_euler"}, "more than one block"),
    ({"interpolation": "cubic"}, "unknown interpolation 'cubic'; known: hold, linear"),
    ({"solver": "rk4", "adjoint": True}, "adjoint=True is available for the adaptive solvers"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ODERNN(AntisymmetricField(3, 4), **kwargs)


def test_bad_solver_switch_keeps_the_old_solver(model):
    with pytest.raises(ValueError, match="unknown solver"):
        model.solver = "nope"
    assert model.solver == "euler"


@pytest.mark.parametrize("make,match", [
    (lambda: AntisymmetricField(0, 4), "input_size must be a positive integer"),
    (lambda: AntisymmetricField(2, 4, parameterization="lower"), "unknown parameterization 'lower'; known: triangular, full"),
    (lambda: AntisymmetricField(2, 4, init="xavier"), "unknown init 'xavier'; known: paper, afrnn"),
    (lambda: AntisymmetricField(2, 4, gamma=-1.0), "gamma"),
    (lambda: AFRNNField(2, [4, 0]), "layer sizes"),
    (lambda: AFRNNField(2, [4, 4], coupling="ring"), "unknown coupling 'ring'; known: consecutive, dense"),
    (lambda: ODERNN(torch.nn.Linear(2, 2)), "VectorField"),
])
def test_bad_fields(make, match):
    with pytest.raises(ValueError, match=match):
        make()
