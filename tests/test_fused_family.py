"""The family's fused scans under their papers' partitioned (symplectic) Euler: coRNN (``odernn.fused_oscillator``),
UnICORNN (``odernn.fused_unicornn``) and LEM (``odernn.fused_lem``), each chosen for the partitioned methods
on its field's form and equal to the generic stepped scan (values and every gradient, float64 to 1e-10,
float32 to rounding at a training shape), gradcheck, the fallbacks, and the family benchmark."""
import pytest
import torch

import odernn
from odernn.fused_oscillator import oscillator_scan
from odernn.integrators import FusedOscillatorScan, SteppedScan


def pair(solver: str, substeps: int = 1, dtype=torch.float64, n: int = 5, m: int = 3):
    fused = odernn.build_rnn("cornn", m, n, solver=solver, step_size=0.07, gamma=2.0, epsilon=1.5,
                             substeps=substeps).to(dtype)
    generic = odernn.build_rnn("cornn", m, n, solver=solver, step_size=0.07, gamma=2.0, epsilon=1.5,
                               substeps=substeps, fast_path=False).to(dtype)
    generic.load_state_dict(fused.state_dict())
    return fused, generic


def outputs_and_grads(rnn, x, h0, weights, **times):
    x, h0 = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
    out, last = rnn(x, h0, **times)
    loss = (out * weights).sum() + last.pow(2).sum()
    return out, last, torch.autograd.grad(loss, [x, h0, *rnn.parameters()])


def assert_same_run(fused, generic, x, h0, weights):
    """States, last state and every gradient (x, h0, parameters) equal to 1e-10."""
    a, b = outputs_and_grads(fused, x, h0, weights), outputs_and_grads(generic, x, h0, weights)
    for ta, tb in zip([a[0], a[1], *a[2]], [b[0], b[1], *b[2]]):
        torch.testing.assert_close(ta, tb, rtol=0, atol=1e-10)


@pytest.mark.parametrize("solver", ["symplectic_euler", "partitioned_euler", "imex_euler"])
@pytest.mark.parametrize("substeps", [1, 3])
def test_equal_to_the_generic_scan_in_float64(solver, substeps):
    torch.manual_seed(0)
    fused, generic = pair(solver, substeps)
    assert isinstance(fused.integrator, FusedOscillatorScan) and isinstance(generic.integrator, SteppedScan)
    x, h0 = torch.randn(4, 11, 3, dtype=torch.float64), torch.randn(4, 10, dtype=torch.float64)
    weights = torch.randn(4, 11, 10, dtype=torch.float64)
    a, b = outputs_and_grads(fused, x, h0, weights), outputs_and_grads(generic, x, h0, weights)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-10)
    for ga, gb in zip(a[2], b[2]):
        torch.testing.assert_close(ga, gb, rtol=0, atol=1e-10)


def test_imex_euler_is_the_papers_eq_3_and_ars222_stays_generic():
    """Under imex_euler the fused scan takes the damping implicitly: z' = (z + dt (tanh(C [z, y] + u) - gamma y))
    / (1 + dt epsilon), y' = y + dt z' (the coRNN paper's eq. 3, written out here); the second-order pair is
    left to the stepped scan."""
    torch.manual_seed(3)
    rnn, _ = pair("imex_euler")
    x, h0 = torch.randn(4, 6, 3, dtype=torch.float64), torch.randn(4, 10, dtype=torch.float64)
    form, dt = rnn.field.oscillator_form(), 0.07
    z, y = h0[:, :5], h0[:, 5:]
    for k in range(6):
        a = torch.tanh(torch.cat([z, y], 1) @ form.coupling.T + x[:, k] @ form.weight.T + form.bias)
        z = (z + dt * (a - 2.0 * y)) / (1 + dt * 1.5)
        y = y + dt * z
    torch.testing.assert_close(rnn(x, h0)[1], torch.cat([z, y], 1).detach(), rtol=0, atol=1e-12)
    assert isinstance(pair("ars222")[0].integrator, SteppedScan)


def test_float32_at_a_training_shape():
    torch.manual_seed(1)
    fused, generic = pair("symplectic_euler", dtype=torch.float32, n=64, m=2)
    x, h0 = torch.rand(50, 100, 2), torch.zeros(50, 128)
    weights = torch.randn(50, 100, 128)
    a, b = outputs_and_grads(fused, x, h0, weights), outputs_and_grads(generic, x, h0, weights)
    torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-5)
    for ga, gb in zip(a[2], b[2]):
        torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-4)


def test_gradcheck():
    torch.manual_seed(2)
    n, m = 3, 2
    args = [torch.randn(2, 2 * n), torch.randn(5, 2, m), torch.randn(n, m), torch.randn(n), torch.randn(n, 2 * n)]
    args = [a.double().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(lambda *a: oscillator_scan(*a, 1.3, 0.8, 0.1, 2), args)


def test_other_methods_and_per_sample_times_take_the_generic_path():
    torch.manual_seed(3)
    rk4 = odernn.build_rnn("cornn", 3, 5, solver="rk4", step_size=0.07)
    assert not isinstance(rk4.integrator, FusedOscillatorScan)
    fused, generic = pair("symplectic_euler")
    x, h0 = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 10, dtype=torch.float64)
    times = torch.tensor([[0.07, 0.2, 0.3, 0.45], [0.1, 0.14, 0.3, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(fused(x, h0, times=times)[0], generic(x, h0, times=times)[0], rtol=0, atol=1e-12)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"coupling must be \(3, 6\)"):
        oscillator_scan(torch.zeros(2, 6), torch.zeros(4, 2, 1), torch.zeros(3, 1), torch.zeros(3),
                        torch.zeros(3, 3), 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="expected h0"):
        oscillator_scan(torch.zeros(2, 5), torch.zeros(4, 2, 1), torch.zeros(3, 1), torch.zeros(3),
                        torch.zeros(3, 6), 1.0, 1.0, 0.1)


def test_family_benchmark_times_every_model_against_its_authors_cell(capsys):
    from experiments.__main__ import main
    assert main(["benchmark", "--family", "--T", "10", "--batch", "2", "--repeats", "1", "--warmup", "0",
                 "--no-progress", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "x |" in line]
    assert [row.split()[1] for row in rows] == ["cornn", "lem", "unicornn", "lipschitz"]
    assert "FusedOscillatorScan" in rows[0] and all(float(row.split("|")[-2].strip()[:-1]) > 0 for row in rows)


def test_family_benchmark_times_the_models_named(capsys):
    from experiments.__main__ import main
    assert main(["benchmark", "--family", "--family-models", "lipschitz,lem", "--T", "10", "--batch", "2",
                 "--repeats", "1", "--warmup", "0", "--no-progress", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "x |" in line]
    assert [row.split()[1] for row in rows] == ["lipschitz", "lem"]


@pytest.mark.parametrize("argv,message", [(["--family", "--family-models", "gru"], "must name some of"),
                                          (["--family-models", "lem"], "only applies with --family")])
def test_family_benchmark_refuses_bad_model_lists(capsys, argv, message):
    from experiments.__main__ import main
    assert main(["benchmark", *argv, "--T", "10"]) != 0
    assert message in capsys.readouterr().err


def unicornn_pair(substeps: int = 1, dtype=torch.float64):
    fused = odernn.build_rnn("unicornn", 3, [4, 5, 3], solver="symplectic_euler", step_size=0.19, alpha=3.0,
                             substeps=substeps).to(dtype)
    generic = odernn.build_rnn("unicornn", 3, [4, 5, 3], solver="symplectic_euler", step_size=0.19, alpha=3.0,
                               substeps=substeps, fast_path=False).to(dtype)
    generic.load_state_dict(fused.state_dict())
    return fused, generic


@pytest.mark.parametrize("substeps", [1, 2])
def test_unicornn_scan_equals_the_generic_scan_in_float64(substeps):
    """Three layers of different widths: layer by layer equals the Gauss-Seidel order over all six blocks."""
    from odernn.integrators import FusedIndependentOscillatorScan
    torch.manual_seed(4)
    fused, generic = unicornn_pair(substeps)
    assert isinstance(fused.integrator, FusedIndependentOscillatorScan)
    x, h0 = torch.randn(4, 9, 3, dtype=torch.float64), torch.randn(4, 24, dtype=torch.float64)
    weights = torch.randn(4, 9, 24, dtype=torch.float64)
    assert_same_run(fused, generic, x, h0, weights)


def test_unicornn_scan_gradcheck():
    from odernn.fused_unicornn import independent_oscillator_scan
    torch.manual_seed(5)
    m = 2
    tensors = [torch.randn(2, 10), torch.randn(4, 2, m), torch.randn(2, m), torch.randn(2), torch.rand(2),
               torch.randn(2), torch.randn(3, 2), torch.randn(3), torch.rand(3), torch.randn(3)]
    tensors = [t.double().requires_grad_(True) for t in tensors]

    def scan(h0, x, v1, b1, w1, c1, v2, b2, w2, c2):
        return independent_oscillator_scan(h0, x, (v1, v2), (b1, b2), (w1, w2), (c1, c2), 2.0, 0.2, 2)

    assert torch.autograd.gradcheck(scan, tensors)


@pytest.mark.parametrize("substeps", [1, 2])
def test_lem_scan_equals_the_generic_scan_in_float64(substeps):
    from odernn.integrators import FusedLEMScan
    torch.manual_seed(6)
    fused = odernn.build_rnn("lem", 3, 5, solver="partitioned_euler", step_size=0.21, substeps=substeps).double()
    generic = odernn.build_rnn("lem", 3, 5, solver="partitioned_euler", step_size=0.21, substeps=substeps,
                               fast_path=False).double()
    generic.load_state_dict(fused.state_dict())
    assert isinstance(fused.integrator, FusedLEMScan)
    x, h0 = torch.randn(4, 9, 3, dtype=torch.float64), torch.randn(4, 10, dtype=torch.float64)
    weights = torch.randn(4, 9, 10, dtype=torch.float64)
    assert_same_run(fused, generic, x, h0, weights)


def test_lem_scan_gradcheck():
    from odernn.fused_lem import lem_scan
    torch.manual_seed(7)
    n, m = 2, 2
    tensors = [torch.randn(3, 2 * n), torch.randn(4, 3, m), torch.randn(4 * n, m), torch.randn(4 * n),
               torch.randn(3 * n, n), torch.randn(3 * n), torch.randn(n, n), torch.randn(n)]
    tensors = [t.double().requires_grad_(True) for t in tensors]
    assert torch.autograd.gradcheck(lambda *t: lem_scan(*t, 0.3, 2), tensors)


@pytest.mark.parametrize("substeps", [1, 2])
def test_lipschitz_euler_scan_equals_the_generic_scan_in_float64(substeps):
    from odernn.integrators import FusedLinearTanhEulerScan
    torch.manual_seed(8)
    fused = odernn.build_rnn("lipschitz", 3, 5, solver="euler", step_size=0.03, substeps=substeps).double()
    generic = odernn.build_rnn("lipschitz", 3, 5, solver="euler", step_size=0.03, substeps=substeps,
                               fast_path=False).double()
    generic.load_state_dict(fused.state_dict())
    assert isinstance(fused.integrator, FusedLinearTanhEulerScan)
    assert not isinstance(odernn.build_rnn("lipschitz", 3, 5, solver="rk4").integrator, FusedLinearTanhEulerScan)
    x, h0 = torch.randn(4, 9, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    weights = torch.randn(4, 9, 5, dtype=torch.float64)
    assert_same_run(fused, generic, x, h0, weights)


def test_lipschitz_euler_scan_gradcheck():
    from odernn.fused_lipschitz import linear_tanh_euler_scan
    torch.manual_seed(9)
    n, m = 3, 2
    tensors = [torch.randn(2, n), torch.randn(4, 2, m), torch.randn(n, m), torch.randn(n), torch.randn(n, n),
               torch.randn(n, n)]
    tensors = [t.double().requires_grad_(True) for t in tensors]
    assert torch.autograd.gradcheck(lambda *t: linear_tanh_euler_scan(*t, 0.1, 2), tensors)
