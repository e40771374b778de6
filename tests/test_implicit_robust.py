"""Implicit steps that hold at large steps with real input: where plain Newton fails, a continuation in the
step size reaches the same step's stage solution (checked against the method's defining equation); a
factorisation a library botched is redone in float64; a non-finite Newton matrix is a NewtonError, never a
crash inside the triangular solve."""
from __future__ import annotations

import pytest
import torch

import solvers
from odernn import build_rnn


@pytest.mark.parametrize("solver", ["backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4"])
def test_large_steps_with_real_input_complete_with_bounded_states(solver):
    """eps 1, sigma_w 8, gamma 0, N(0, 1) inputs: plain Newton fails on most steps here (it used to stop the
    forward with NewtonError); the continuation completes every step."""
    torch.manual_seed(0)
    rnn = build_rnn("antisymmetric", 1, 16, solver=solver, step_size=1.0, gamma=0.0, sigma_w=8.0)
    outputs, last = rnn(torch.randn(2, 6, 1))
    assert torch.isfinite(outputs).all() and last.abs().max() < 6 * 1.0  # |f| <= 1: at most dt per step
    assert rnn.last_stats.n_continued > 0


def test_a_continued_step_solves_the_methods_own_equation():
    """Implicit midpoint: y1 = y0 + dt f((y0 + y1) / 2). The continued step satisfies it to Newton's tolerance
    in float64 at dt = 3, where Newton from f(y0) diverges."""
    torch.manual_seed(1)
    C = 8.0 * torch.randn(16, 16, dtype=torch.float64) / 4.0
    C = C - C.T
    u = torch.randn(1, 16, dtype=torch.float64)
    f = lambda t, y: torch.tanh(y @ C.T + u)  # noqa: E731
    y0 = torch.randn(1, 16, dtype=torch.float64)
    counter = solvers.NewtonCounter()
    tableau = solvers.get_tableau("implicit_midpoint")
    jacobian = lambda t, y: (1 - f(t, y) ** 2).unsqueeze(-1) * C  # noqa: E731  (closed form, as ODERNN gives)
    y1 = solvers.implicit_rk_step(f, 0.0, y0, 3.0, tableau, jacobian=jacobian, counter=counter)
    assert counter.continued == 1
    residual = y1 - y0 - 3.0 * f(0.0, 0.5 * (y0 + y1))
    assert residual.abs().max() < 1e-8  # (continued == 1: plain Newton failed on this step first)


def test_a_botched_single_precision_factorisation_is_redone_in_float64(monkeypatch):
    """A library returning invalid pivots for a float32 batch (seen with a batched LU on one CPU) must not
    reach lu_solve: the factorisation is redone in float64 and the step equals the unpatched one."""
    torch.manual_seed(2)
    rnn = build_rnn("antisymmetric", 1, 8, solver="gauss_legendre4", step_size=0.1, gamma=0.01,
                    newton=solvers.NewtonOptions(functional=False))  # Newton's factorisations, not the iteration
    x = torch.randn(4, 5, 1)
    expected = rnn(x)[1].detach()
    real = torch.linalg.lu_factor_ex
    calls = {"float32": 0, "float64": 0}

    def botched(matrix, *args, **kwargs):
        LU, pivots, info = real(matrix, *args, **kwargs)
        calls[str(matrix.dtype).split(".")[1]] += 1
        return (LU, torch.zeros_like(pivots), info) if matrix.dtype == torch.float32 else (LU, pivots, info)

    monkeypatch.setattr(torch.linalg, "lu_factor_ex", botched)
    out = rnn(x)[1]
    assert calls["float64"] == calls["float32"] > 0
    assert torch.allclose(out, expected, atol=1e-5)
    out.sum().backward()  # the implicit-function backward solves with the float64 factors too


def test_a_non_finite_newton_matrix_is_a_newton_error():
    y = torch.ones(2, 3, dtype=torch.float64)
    jacobian = lambda t, y: torch.full((*y.shape, y.shape[1]), float("nan"), dtype=y.dtype)  # noqa: E731
    with pytest.raises(solvers.NewtonError, match="not finite"):
        solvers.implicit_rk_step(lambda t, y: -y, 0.0, y, 0.1, solvers.get_tableau("backward_euler"),
                                 solvers.NewtonOptions(functional=False), jacobian=jacobian)


def test_implicit_grid_command(capsys):
    from experiments.__main__ import main
    assert main(["implicit-grid", "--eps", "1", "--sigma-w", "8", "--gamma", "0", "--seeds", "1",
                 "--solvers", "implicit_midpoint"]) == 0
    assert "| implicit_midpoint | 0 of 1 |" in capsys.readouterr().out
    assert main(["implicit-grid", "--solvers", "rk4"]) == 2
    assert "--solvers takes implicit methods" in capsys.readouterr().err
    assert main(["implicit-grid", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_a_step_whose_continuation_folds_is_subdivided():
    """Gauss-Legendre 4 at eps 3, sigma_w 8, seed 1 (the grid's two former failures): the continuation path of
    its two-stage equations turns back, so the step is split into halves (``n_subdivided``) and the forward
    completes with bounded states; each half step is GL4's own step (checked on one interval below)."""
    torch.manual_seed(1)
    rnn = build_rnn("antisymmetric", 1, 16, solver="gauss_legendre4", step_size=3.0, gamma=0.0, sigma_w=8.0)
    with torch.no_grad():
        outputs, last = rnn(torch.randn(2, 10, 1))
    assert torch.isfinite(outputs).all() and last.abs().max() < 10 * 3.0
    assert rnn.last_stats.n_subdivided > 0


def test_subdivision_is_two_half_steps_of_the_same_method_and_has_a_bound():
    from solvers.methods.implicit_rk import MAX_SUBDIVISION_DEPTH, subdivided

    calls = []

    def step(f, t, y, dt):
        calls.append(dt)
        if dt > 0.3:
            raise solvers.NewtonError("no stage solution", t, dt)
        return y + dt

    counter = solvers.NewtonCounter()
    assert subdivided(step, None, 0.0, torch.zeros(1), 1.0, counter).item() == pytest.approx(1.0)
    assert counter.subdivided == 3 and calls == [1.0, 0.5, 0.25, 0.25, 0.5, 0.25, 0.25]
    with pytest.raises(solvers.NewtonError, match=f"Subdividing the step {MAX_SUBDIVISION_DEPTH} times"):
        subdivided(lambda f, t, y, dt: step(f, t, y, 1.0), None, 0.0, torch.zeros(1), 1.0, solvers.NewtonCounter())


@pytest.mark.parametrize("solver", ["implicit_midpoint", "gauss_legendre4"])
def test_functional_iteration_equals_newton_at_a_training_shape_in_float32(solver):
    """B = 128, H = 24, float32, random inputs, eps 0.1 (where the functional iteration converges and no
    Jacobian is formed): states and every gradient equal those of Newton's method (functional=False) to
    float32 rounding, and no Newton iteration was needed."""
    torch.manual_seed(4)
    x = torch.randn(128, 8, 3)
    results = []
    for functional in (True, False):
        torch.manual_seed(5)
        rnn = build_rnn("antisymmetric", 3, 24, solver=solver, step_size=0.1, gamma=0.01,
                        newton=solvers.NewtonOptions(functional=functional))
        out, last = rnn(x)
        (out.square().mean() + last.sum()).backward()
        results.append((out.detach(), [p.grad.clone() for p in rnn.parameters()], rnn.last_stats))
    (out_f, grads_f, stats_f), (out_n, grads_n, stats_n) = results
    assert stats_f.n_newton == 0 and stats_f.n_functional > 0 and stats_n.n_newton > 0
    assert torch.allclose(out_f, out_n, atol=1e-5)
    for g_f, g_n in zip(grads_f, grads_n):
        assert torch.allclose(g_f, g_n, atol=1e-4 * (1 + g_n.abs().max()))
