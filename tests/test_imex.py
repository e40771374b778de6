"""IMEX Runge-Kutta (solvers/methods/imex_rk.py): orders from log-log slopes against closed forms, the split
stability function in closed form, the coRNN paper's IMEX update (eq. 3) reproduced by (CoRNNField,
imex_euler), Lipschitz RNN under IMEX against scipy, gradcheck, and clear refusals."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import solvers
from odernn import ODERNN, build_rnn
from odernn.fields import CoRNNField, LipschitzField
from odernn.stability import check_stability
from solvers.methods.imex_rk import one_step_matrix

F64 = torch.float64


def stiff_forced(t, y):
    """y' = -50 y + cos(t) y_other coupling: a stiff diagonal part and a mild nonlinear rest."""
    return -50.0 * y + torch.sin(y.flip(-1)) + torch.cos(t)


stiff_forced.linear_part = torch.tensor([-50.0, -50.0], dtype=F64)


@pytest.mark.parametrize("method,order", [("imex_euler", 1), ("ars222", 2)])
def test_order_from_log_log_slope_against_scipy(method, order):
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    ref = solve_ivp(lambda t, y: -50.0 * y + np.sin(y[::-1]) + np.cos(t), (0.0, 1.0), y0.numpy(),
                    method="Radau", rtol=1e-13, atol=1e-14).y[:, -1]
    steps = [0.02, 0.01, 0.005, 0.0025]
    errors = [float((solvers.odeint(stiff_forced, y0, torch.tensor([0.0, 1.0], dtype=F64), method=method,
                                    step_size=h)[-1] - torch.from_numpy(ref)).abs().max()) for h in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.2, (errors, slope)


@pytest.mark.parametrize("method", ["imex_euler", "ars222"])
def test_stable_at_steps_where_explicit_euler_blows_up(method):
    """dt = 0.1 on the stiff part -50: explicit Euler's factor is |1 - 5| = 4, the IMEX step stays bounded."""
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    t = torch.linspace(0.0, 5.0, 51, dtype=F64)
    assert solvers.odeint(stiff_forced, y0, t, method=method, step_size=0.1).abs().max() < 2.0
    with pytest.raises(FloatingPointError):
        solvers.odeint(lambda t, y: -50.0 * y * (1 + 0 * t), y0, torch.linspace(0, 100, 11, dtype=F64),
                       method="euler", step_size=0.1)


@pytest.mark.parametrize("method", ["imex_euler", "ars222"])
def test_split_stability_function_in_closed_form(method):
    """For scalar J = lambda_E + lambda_I with L = lambda_I, the one-step matrix is R(z_E, z_I) =
    1 + (z_E b_E + z_I b_I)^T (I - z_E A_E - z_I A_I)^{-1} 1."""
    pair = solvers.get_method(method).pair
    a_e, b_e = np.array(pair.explicit.A), np.array(pair.explicit.b)
    a_i, b_i = np.array(pair.implicit.A), np.array(pair.implicit.b)
    rng = np.random.default_rng(0)
    for _ in range(20):
        z_e, z_i = complex(*rng.normal(size=2)), complex(-abs(rng.normal()) * 5, rng.normal())
        closed = 1 + (z_e * b_e + z_i * b_i) @ np.linalg.solve(np.eye(len(b_e)) - z_e * a_e - z_i * a_i,
                                                                np.ones(len(b_e)))
        dt = 0.3
        jac = torch.tensor([[(z_e + z_i) / dt]], dtype=torch.complex128)
        lin = torch.tensor([z_i / dt], dtype=torch.complex128)
        assert abs(complex(one_step_matrix(jac, lin, dt, pair)[0, 0]) - closed) < 1e-12


def test_cornn_paper_imex_update_reproduced():
    """The coRNN paper's eq. 3: z_n = z + dt (tanh(W y + 𝒲 z + V u + b) - gamma y - epsilon z_n), y_n = y +
    dt z_n, transcribed directly, against ODERNN(CoRNNField, "imex_euler"): random weights and inputs."""
    torch.manual_seed(3)
    n, m, dt, gamma, epsilon = 6, 3, 0.042, 2.7, 4.7
    field = CoRNNField(m, n, gamma=gamma, epsilon=epsilon)
    x = torch.randn(4, 30, m)
    outputs = ODERNN(field, "imex_euler", step_size=dt)(x)[0].detach()
    weight, bias = field.linear.weight.detach(), field.linear.bias.detach()
    z, y = torch.zeros(4, n), torch.zeros(4, n)
    expected = []
    for k in range(30):
        pre = torch.cat([x[:, k], z, y], -1) @ weight.T + bias
        z = (z + dt * (torch.tanh(pre) - gamma * y)) / (1 + dt * epsilon)
        y = y + dt * z
        expected.append(torch.cat([z, y], -1))
    assert (outputs - torch.stack(expected, 1)).abs().max() < 1e-6


def test_lipschitz_rnn_under_ars222_agrees_with_scipy():
    torch.manual_seed(4)
    field = LipschitzField(2, 5, beta=0.75, gamma=0.5).double()
    x = torch.randn(1, 10, 2, dtype=F64)
    outputs = ODERNN(field, "ars222", step_size=0.1, substeps=20)(x)[0].detach()[0].numpy()
    w, a = (mat.detach().numpy() for mat in field.matrices())
    u = field.input_projection(x)[0].detach().numpy()

    def f(t, h):
        k = min(int(t / 0.1), 9)
        return field.alpha * (h @ a) + np.tanh(h @ w + u[k])

    ref = solve_ivp(f, (0.0, 1.0), np.zeros(5), t_eval=0.1 * np.arange(1, 11), rtol=1e-12, atol=1e-13,
                    max_step=0.005, method="DOP853").y.T
    assert np.abs(outputs - ref).max() < 1e-5


@pytest.mark.parametrize("method", ["imex_euler", "ars222"])
def test_gradcheck(method):
    torch.manual_seed(5)
    rnn = build_rnn("cornn", 2, 3, solver=method, step_size=0.1, gamma=1.0, epsilon=2.0).double()
    x = torch.randn(2, 4, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x)[1], (x,))


def test_stability_check_uses_the_split():
    """coRNN at the sMNIST settings with the damping implicit: every eigenvalue of the IMEX one-step matrix is
    inside the unit disc; the verdict's criterion names the split. Lipschitz RNN's linear part is a function of
    its parameters (it requires grad): the check takes its value."""
    torch.manual_seed(6)
    rnn = build_rnn("cornn", 1, 8, solver="imex_euler", step_size=0.042, gamma=2.7, epsilon=4.7)
    report = check_stability(rnn, torch.randn(2, 20, 1))
    assert report.max_amplification <= 1.0 and report.fraction_outside == 0.0
    assert "IMEX" in report.criterion
    lipschitz = build_rnn("lipschitz", 1, 8, solver="ars222", step_size=0.1, gamma=0.5, beta=0.75)
    assert check_stability(lipschitz, torch.randn(2, 10, 1)).max_amplification > 0


def test_a_field_without_a_linear_part_is_refused():
    with pytest.raises(ValueError, match="IMEX methods need f.linear_part"):
        solvers.odeint(lambda t, y: -y, torch.ones(2), torch.tensor([0.0, 1.0]), method="imex_euler",
                       step_size=0.1)
    with pytest.raises(ValueError, match="IMEX methods need f.linear_part"):
        build_rnn("antisymmetric", 1, 4, solver="imex_euler")(torch.randn(1, 3, 1))
    assert solvers.available("imex") == ["imex_euler", "ars222"]
    assert math.isclose(solvers.get_method("ars222").order, 2)


def test_step_maps_of_the_dynamics_experiments_run_imex():
    """The dynamics experiments' step maps hand the field's linear part to the IMEX step: their rollout equals
    the model's states."""
    from experiments.dynamics.step_maps import rollout, step_map

    torch.manual_seed(7)
    rnn = ODERNN(CoRNNField(1, 4, gamma=1.0, epsilon=2.0), "ars222", step_size=0.1)
    x = torch.randn(1, 6, 1)
    assert torch.allclose(rollout(step_map(rnn), x[0])[1:], rnn(x)[0][0].detach(), atol=1e-6)
