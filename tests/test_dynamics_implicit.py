"""The dynamics experiments under the implicit Runge-Kutta methods: radius table, Fig. 1, step maps and
their Jacobians by the implicit function theorem."""
import json

import numpy as np
import pytest
import torch

from experiments.__main__ import main
from experiments.dynamics import afrnn_figs, planar
from experiments.dynamics.radius_table import METHODS, prediction_and_verdict, radius_table
from experiments.dynamics.step_maps import accumulated_jacobians, rollout, step_jacobians, step_map

T, EPS = 50, 0.1
NEAR = planar.starts(((0.01, 0.0),))
IMPLICIT = ("backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4")


def ratio(name, method, h0, steps=T):
    return planar.radius_ratio(planar.feedback_trajectory(planar.matrix(name), h0, steps, EPS, method))


def test_radius_table_lists_the_implicit_methods_by_default():
    assert set(IMPLICIT) <= set(METHODS)
    with pytest.raises(ValueError, match="unknown method 'gauss_legendre2'.*known methods"):
        radius_table(T, EPS, methods=("rk4", "gauss_legendre2"))


@pytest.mark.parametrize("method", ["implicit_midpoint", "gauss_legendre4", "trapezoidal"])
def test_w0_under_the_a_stable_symmetric_methods_keeps_radius_one_near_the_origin(method):
    """|R(0.2i)| = 1 exactly (implicit midpoint: |1 + 0.1i| / |1 - 0.1i|): no growth, no decay, where Euler
    grows 2.66x and midpoint 1.01x."""
    assert ratio("W0", method, NEAR).item() == pytest.approx(1.0, abs=5e-5)
    predicted, inside = prediction_and_verdict(planar.matrix("W0"), EPS, method, T)
    assert inside and predicted == pytest.approx(1.0, abs=1e-12)


def test_backward_euler_damps_w0_at_its_linear_rate():
    """R(z) = 1 / (1 - z): |1 / (1 - 0.2i)|^50 = 0.375, the rational function (not a polynomial) predicts it."""
    expected = abs(1 / (1 - 0.2j)) ** T
    assert ratio("W0", "backward_euler", NEAR).item() == pytest.approx(expected, rel=1e-3)
    predicted, inside = prediction_and_verdict(planar.matrix("W0"), EPS, "backward_euler", T)
    assert inside and predicted == pytest.approx(expected, rel=1e-12)


def test_from_the_papers_starts_the_converged_methods_agree_and_conserve_the_odes_invariant():
    """tanh(W0 h) = (tanh(-2 h2), tanh(2 h1)) conserves H = (log cosh 2 h1 + log cosh 2 h2) / 2, not the
    radius: every converged method gives the same r_T / r_0 != 1, and Gauss-Legendre 4 keeps H."""
    h0 = planar.starts()
    trajs = {m: planar.feedback_trajectory(planar.matrix("W0"), h0, T, EPS, m)
             for m in ("rk4", "implicit_midpoint", "gauss_legendre4")}
    ratios = {m: planar.radius_ratio(tr) for m, tr in trajs.items()}
    for m in ("implicit_midpoint", "gauss_legendre4"):
        torch.testing.assert_close(ratios[m], ratios["rk4"], rtol=2e-3, atol=0)
    assert (ratios["gauss_legendre4"] - 1).abs().max() > 0.04  # 0.990, 1.050, 1.082
    H = 0.5 * torch.log(torch.cosh(2 * trajs["gauss_legendre4"])).sum(-1)
    assert ((H - H[0]).abs() / H[0]).max() < 1e-5


def test_fig1_under_implicit_midpoint(tmp_path):
    assert main(["dynamics", "--only", "fig1", "--solver", "implicit_midpoint", "--out-dir", str(tmp_path),
                 "--no-progress"]) == 0
    numbers = json.loads((tmp_path / "antisymmetric_fig1.json").read_text())
    panels = {p["name"].split(")")[0] + ")": p for p in numbers["panels"]}
    assert numbers["solver"] == "implicit_midpoint"
    assert np.allclose(panels["(g)"]["radius_ratio"], [0.990, 1.050, 1.083], atol=2e-3)  # W0: no outward spiral
    assert max(panels["(h)"]["radius_ratio"]) < 0.65  # Wdiff: the diffusion wins, as under rk4


@pytest.mark.parametrize("name,solver", [("afrnn", "implicit_midpoint"), ("frnn", "gauss_legendre4"),
                                         ("arnn", "backward_euler")])
def test_implicit_step_map_reproduces_the_model_and_its_jacobians_match_finite_differences(name, solver):
    model = afrnn_figs.build(name, 3, solver, 0.1, 0.01, seed=0)
    x = torch.rand(8, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sm = step_map(model)
    states = rollout(sm, x)
    with torch.no_grad():
        out, _ = model(x.unsqueeze(0))
    torch.testing.assert_close(states[1:], out[0], rtol=1e-9, atol=1e-9)
    jacs = step_jacobians(sm, states, x)
    assert jacs.shape == (8, sm.state_size, sm.state_size)
    u, h = sm.inputs(x), 1e-6
    for k in (0, 7):
        fd = torch.stack([(sm.step(states[k] + h * e, u[k]) - sm.step(states[k] - h * e, u[k])) / (2 * h)
                          for e in torch.eye(sm.state_size, dtype=torch.float64)], dim=1)
        torch.testing.assert_close(jacs[k], fd, rtol=1e-7, atol=1e-8)
    acc = accumulated_jacobians(jacs, slice(0, sm.state_size))
    torch.testing.assert_close(acc[1], jacs[7] @ jacs[6])


def test_fig4_runs_under_an_implicit_method(tmp_path):
    assert main(["dynamics", "--solver", "gauss_legendre4", "--only", "afrnn_jacobian", "--afrnn-steps", "20",
                 "--hidden", "4", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    numbers = json.loads((tmp_path / "afrnn_jacobian.json").read_text())
    assert numbers["solver"] == "gauss_legendre4" and len(numbers["mean_abs_eig"]["AFRNN"]) == 20
    assert 0.9 < numbers["mean_abs_eig"]["ARNN"][0] <= 1.0
