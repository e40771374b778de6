"""Fused scans of odernn.fused against the generic solvers: every explicit fixed tableau, plain and gated
activation, and Gauss-Seidel Euler over blocks; values and gradients to rounding, gradcheck, pooled buffers."""
from __future__ import annotations

import pytest
import torch

import solvers
from odernn.fused import tanh_gauss_seidel_scan, tanh_rk_scan

pytestmark = pytest.mark.usefixtures("float64")

FIXED = solvers.available("fixed")
LOSSES = ["last", "sequence", "both"]


def act(s, u, gated):
    if not gated:
        return torch.tanh(s + u)
    z, h = u.chunk(2, dim=-1)
    return torch.sigmoid(s + z) * torch.tanh(s + h)


def rk_reference(h0, x, weight, bias, matrix, dt, tableau, substeps, gated=False):
    """The generic scan: solvers.rk_step with f(t, y) = act(y A^T, u_k), u_k held over its substeps."""
    states, y = [], h0
    for x_k in x.unbind(0):
        u = x_k @ weight.T + bias
        for _ in range(substeps):
            y = solvers.rk_step(lambda t, z, u=u: act(z @ matrix.T, u, gated), 0.0, y, dt, tableau)
        states.append(y)
    return torch.stack(states), y


def gauss_seidel_reference(h0, x, weight, bias, matrix, dt, sizes, substeps):
    states, y = [], h0
    for x_k in x.unbind(0):
        u = x_k @ weight.T + bias
        for _ in range(substeps):
            y = solvers.partitioned_euler_step(lambda t, z, u=u: torch.tanh(z @ matrix.T + u), 0.0, y, dt, sizes)
        states.append(y)
    return torch.stack(states), y


def make_inputs(n, m=2, batch=3, length=5, rows=None, seed=0, scale=0.7):
    """h0, x, V, b, A as leaves requiring grad (small entries so no stage saturates)."""
    gen = torch.Generator().manual_seed(seed)
    rows = n if rows is None else rows
    shapes = [(batch, n), (length, batch, m), (rows, m), (rows,), (n, n)]
    return [(scale * torch.randn(*shape, generator=gen)).requires_grad_() for shape in shapes]


def loss_of(states, last, kind):
    weights = torch.linspace(-1.0, 2.0, states.numel()).view(states.shape)
    sequence = (states.pow(3) + weights * states).sum()
    return {"last": last.pow(2).sum(), "sequence": sequence, "both": sequence + last.pow(2).sum()}[kind]


def assert_same_values_and_gradients(fused, reference, inputs, kind):
    results = []
    for states, last in (fused, reference):
        results.append([states, last, *torch.autograd.grad(loss_of(states, last, kind), inputs)])
    for name, a, b in zip(["states", "h_T", "h0", "x", "weight", "bias", "matrix"], *results):
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, atol=1e-10, rtol=0), (name, float((a - b).abs().max()))


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("gated", [False, True], ids=["tanh", "gated"])
@pytest.mark.parametrize("substeps", [1, 2])
@pytest.mark.parametrize("method", FIXED)
def test_rk_scan_equals_rk_step_scan(method, substeps, gated, kind):
    n = 4
    inputs = make_inputs(n, rows=2 * n if gated else n, seed=FIXED.index(method))
    tableau = solvers.get_tableau(method)
    fused = tanh_rk_scan(*inputs, 0.3, tableau, substeps, gated=gated)
    assert_same_values_and_gradients(fused, rk_reference(*inputs, 0.3, tableau, substeps, gated), inputs, kind)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("substeps", [1, 2])
@pytest.mark.parametrize("sizes", [(6,), (3, 3), (2, 3, 1), (1, 1, 1, 1, 1, 1)])
def test_gauss_seidel_scan_equals_partitioned_euler_scan(sizes, substeps, kind):
    inputs = make_inputs(6, seed=len(sizes))
    fused = tanh_gauss_seidel_scan(*inputs, 0.4, sizes, substeps)
    reference = gauss_seidel_reference(*inputs, 0.4, sizes, substeps)
    assert_same_values_and_gradients(fused, reference, inputs, kind)


def test_one_block_gauss_seidel_is_euler():
    inputs = make_inputs(5)
    gs = tanh_gauss_seidel_scan(*inputs, 0.3, [5], 2)
    euler = tanh_rk_scan(*inputs, 0.3, solvers.get_tableau("euler"), 2)
    assert all(torch.allclose(a, b, atol=1e-14, rtol=0) for a, b in zip(gs, euler))


def test_layered_field_with_padded_weight():
    """The wiring for stacked layers: input only into the first block (zero rows of V for the upper block)."""
    h0, x, weight, bias, matrix = make_inputs(5, seed=7)
    padded = torch.cat([weight[:3], torch.zeros(2, weight.shape[1])]).detach().requires_grad_()
    inputs = [h0, x, padded, bias, matrix]
    for fused, reference in [(tanh_gauss_seidel_scan(*inputs, 0.5, (3, 2)),
                              gauss_seidel_reference(*inputs, 0.5, (3, 2), 1)),
                             (tanh_rk_scan(*inputs, 0.5, solvers.get_tableau("rk4")),
                              rk_reference(*inputs, 0.5, solvers.get_tableau("rk4"), 1))]:
        assert_same_values_and_gradients(fused, reference, inputs, "both")


@pytest.mark.parametrize("method,substeps", [("euler", 1), ("euler", 2), ("rk4", 1), ("rk38", 2), ("heun", 1)])
def test_gated_gradcheck(method, substeps):
    inputs = make_inputs(3, batch=2, length=3, rows=6, seed=11, scale=1.0)
    tableau = solvers.get_tableau(method)
    for part in (0, 1):  # all states, and h_T alone (its separate output)
        assert torch.autograd.gradcheck(lambda *a: tanh_rk_scan(*a, 0.3, tableau, substeps, gated=True)[part],
                                        inputs)


@pytest.mark.parametrize("sizes,substeps", [((2, 2), 1), ((1, 2, 1), 2), ((4,), 1)])
def test_gauss_seidel_gradcheck(sizes, substeps):
    inputs = make_inputs(4, batch=2, length=3, seed=12, scale=1.0)
    for part in (0, 1):
        assert torch.autograd.gradcheck(lambda *a: tanh_gauss_seidel_scan(*a, 0.3, sizes, substeps)[part], inputs)


@pytest.mark.parametrize("scan,rows", [
    (lambda *a: tanh_rk_scan(*a, 0.3, solvers.get_tableau("rk4"), 2, gated=True), 10),
    (lambda *a: tanh_gauss_seidel_scan(*a, 0.3, (2, 3), 2), 5),
], ids=["gated-rk4", "gauss-seidel"])
def test_buffers_survive_interleaved_calls(scan, rows):
    """Pooled work buffers: a second forward before the first backward must not corrupt the first's gradient,
    and a retained graph gives the same gradient twice."""
    first_inputs, second_inputs = make_inputs(5, seed=1, rows=rows), make_inputs(5, seed=2, rows=rows)
    expected = torch.autograd.grad(scan(*first_inputs)[1].sum(), first_inputs)
    first = scan(*first_inputs)[1].sum()
    second = scan(*second_inputs)[1].sum()
    got = torch.autograd.grad(first, first_inputs, retain_graph=True)
    again = torch.autograd.grad(first, first_inputs)
    torch.autograd.grad(second, second_inputs)
    for e, g, a in zip(expected, got, again):
        assert torch.equal(e, g) and torch.equal(g, a)


def test_gradients_only_where_asked():
    h0, x, weight, bias, matrix = make_inputs(4, rows=8)
    states, last = tanh_rk_scan(h0.detach(), x.detach(), weight, bias.detach(), matrix, 0.2,
                                solvers.get_tableau("midpoint"), gated=True)
    grads = torch.autograd.grad(last.sum(), [weight, matrix])
    assert all(torch.isfinite(g).all() for g in grads)
    _, last = tanh_gauss_seidel_scan(h0, x.detach(), weight[:4].detach(), bias[:4].detach(), matrix, 0.2, (2, 2))
    assert torch.autograd.grad(last.sum(), [h0])[0].shape == h0.shape


def test_argument_errors():
    h0, x, weight, bias, matrix = make_inputs(4)
    implicit = solvers.ButcherTableau("backward", c=(1.0,), A=((1.0,),), b=(1.0,), order=1)
    with pytest.raises(ValueError, match="explicit"):
        tanh_rk_scan(h0, x, weight, bias, matrix, 0.1, implicit)
    with pytest.raises(ValueError, match=r"weight must be \(8, 2\)"):
        tanh_rk_scan(h0, x, weight, bias, matrix, 0.1, solvers.get_tableau("euler"), gated=True)
    for sizes in [(2, 3), (0, 4), (), 3]:
        with pytest.raises(ValueError, match="sizes"):
            tanh_gauss_seidel_scan(h0, x, weight, bias, matrix, 0.1, sizes)
