"""The fused implicit scan (``odernn.fused_implicit``, ``FusedImplicitScan``): every fixed-step implicit tableau on
a tanh field equal to the generic stepped scan (values and every gradient, float64, to the stage iterations'
tolerance), with substeps and gradients on the returned states; the hand-off to the stepped scan's Newton
method where the functional iteration does not contract; the dense adjoint solve against the iteration;
gradcheck."""
import pytest
import torch

import solvers
from odernn import ODERNN, AntisymmetricField, GatedAntisymmetricField, build_rnn
from odernn.fused_implicit import _dense_adjoint, _iterate, tanh_implicit_scan
from odernn.integrators import FusedImplicitScan, SteppedScan

F64 = torch.float64


def outputs_and_grads(rnn, x, weights):
    x = x.clone().requires_grad_(True)
    out, last = rnn(x)
    loss = (out * weights).sum() + last.pow(2).sum()
    return [out.detach(), last.detach(), *torch.autograd.grad(loss, [x, *rnn.parameters()])]


@pytest.mark.parametrize("solver", solvers.available("implicit"))
@pytest.mark.parametrize("substeps", [1, 2])
def test_equal_to_the_stepped_scan_in_float64(solver, substeps):
    torch.manual_seed(0)
    options = dict(step_size=0.3, gamma=0.1, substeps=substeps)
    fused = build_rnn("antisymmetric", 3, 8, solver=solver, **options).double()
    generic = build_rnn("antisymmetric", 3, 8, solver=solver, fast_path=False, **options).double()
    generic.load_state_dict(fused.state_dict())
    assert isinstance(fused.integrator, FusedImplicitScan) and isinstance(generic.integrator, SteppedScan)
    x, weights = torch.randn(5, 12, 3, dtype=F64), torch.randn(5, 12, 8, dtype=F64)
    a, b = outputs_and_grads(fused, x, weights), outputs_and_grads(generic, x, weights)
    for ta, tb in zip(a, b):  # both stop their iterations at tol 1e-10 (1 + max|K|)
        torch.testing.assert_close(ta, tb, rtol=1e-9, atol=1e-9)
    assert fused.last_stats.n_functional == generic.last_stats.n_functional > 0
    assert fused.last_stats.n_newton == fused.last_stats.n_jacobians == 0


def test_where_the_iteration_does_not_contract_newton_takes_over():
    """eps 3, sigma_w 8: the functional iteration diverges; the sequence goes to the stepped scan, whose Newton
    method (with its continuation) solves it: the same states as the generic scan, Newton iterations counted."""
    torch.manual_seed(0)
    field = AntisymmetricField(1, 16, gamma=0.0, sigma_w=8.0)
    x = torch.randn(2, 6, 1)
    fused, generic = ODERNN(field, "implicit_midpoint", step_size=3.0), ODERNN(field, "implicit_midpoint",
                                                                                step_size=3.0, fast_path=False)
    with torch.no_grad():
        (out, last), (ref, ref_last) = fused(x), generic(x)
    assert isinstance(fused.integrator, FusedImplicitScan) and fused.last_stats.n_newton > 0
    assert torch.equal(out, ref) and torch.equal(last, ref_last)


def test_the_dense_adjoint_solves_what_the_iteration_converges_to():
    torch.manual_seed(2)
    batch, stages, n = 3, 2, 5
    a = 0.1 * torch.tensor(solvers.get_tableau("gauss_legendre4").A, dtype=F64)
    slope = 1.0 - torch.rand(batch, stages, n, dtype=F64) ** 2
    matrix, direct = torch.randn(n, n, dtype=F64), torch.randn(batch, stages, n, dtype=F64)

    def adjoint_map(v):
        w = ((slope * v).reshape(-1, n) @ matrix).view(batch, stages, n)
        return torch.einsum("il,bin->bln", a, w) + direct

    iterated, _ = _iterate(adjoint_map, direct, lambda _: 1e-14)
    torch.testing.assert_close(_dense_adjoint(a, slope, matrix, direct), iterated, rtol=0, atol=1e-12)


def test_gradcheck():
    torch.manual_seed(3)
    tensors = [0.5 * torch.randn(*shape, dtype=F64).requires_grad_() for shape in
               [(2, 3), (4, 2, 2), (3, 2), (3,), (3, 3)]]
    tableau = solvers.get_tableau("gauss_legendre4")
    assert torch.autograd.gradcheck(lambda *t: tanh_implicit_scan(*t, 0.2, tableau, 2, 1e-13, []), tensors)


def test_gated_fields_and_adaptive_pairs_take_their_own_integrators():
    assert not isinstance(ODERNN(GatedAntisymmetricField(1, 4), "implicit_midpoint").integrator, FusedImplicitScan)
    assert not isinstance(ODERNN(AntisymmetricField(1, 4), "kvaerno4").integrator, FusedImplicitScan)


def test_float32_at_a_training_batch_equals_the_stepped_scan_to_rounding():
    """B 128, n 32, eps 0.1, N(0, 1) inputs, float32: the same states and gradients as the stepped scan, to the
    stage iterations' float32 tolerance (10 eps)."""
    torch.manual_seed(4)
    fused = build_rnn("antisymmetric", 1, 32, solver="gauss_legendre4", step_size=0.1, gamma=0.01)
    generic = build_rnn("antisymmetric", 1, 32, solver="gauss_legendre4", step_size=0.1, gamma=0.01,
                        fast_path=False)
    generic.load_state_dict(fused.state_dict())
    x, weights = torch.randn(128, 20, 1), torch.randn(128, 20, 32)
    a, b = outputs_and_grads(fused, x, weights), outputs_and_grads(generic, x, weights)
    assert isinstance(fused.integrator, FusedImplicitScan) and fused.last_stats.n_newton == 0
    for ta, tb in zip(a, b):
        assert torch.isfinite(ta).all()
        assert (ta - tb).abs().max() <= 1e-4 * tb.abs().max().clamp_min(1.0)
