"""coRNN as a field: under partitioned Euler over its blocks (z, y) it is the authors' update (their cell's
formulas, transcribed in experiments.authors_cells); under other solvers it converges to the ODE (scipy); its
parameter count is the paper's; gradients pass gradcheck."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from experiments import authors_cells
from odernn import ODERNN, SequenceClassifier, build_rnn, count_parameters
from odernn.fields import CoRNNField

pytestmark = pytest.mark.usefixtures("float64")


def test_partitioned_euler_is_the_authors_update():
    torch.manual_seed(0)
    field = CoRNNField(3, 6, gamma=2.7, epsilon=4.7)
    rnn = ODERNN(field, "partitioned_euler", step_size=0.042)
    x = torch.randn(4, 25, 3)
    outputs, last = rnn(x)
    expected = authors_cells.cornn(x, field, 0.042)
    assert torch.allclose(outputs[..., 6:], expected, atol=1e-12)
    assert rnn.readout_slice == slice(6, 12)  # the readout reads the positions y


def test_parameter_count_of_the_smnist_model():
    model = SequenceClassifier(build_rnn("cornn", 1, 256, solver="partitioned_euler", step_size=0.042, gamma=2.7,
                                         epsilon=4.7), 10)
    assert count_parameters(model) == 134_154


@pytest.mark.parametrize("solver,step,tol", [("rk4", 0.01, 1e-8), ("implicit_midpoint", 0.005, 1e-4),
                                             ("dopri5", 0.1, 1e-5)])
def test_other_solvers_integrate_the_same_ode(solver, step, tol):
    """A held input over 20 samples: the ODE y'' = tanh(W y + 𝒲 y' + V x + b) - gamma y - epsilon y' solved by
    scipy (RK45, tight) agrees with the field under each solver."""
    torch.manual_seed(1)
    field = CoRNNField(2, 4, gamma=1.5, epsilon=0.3)
    x = torch.randn(1, 20, 2)
    rnn = ODERNN(field, solver, step_size=0.1, substeps=round(0.1 / step) if solver != "dopri5" else 1,
                 rtol=1e-10, atol=1e-12)
    outputs = rnn(x)[0].detach()[0]
    u = field.input_projection(x)[0].detach().numpy()
    w_z, w_y = (m.detach().numpy() for m in field.matrices())

    def f(t, h):
        z, y = h[:4], h[4:]
        k = min(int(t / 0.1), 19)
        return np.concatenate([np.tanh(u[k] + w_z @ z + w_y @ y) - 1.5 * y - 0.3 * z, z])

    times = 0.1 * np.arange(1, 21)
    ref = solve_ivp(f, (0.0, 2.0), np.zeros(8), t_eval=times, rtol=1e-12, atol=1e-14,
                    max_step=0.01, method="DOP853").y.T
    assert np.abs(outputs.numpy() - ref).max() < tol


def test_gradcheck_through_the_authors_scheme():
    torch.manual_seed(2)
    field = CoRNNField(2, 3, gamma=2.0, epsilon=1.0)
    rnn = ODERNN(field, "partitioned_euler", step_size=0.1)
    x = torch.randn(2, 5, 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x)[1], (x,))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="epsilon \\(damping\\) must be a finite number >= 0"):
        CoRNNField(1, 4, epsilon=-1.0)
    with pytest.raises(ValueError, match="unknown option"):
        build_rnn("cornn", 1, 4, sigma_w=2.0)
