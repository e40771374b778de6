"""odernn.stability with implicit Runge-Kutta methods: verdicts from the rational R(z) = P(z) / Q(z)."""
import json

import numpy as np
import pytest
import torch

import solvers
from experiments.__main__ import main
from odernn import build_rnn
from odernn.stability import check_stability

IMPLICIT_MIDPOINT_R = lambda z: (1 + z / 2) / (1 - z / 2)  # noqa: E731
BACKWARD_EULER_R = lambda z: 1 / (1 - z)  # noqa: E731


def _antisymmetric(solver, step_size, seed=1):
    torch.manual_seed(seed)
    return build_rnn("antisymmetric", 1, 12, solver=solver, step_size=step_size, gamma=0.0, sigma_w=4.0)


def test_amplification_is_the_rational_function_not_a_polynomial():
    z = np.array([-100.0, -2.0 + 3.0j, 0.5j, 2.5, 3.0 + 1.0j])
    be, mid = solvers.get_method("backward_euler"), solvers.get_method("implicit_midpoint")
    np.testing.assert_allclose(be.amplification(z), np.abs(BACKWARD_EULER_R(z)), rtol=1e-13)
    np.testing.assert_allclose(mid.amplification(z), np.abs(IMPLICIT_MIDPOINT_R(z)), rtol=1e-13)
    assert be.amplification(np.array([-100.0]))[0] < 0.01  # a truncated polynomial would be huge out there
    amp, outside = be.assess(np.array([1.0, -1e6, 0.5 + 0.1j, 0.3 + 4j]))
    assert np.isinf(amp[0]) and outside.tolist() == [True, False, True, False]  # the pole z = 1 is outside
    # (backward Euler's region is the outside of the disc |z - 1| < 1, so 0.3 + 4i is inside)
    amp, outside = mid.assess(np.array([5j, 1e-3 + 5j, -1e-3 + 5j]))
    assert outside.tolist() == [False, True, False]  # |R(iy)| = 1 exactly on the axis, > 1 right of it


def test_far_beyond_rk4s_limit_the_a_stable_methods_stay_inside():
    """gamma 0, sigma_w 4, eps 3: z = 3 * eig(W - W^T) on the imaginary axis up to |z| ~ 20, far past rk4's 2.83.

    With zero input the state stays at 0 (so Newton converges at once and J = W - W^T)."""
    x = torch.zeros(2, 6, 1)
    reports = {s: check_stability(_antisymmetric(s, 3.0), x)
               for s in ("rk4", "implicit_midpoint", "gauss_legendre4", "backward_euler")}
    z = reports["rk4"].z
    assert np.abs(z).max() > 3 * solvers.imaginary_axis_limit("rk4") and np.abs(z.real).max() < 1e-12
    assert not reports["rk4"].stable and reports["rk4"].max_amplification > 100
    for name in ("implicit_midpoint", "gauss_legendre4"):
        assert reports[name].stable, reports[name].summary()
        assert reports[name].max_amplification == pytest.approx(1.0, abs=1e-12)  # |R(iy)| = 1: no damping
        assert "inside" in reports[name].summary()
    np.testing.assert_allclose(reports["implicit_midpoint"].max_amplification,
                               np.abs(IMPLICIT_MIDPOINT_R(z)).max(), rtol=1e-12)
    be = reports["backward_euler"]
    assert be.stable and be.max_amplification == pytest.approx(np.abs(BACKWARD_EULER_R(z)).max(), rel=1e-12)
    assert be.max_amplification < 1 - 1e-3  # backward Euler damps every non-zero imaginary eigenvalue


@pytest.mark.parametrize("solver", ["implicit_midpoint", "gauss_legendre4"])
def test_along_a_driven_trajectory_implicit_methods_are_inside_where_rk4_is_not(solver):
    """With inputs the states move and J = diag(tanh') (W - W^T), still purely imaginary eigenvalues; at
    eps 1 they reach |z| ~ 6 (rk4: outside) and Newton converges for the implicit methods."""
    x = torch.randn(2, 8, 1, generator=torch.Generator().manual_seed(0))
    rk4, implicit = check_stability(_antisymmetric("rk4", 1.0), x), check_stability(_antisymmetric(solver, 1.0), x)
    assert not rk4.stable
    assert implicit.stable and implicit.kind == "implicit"
    assert implicit.max_amplification == pytest.approx(1.0, abs=1e-12)
    assert np.abs(implicit.z).max() > solvers.imaginary_axis_limit("rk4")
    outside = ~solvers.in_stability_region(solver, implicit.z)
    assert implicit.fraction_outside == outside.mean() == 0.0


def test_stability_command_draws_an_implicit_methods_region(tmp_path, capsys):
    out = tmp_path / "gl4.png"
    assert main(["stability", "--model", "antisymmetric", "--solver", "gauss_legendre4", "--gamma", "0.0",
                 "--sigma-w", "4", "--step-size", "1.0", "--hidden", "8", "--steps", "6", "--batch", "2",
                 "--methods", "rk4", "gauss_legendre4", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "gl4.json").read_text())
    assert report["stable"] is True and report["kind"] == "implicit" and report["z_abs_max"] > 2.83
    assert "gauss_legendre4 with step 1 is inside" in capsys.readouterr().out


def test_stability_command_reports_a_failed_newton_solve_in_one_line(tmp_path, capsys, monkeypatch):
    """When the model's forward fails (e.g. Newton's method does not converge at a large step), the command
    says so with exit status 2 instead of a traceback."""
    import experiments.stability_cli as cli

    def failing(rnn, x):
        raise solvers.NewtonError("step 1 of 4: Newton's method for the stages of 'backward_euler' did not converge")

    monkeypatch.setattr(cli, "check_stability", failing)
    status = main(["stability", "--model", "antisymmetric", "--solver", "backward_euler", "--step-size", "3.0",
                   "--hidden", "4", "--steps", "4", "--batch", "2", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert status == 2
    assert "the stability check runs the model" in err and "backward_euler failed at --step-size 3" in err
    assert "did not converge" in err and not (tmp_path / "x.png").exists()
