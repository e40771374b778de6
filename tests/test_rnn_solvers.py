"""ODERNN under every solver: alignment, convergence, adaptive hold/linear against scipy, fused path, stats."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import solvers
from odernn import (ODERNN, AFRNNField, AntisymmetricField, FRNNField, GatedAntisymmetricField, InputPath,
                    StackedAntisymmetricField, UnstructuredField)
from odernn.fused import BufferPool, tanh_rk_scan


pytestmark = pytest.mark.usefixtures("float64")  # literal transcriptions compared to 1e-12


def data(batch=2, steps=6, m=2, seed=0):
    return torch.randn(batch, steps, m, generator=torch.Generator().manual_seed(seed))


def scipy_reference(field, x, eps, interpolation):
    """Interval by interval with scipy's DOP853: the input on interval k is U_k (hold) or the line from U_k to
    U_{k+1} (linear, last sample held) - an independent check of which input each interval sees."""
    with torch.no_grad():
        U = field.input_projection(x).numpy()
        A = field.coupling_matrix().numpy()
    out = np.zeros((x.shape[0], x.shape[1], field.state_size))
    for b in range(x.shape[0]):
        h = np.zeros(field.state_size)
        for k in range(x.shape[1]):
            nxt = U[b, min(k + 1, x.shape[1] - 1)]
            def rhs(t, y, k=k, nxt=nxt):
                u = U[b, k] if interpolation == "hold" else U[b, k] + (t - k * eps) / eps * (nxt - U[b, k])
                return np.tanh(A @ y + u)
            h = solve_ivp(rhs, (k * eps, (k + 1) * eps), h, method="DOP853", rtol=1e-12, atol=1e-13).y[:, -1]
            out[b, k] = h
    return torch.from_numpy(out)


@pytest.mark.parametrize("interpolation", ["hold", "linear"])
@pytest.mark.parametrize("method,rtol,tol", [("dopri5", 1e-10, 1e-8), ("bosh3", 1e-8, 1e-6)])
def test_adaptive_sees_the_input_of_the_interval_it_integrates(method, rtol, tol, interpolation):
    torch.manual_seed(0)
    field = AntisymmetricField(2, 4, gamma=0.1, sigma_w=2.0)
    with torch.no_grad():
        field.input.weight.mul_(3)  # large jumps of the held input between intervals
    x = data()
    model = ODERNN(field, method, step_size=0.5, interpolation=interpolation, rtol=rtol, atol=rtol / 100)
    got = model(x)[0]
    assert torch.allclose(got, scipy_reference(field, x, 0.5, interpolation), atol=tol, rtol=0)
    assert model.last_stats.nfe > 0 and model.last_stats.n_accepted >= x.shape[1]


@pytest.mark.parametrize("interpolation", ["hold", "linear"])
def test_rk4_substeps_converge_to_dopri5_at_order_4(interpolation):
    torch.manual_seed(1)
    field = AFRNNField(2, [3, 4], gamma=0.1, sigma_w=1.5)
    x = data(steps=8)
    model = ODERNN(field, "dopri5", step_size=0.5, interpolation=interpolation, rtol=1e-12, atol=1e-14)
    reference = model(x)[0]
    substeps = [4, 8, 16, 32]
    errors = []
    for n in substeps:
        model.solver, model.substeps = "rk4", n
        errors.append(float((model(x)[0] - reference).detach().abs().max()))
    slope = -np.polyfit(np.log(substeps), np.log(errors), 1)[0]
    assert all(a > b for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-7
    assert abs(slope - 4) < 0.3, (errors, slope)


def test_one_instance_runs_under_every_registered_solver():
    torch.manual_seed(2)
    model = ODERNN(AFRNNField(2, [3, 4], gamma=0.1), "dopri5", step_size=0.05, rtol=1e-10, atol=1e-12)
    x = data(steps=10)
    reference = model(x)[0]
    model.rtol, model.atol = 1e-5, 1e-7
    for name in solvers.available():
        model.solver = name
        if name in solvers.available("imex"):  # AFRNN declares no linear part to take implicitly
            with pytest.raises(ValueError, match="IMEX methods need f.linear_part"):
                model(x)
            continue
        outputs, h_n = model(x)
        assert model.solver == name and outputs.shape == (2, 10, 7) and torch.equal(h_n, outputs[:, -1])
        assert model.last_stats.nfe >= 10 and model.last_stats.n_accepted >= 10
        order = 1 if name in ("euler", "partitioned_euler", "symplectic_euler") else 2
        assert float((outputs - reference).detach().abs().max()) < 0.05 ** order * 2, name


def test_euler_nfe_and_step_counts():
    field = AntisymmetricField(2, 4)
    for solver, substeps, per_step in [("euler", 3, 1), ("rk4", 2, 4), ("midpoint", 1, 2)]:
        model = ODERNN(field, solver, substeps=substeps)
        model(data(steps=5))
        assert model.last_stats.nfe == 5 * substeps * per_step and model.last_stats.n_steps == 5 * substeps


def test_euler_linear_matches_hold_with_one_substep_but_not_with_more():
    field = GatedAntisymmetricField(2, 4)
    x = data()
    assert torch.allclose(ODERNN(field, interpolation="linear")(x)[0], ODERNN(field)(x)[0], atol=1e-15)
    assert not torch.allclose(ODERNN(field, interpolation="linear", substeps=2)(x)[0],
                              ODERNN(field, substeps=2)(x)[0], atol=1e-9)


def test_linear_path_values():
    U = torch.arange(6.0).reshape(3, 1, 2)
    path = InputPath(U, "linear")
    assert torch.equal(path.at(0, 0.5), (U[0] + U[1]) / 2) and torch.equal(path.at(2, 0.7), U[2])
    assert torch.equal(InputPath(U, "hold").at(1, 0.9), U[1])


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk3", "rk4"])
@pytest.mark.parametrize("substeps", [1, 3])
@pytest.mark.parametrize("make_field", [lambda: AntisymmetricField(2, 5, gamma=0.2, parameterization="full"),
                                        lambda: AntisymmetricField(2, 5, gamma=0.2),
                                        lambda: UnstructuredField(2, 5),
                                        lambda: GatedAntisymmetricField(2, 5, gamma=0.2),
                                        lambda: UnstructuredField(2, 5, gated=True),
                                        lambda: AFRNNField(2, [2, 3], gamma=0.2),
                                        lambda: AFRNNField(2, [2, 1, 2], gamma=0.2, coupling="dense"),
                                        lambda: StackedAntisymmetricField(2, [3, 2], gamma=0.2),
                                        lambda: FRNNField(2, [2, 3], gamma=0.2)],
                         ids=["full", "triangular", "unstructured", "gated", "unstructured-gated", "afrnn",
                              "afrnn-dense-3", "arnn2", "frnn"])
def test_fast_path_equals_generic_path_with_gradients(make_field, substeps, solver):
    """Outputs, h_T and the gradients of every parameter, the input and h0 agree with the rk_step scan."""
    field = make_field()
    x, h0 = data(batch=3, steps=7).requires_grad_(), torch.randn(3, 5, requires_grad=True)
    fast, generic = (ODERNN(field, solver, step_size=0.3, substeps=substeps, fast_path=fp) for fp in (True, False))
    assert fast.uses_fast_path() and not generic.uses_fast_path()
    results = []
    for model in (fast, generic):
        outputs, h_n = model(x, h0)
        assert torch.equal(h_n, outputs[:, -1])
        loss = outputs.pow(3).sum() + h_n.sum()
        results.append([outputs, *torch.autograd.grad(loss, [*field.parameters(), x, h0])])
        assert model.last_stats.nfe == 7 * substeps * solvers.get_tableau(solver).stages
        assert model.last_stats.n_steps == model.last_stats.n_accepted == 7 * substeps
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("make_field", [lambda: AFRNNField(2, [2, 3], gamma=0.2),
                                        lambda: AFRNNField(2, [2, 1, 2], gamma=0.2, coupling="dense"),
                                        lambda: StackedAntisymmetricField(2, [3, 2], gamma=0.2),
                                        lambda: FRNNField(2, [2, 3], gamma=0.2)], ids=["afrnn", "dense-3", "arnn2", "frnn"])
@pytest.mark.parametrize("substeps", [1, 2])
def test_fused_gauss_seidel_equals_the_stepped_partitioned_scan_with_gradients(make_field, substeps):
    field = make_field()
    x, h0 = data(batch=3, steps=7).requires_grad_(), torch.randn(3, 5, requires_grad=True)
    fast, generic = (ODERNN(field, "partitioned_euler", step_size=0.3, substeps=substeps, fast_path=fp)
                     for fp in (True, False))
    assert fast.uses_fast_path() and not generic.uses_fast_path()
    results = []
    for model in (fast, generic):
        outputs, h_n = model(x, h0)
        loss = outputs.pow(3).sum() + h_n.sum()
        results.append([outputs, *torch.autograd.grad(loss, [*field.parameters(), x, h0])])
        assert model.last_stats.n_steps == 7 * substeps
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun", "ralston", "rk3", "rk4", "rk38"])
@pytest.mark.parametrize("interpolation", ["hold", "linear"])
def test_fast_path_covers_every_fixed_tableau_with_a_held_input(solver, interpolation):
    """Linear interpolation changes the input inside an interval unless every stage sits at its left end."""
    field = AntisymmetricField(2, 4)
    for substeps in (1, 2):
        model = ODERNN(field, solver, substeps=substeps, interpolation=interpolation)
        left_ends_only = solver == "euler" and substeps == 1
        assert model.uses_fast_path() == (interpolation == "hold" or left_ends_only)
    assert ODERNN(GatedAntisymmetricField(2, 4), solver).uses_fast_path()
    assert ODERNN(AFRNNField(2, [3, 4]), solver).uses_fast_path()
    assert not ODERNN(field, solver, fast_path=False).uses_fast_path()


@pytest.mark.parametrize("solver,substeps", [("euler", 1), ("euler", 2), ("rk4", 1), ("rk4", 2)])
def test_fused_scan_gradcheck(solver, substeps):
    gen = torch.Generator().manual_seed(3)
    inputs = [torch.randn(*shape, generator=gen, requires_grad=True) for shape in [(2, 4), (5, 2, 3), (4, 3), (4,), (4, 4)]]
    tableau = solvers.get_tableau(solver)
    for part in (0, 1):  # all states, and h_T alone (its separate output)
        assert torch.autograd.gradcheck(lambda *a: tanh_rk_scan(*a, 0.3, tableau, substeps)[part], inputs)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_fused_scan_buffers_survive_interleaved_calls(solver):
    """Pooled work buffers: a second forward before the first backward must not corrupt the first's gradient."""
    field = AntisymmetricField(2, 3)
    model = ODERNN(field, solver)
    x1, x2 = data(seed=1), data(seed=2)
    expected = torch.autograd.grad(ODERNN(field, solver, fast_path=False)(x1)[1].sum(), list(field.parameters()))
    first = model(x1)[1].sum()
    second = model(x2)[1].sum()
    got = torch.autograd.grad(first, list(field.parameters()), retain_graph=True)
    again = torch.autograd.grad(first, list(field.parameters()))
    torch.autograd.grad(second, list(field.parameters()))
    for e, g, a in zip(expected, got, again):
        assert torch.allclose(e, g, atol=1e-12) and torch.equal(g, a)


def test_buffer_pool_reuses_the_smallest_storage_with_room():
    pool, like = BufferPool(capacity=2), torch.zeros(1)
    large, small = pool.take((4, 3), like), pool.take((2, 3), like)
    large_ptr, small_ptr = large.untyped_storage().data_ptr(), small.untyped_storage().data_ptr()
    pool.give(large[1:])  # a view: its whole storage goes back
    pool.give(small)
    del large, small  # nothing outside the pool holds them now
    assert pool.take((0, 3), like).numel() == 0 and len(pool.free) == 2  # empty requests take nothing
    reused = pool.take((1, 7), like)
    assert reused.shape == (1, 7) and reused.untyped_storage().data_ptr() == large_ptr
    assert pool.take((2, 3), like).untyped_storage().data_ptr() == small_ptr
    assert pool.take((2, 3), like).untyped_storage().data_ptr() not in (large_ptr, small_ptr)


def test_buffer_pool_never_hands_out_a_storage_still_held_outside():
    """Scans return views of pooled states: while the caller keeps them, the storage is not reused."""
    pool, like = BufferPool(capacity=2), torch.zeros(1)
    states = pool.take((5, 3), like)
    kept = states[1:]  # what a caller keeps
    pool.give(states)
    del states
    fresh = pool.take((5, 3), like)
    assert fresh.untyped_storage().data_ptr() != kept.untyped_storage().data_ptr()
    del fresh, kept
    assert len(pool.free) == 1 and pool.take((5, 3), like).numel() == 15 and not pool.free
    model, x = ODERNN(AntisymmetricField(2, 3), "rk4"), data()
    outputs = model(x)[0].detach()
    expected = outputs.clone()
    for _ in range(3):  # later forwards (and their backward) must not write into the kept outputs
        model(torch.randn_like(x))[1].sum().backward()
    assert torch.equal(outputs, expected)


def test_batch_first_false_and_h0():
    field = AFRNNField(2, [3, 2])
    x, h0 = data(), torch.randn(2, 5)
    bf = ODERNN(field, "rk4")(x, h0)
    tf = ODERNN(field, "rk4", batch_first=False)(x.transpose(0, 1), h0)
    assert torch.allclose(bf[0], tf[0].transpose(0, 1)) and torch.allclose(bf[1], tf[1])
    assert ODERNN(field).readout_slice == slice(3, 5)


def test_adjoint_matches_direct_gradients():
    torch.manual_seed(4)
    field = AntisymmetricField(2, 4, gamma=0.1)
    x = data(steps=4)
    grads = []
    for adjoint in (False, True):
        field.zero_grad()
        ODERNN(field, "dopri5", step_size=0.5, rtol=1e-10, atol=1e-12, adjoint=adjoint)(x)[1].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in field.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_non_finite_state_names_the_step():
    torch.manual_seed(5)
    field = AntisymmetricField(1, 3).float()
    x = torch.randn(1, 8, 1, dtype=torch.float32)
    states = ODERNN(field, step_size=1e38, check_finite=False)(x)[0]
    first_bad = int(torch.nonzero(~torch.isfinite(states[0]).all(-1))[0, 0]) + 1
    with pytest.raises(FloatingPointError, match=f"sequence step {first_bad} of 8"):
        ODERNN(field, step_size=1e38)(x)
    assert math.isfinite(first_bad)
