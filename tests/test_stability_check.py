"""odernn.stability: Jacobians of fields, the stability check and its verdicts."""
import warnings

import numpy as np
import pytest
import torch

import solvers
from odernn import build_rnn
from odernn.fields import AFRNNField, AntisymmetricField
from odernn.stability import (StabilityWarning, UnstableDiscretisationError, assert_stable, check_stability,
                              field_jacobian)


@pytest.mark.parametrize("field", [AntisymmetricField(2, 5, gamma=0.1), AFRNNField(2, [3, 4], gamma=0.05)])
def test_field_jacobian_matches_autograd_and_finite_differences(field):
    field = field.double()
    torch.manual_seed(0)
    h = torch.randn(3, field.state_size, dtype=torch.float64)
    u = field.input_projection(torch.randn(3, 2, dtype=torch.float64))
    jac = field_jacobian(field, h, u)
    assert jac.shape == (3, field.state_size, field.state_size)
    for b in range(3):
        ref = torch.autograd.functional.jacobian(lambda y: field(0.0, y.unsqueeze(0), u[b:b + 1]).squeeze(0), h[b])
        torch.testing.assert_close(jac[b], ref, rtol=1e-12, atol=1e-12)
    step = 1e-6
    cols = [(field(0.0, h[:1] + step * e, u[:1]) - field(0.0, h[:1] - step * e, u[:1])).squeeze(0) / (2 * step)
            for e in torch.eye(field.state_size, dtype=torch.float64)]
    torch.testing.assert_close(jac[0], torch.stack(cols, dim=1), rtol=1e-7, atol=1e-8)


def _x(T=30, B=3, m=1, seed=0):
    return torch.randn(B, T, m, generator=torch.Generator().manual_seed(seed))


def test_euler_without_diffusion_is_outside_its_region():
    """Prop. 2: purely imaginary eigenvalues (gamma = 0) give |1 + z| > 1 for every non-zero one."""
    torch.manual_seed(0)
    rnn = build_rnn("antisymmetric", 1, 16, solver="euler", step_size=0.1, gamma=0.0)
    report = check_stability(rnn, _x())
    assert not report.stable
    assert report.fraction_outside > 0.9
    assert abs(report.max_real_eig) < 1e-12  # the field itself is neutral (eq. 9)
    worst = report.z[report.worst_sample, report.worst_step]
    assert report.max_amplification == pytest.approx(np.abs(1 + worst).max(), rel=1e-12)
    assert report.max_amplification == pytest.approx(np.abs(1 + report.z).max(), rel=1e-12)
    assert "OUTSIDE" in report.summary() and f"{report.max_amplification:.6f}" in report.summary()


@pytest.mark.parametrize("solver", ["rk4", "euler", "midpoint", "rk3", "dopri5"])
def test_verdicts_match_solvers_region(solver):
    torch.manual_seed(1)
    rnn = build_rnn("antisymmetric", 1, 12, solver=solver, step_size=0.5, gamma=0.0, sigma_w=4.0)
    report = check_stability(rnn, _x(T=20))
    outside = ~solvers.in_stability_region(solver, report.z)
    assert report.fraction_outside == pytest.approx(outside.mean())
    assert report.stable == (not outside.any())
    modulus = np.abs(solvers.stability_function(solver)(report.z))
    assert report.max_amplification == pytest.approx(modulus.max(), rel=1e-12)


def test_rk4_is_inside_below_its_imaginary_axis_limit_and_outside_above():
    """With zero input the state stays at 0, so J = W - W^T exactly and z = dt * eig(W - W^T)."""
    limit = solvers.imaginary_axis_limit("rk4")  # 2 sqrt(2) ~ 2.83
    torch.manual_seed(2)
    rnn = build_rnn("antisymmetric", 1, 12, solver="rk4", step_size=1.0, gamma=0.0)
    lam = torch.linalg.eigvals(rnn.field.coupling_matrix().double()).abs().max().item()
    x = torch.zeros(2, 5, 1)
    for scaled, inside in ((2.5, True), (2.79, True), (2.9, False), (3.5, False)):
        rnn.step_size = scaled / lam
        report = check_stability(rnn, x)
        assert np.abs(report.z).max() == pytest.approx(scaled, rel=1e-9)
        assert report.stable == inside == (scaled < limit)


def test_partitioned_euler_amplification_is_one_step_of_the_solver():
    torch.manual_seed(3)
    J = torch.randn(5, 5, dtype=torch.float64)
    blocks, dt = (slice(0, 2), slice(2, 5)), 0.3
    step = solvers.partitioned_euler_step(lambda t, y: y @ J.T, 0.0, torch.eye(5, dtype=torch.float64), dt, (2, 3))
    M = step.T  # row i of eye -> column i of M
    expected = torch.linalg.eigvals(M)
    got = solvers.get_method("partitioned_euler").one_step_eigenvalues(J, dt, blocks)
    assert np.allclose(np.sort_complex(got.numpy()), np.sort_complex(expected.numpy()), atol=1e-12)


def test_partitioned_euler_report_uses_its_amplification_matrix():
    torch.manual_seed(4)
    rnn = build_rnn("afrnn", 1, 6, solver="partitioned_euler", step_size=0.1, gamma=0.01)
    report = check_stability(rnn, _x(T=15))
    assert report.kind == "partitioned" and "amplification matrix" in report.criterion
    assert report.max_amplification > 0 and np.isfinite(report.max_amplification)
    assert report.z.shape == report.mu.shape == (3, 15, 12)
    assert report.max_amplification == pytest.approx(np.abs(report.mu).max())
    assert report.fraction_outside == pytest.approx((np.abs(report.mu) > 1 + 1e-12).mean())


def test_assert_stable_warns_or_raises_only_when_outside():
    torch.manual_seed(5)
    bad = build_rnn("antisymmetric", 1, 8, solver="euler", step_size=0.1, gamma=0.0)
    with pytest.warns(StabilityWarning, match="OUTSIDE"):
        assert_stable(bad, _x(T=10))
    with pytest.raises(UnstableDiscretisationError, match="euler"):
        assert_stable(bad, _x(T=10), action="raise")
    good = build_rnn("antisymmetric", 1, 8, solver="euler", step_size=0.1, gamma=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert assert_stable(good, _x(T=10), action="raise").stable
    with pytest.raises(ValueError, match="action"):
        assert_stable(good, _x(T=10), action="ignore")


def test_models_without_a_field_are_refused():
    with pytest.raises(ValueError, match="ODERNN"):
        check_stability(build_rnn("lstm", 1, 4), _x(T=5))
