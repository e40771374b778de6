"""The compiled walks of the fused scans (odernn/csrc/fused_walks.cpp, loaded by odernn.kernels) against the
Python walks: equal to 1e-10 in float64 (values and gradients) for every explicit tableau, both activations,
substeps and Gauss-Seidel blocks; to float32 rounding at a training shape with random inputs; gradcheck; NaN
reaching the caller; and the fallback to the Python walks, with its one-line notice, where no build exists."""
from __future__ import annotations

import pytest
import torch

import solvers
from odernn import ODERNN, AFRNNField, AntisymmetricField, GatedAntisymmetricField, kernels
from odernn.fused import INLINE_FEATURES, tanh_gauss_seidel_scan, tanh_rk_scan


def inputs(n, m, batch, length, rows, dtype, seed=0, scale=0.7):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, n), (length, batch, m), (rows, m), (rows,), (n, n)]
    return [(scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()
            for shape in shapes]


def both_walks(scan, leaves, *args, **kwargs):
    """(values and gradients) of scan under the Python walks and under the compiled ones."""
    out = {}
    for choice in ("python", "compiled"):
        with kernels.use(choice):
            states, last = scan(*leaves, *args, **kwargs)
            weights = torch.linspace(-1.0, 2.0, states.numel(), dtype=states.dtype).view(states.shape)
            loss = (states.pow(3) + weights * states).sum() + last.pow(2).sum()
            grads = torch.autograd.grad(loss, leaves)
        out[choice] = [states.detach(), last.detach(), *grads]
    return out["python"], out["compiled"]


@pytest.mark.parametrize("method", solvers.available("fixed"))
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("substeps", [1, 2])
def test_rk_walks_agree_in_float64(compiled, method, gated, substeps):
    n = 5
    leaves = inputs(n, 2, 3, 6, 2 * n if gated else n, torch.float64)
    python, native = both_walks(tanh_rk_scan, leaves, 0.3, solvers.get_tableau(method), substeps, gated=gated)
    for p, c in zip(python, native):
        assert torch.allclose(p, c, rtol=0, atol=1e-10), (p - c).abs().max()


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("substeps", [1, 2])
def test_rk_walks_agree_with_projected_inputs(compiled, method, gated, substeps):
    """Beyond INLINE_FEATURES input features the compiled walk reads the projected inputs and hands back dL/du per
    sample (not dL/dx and dL/d[V^T; b] formed in the walk): the same values and gradients."""
    n, m = 5, INLINE_FEATURES + 1
    leaves = inputs(n, m, 3, 6, 2 * n if gated else n, torch.float64)
    python, native = both_walks(tanh_rk_scan, leaves, 0.3, solvers.get_tableau(method), substeps, gated=gated)
    for p, c in zip(python, native):
        assert torch.allclose(p, c, rtol=0, atol=1e-10), (p - c).abs().max()


@pytest.mark.parametrize("sizes", [(6,), (2, 4), (3, 1, 2)])
@pytest.mark.parametrize("substeps", [1, 3])
def test_gauss_seidel_walks_agree_in_float64(compiled, sizes, substeps):
    n = sum(sizes)
    leaves = inputs(n, 2, 3, 5, n, torch.float64)
    python, native = both_walks(tanh_gauss_seidel_scan, leaves, 0.2, sizes, substeps)
    for p, c in zip(python, native):
        assert torch.allclose(p, c, rtol=0, atol=1e-10), (p - c).abs().max()


@pytest.mark.parametrize("method,gated", [("euler", False), ("rk4", False), ("euler", True), ("midpoint", True)])
def test_walks_agree_in_float32_at_a_training_shape(compiled, method, gated):
    """B=64, H=48, T=120, m=3, random inputs of unit scale (tanh saturates in places): the compiled float tanh
    is within a few ulp of torch's, so states and gradients agree to float32 rounding."""
    n = 48
    leaves = inputs(n, 3, 64, 120, 2 * n if gated else n, torch.float32, seed=1, scale=1.0)
    with torch.no_grad():
        leaves[4].mul_(0.2)  # a recurrent matrix of the scale the fields draw
    python, native = both_walks(tanh_rk_scan, leaves, 0.1, solvers.get_tableau(method), 1, gated=gated)
    for p, c in zip(python, native):
        scale = p.abs().max().clamp_min(1.0)
        assert (p - c).abs().max() <= 2e-5 * scale, ((p - c).abs().max(), scale)


def test_compiled_float_tanh_within_7_ulp(compiled):
    """One Euler step of size 1 from h0 = 0 with A = 0, V = 1, b = 0 returns tanh(x) as the compiled walk
    computes it (rational, no exp): within 7 float ulp and 4e-7 of float64 tanh over [-10, 10], exactly
    +-1 beyond, the identity near 0, NaN passed through."""
    grid = torch.cat([torch.linspace(-10.0, 10.0, 200_001), torch.logspace(-8, 1, 20_001),
                      -torch.logspace(-8, 1, 20_001), torch.tensor([-50.0, 50.0, 1e-30, float("nan")])])
    x = grid.view(1, -1, 1)
    with kernels.use("compiled"), torch.no_grad():
        states, _ = tanh_rk_scan(torch.zeros(grid.numel(), 1), x, torch.ones(1, 1), torch.zeros(1),
                                 torch.zeros(1, 1), 1.0, solvers.get_tableau("euler"))
    got, exact = states[0, :, 0].double(), torch.tanh(grid.double())
    finite = grid.isfinite()
    ulp = torch.from_numpy(__import__("numpy").spacing(exact.abs().float().numpy())).double()
    assert ((got - exact).abs() / ulp)[finite].max() <= 7.0
    assert (got - exact).abs()[finite].max() <= 4e-7
    assert got[-4:-2].tolist() == [-1.0, 1.0] and got[-2].item() == float(torch.tensor(1e-30)) and got[-1].isnan()


BANDED_SCANS = {
    "euler": (lambda *leaves: tanh_rk_scan(*leaves, 0.2, solvers.get_tableau("euler"), 1), 8),
    "rk4 gated": (lambda *leaves: tanh_rk_scan(*leaves, 0.2, solvers.get_tableau("rk4"), 2, gated=True), 16),
    "gauss-seidel": (lambda *leaves: tanh_gauss_seidel_scan(*leaves, 0.2, (3, 5), 1), 8),
}


@pytest.mark.parametrize("case", BANDED_SCANS)
def test_bands_equal_one_thread(compiled, case):
    """With several threads the compiled walks cut the batch into one band of rows per thread; the result
    equals the one-thread walk to float64 rounding (B = 50: bands of unequal size)."""
    scan, rows = BANDED_SCANS[case]
    leaves = inputs(8, 2, 50, 30, rows, torch.float64, seed=3)
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with kernels.use("compiled"):
                states, last = scan(*leaves)
                grads = torch.autograd.grad(states.pow(2).sum() + last.sum(), leaves)
            results.append([states.detach(), *grads])
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert (one - two).abs().max() <= 1e-12 * one.abs().max().clamp_min(1.0)


@pytest.mark.parametrize("method,gated", [("euler", False), ("rk4", True)])
def test_compiled_gradcheck(compiled, method, gated):
    n = 3
    leaves = inputs(n, 2, 2, 4, 2 * n if gated else n, torch.float64, scale=0.5)
    with kernels.use("compiled"):
        assert torch.autograd.gradcheck(
            lambda *a: tanh_rk_scan(*a, 0.25, solvers.get_tableau(method), 2, gated=gated), leaves)
        assert torch.autograd.gradcheck(lambda *a: tanh_gauss_seidel_scan(*a, 0.25, (1, 2), 2), inputs(
            n, 2, 2, 4, n, torch.float64, scale=0.5))


@pytest.mark.parametrize("field", [AntisymmetricField(1, 16, gamma=0.01), GatedAntisymmetricField(1, 16),
                                   AFRNNField(1, [8, 8])], ids=["antisymmetric", "gated", "afrnn"])
@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_odernn_identical_under_either_walk(compiled, field, solver):
    """A loss on every output through a readout, as a trajectory model has: batch_first outputs are a
    transposed view of the scan's states, so the gradient reaching the walk is not contiguous."""
    torch.manual_seed(0)
    x, readout = torch.randn(8, 30, 1), torch.randn(field.state_size, 3)
    results = {}
    for choice in ("python", "compiled"):
        with kernels.use(choice):
            model = ODERNN(field, solver, step_size=0.1)
            outputs, last = model(x)
            loss = (outputs @ readout).pow(2).sum() + last.pow(2).sum()
            grads = torch.autograd.grad(loss, list(field.parameters()))
        results[choice] = (outputs.detach(), *grads)
    for p, c in zip(results["python"], results["compiled"]):  # float32 sums: rounding relative to the largest term
        assert (p - c).abs().max() <= 1e-5 * p.abs().max().clamp_min(1.0), (p - c).abs().max()


@pytest.mark.parametrize("gated", [False, True])
def test_nan_reaches_the_caller(compiled, gated):
    """A NaN entering one sample makes the compiled float activation return NaN from then on (no clamp or
    blend swallows it), so ODERNN's check of the last state sees it."""
    n = 8
    h0, x, weight, bias, matrix = (t.detach().float() for t in inputs(n, 1, 4, 20, 2 * n if gated else n,
                                                                       torch.float64))
    x[7, 2, 0] = float("nan")
    with kernels.use("compiled"):
        states, last = tanh_rk_scan(h0, x, weight, bias, matrix, 0.1, solvers.get_tableau("euler"), gated=gated)
    assert torch.isnan(last[2]).all() and torch.isfinite(last[[0, 1, 3]]).all()
    assert torch.isnan(states[7:, 2]).all() and torch.isfinite(states[:7, 2]).all()


def test_fallback_with_notice_when_no_build(monkeypatch, capsys):
    """Without a build the scans run the Python walks and say so once; ``compiled`` asked for raises."""
    def no_build(verbose: bool = False):
        raise OSError("no C++ compiler")

    monkeypatch.setattr(kernels, "build", no_build)
    monkeypatch.setattr(kernels, "_state", {"choice": "auto", "ops": None, "error": None, "noticed": False})
    x, field = torch.randn(2, 5, 1), AntisymmetricField(1, 4)
    expected = None
    for _ in range(2):
        outputs, _ = ODERNN(field, "euler")(x)
        expected = outputs if expected is None else expected
    notice = capsys.readouterr().err
    assert notice.count("compiled scan unavailable (OSError: no C++ compiler)") == 1
    assert kernels.active(torch.device("cpu")) == "python"
    with kernels.use("compiled"), pytest.raises(RuntimeError, match="could not be built"):
        ODERNN(field, "euler")(x)
    with kernels.use("python"):
        assert torch.equal(ODERNN(field, "euler")(x)[0], expected)


def test_bad_choice_is_refused(monkeypatch):
    monkeypatch.setattr(kernels, "_state", {"choice": None, "ops": None, "error": None, "noticed": False})
    monkeypatch.setenv(kernels.ENV, "fortran")
    with pytest.raises(ValueError, match="ODERNN_SCAN_KERNEL must be one of auto, compiled, python"):
        kernels.compiled_ops()
    with pytest.raises(ValueError, match="choice must be one of"):
        with kernels.use("gpu"):
            pass


def test_a_matching_stamp_loads_without_the_loader_and_a_missing_one_builds(compiled, monkeypatch, tmp_path):
    """Once built, later processes load the library directly (the stamp beside it matches the recipe); in a
    cache without it (a fresh TORCH_EXTENSIONS_DIR) the loader is asked to build."""
    import torch.utils.cpp_extension as cpp_extension

    monkeypatch.setattr(kernels, "_state", {"choice": "compiled", "ops": None, "error": None, "noticed": False})
    kernels.build()  # the real loader: builds or loads, and leaves the stamp beside the library
    calls = []

    def loader(**kwargs):
        calls.append(kwargs["name"])
        raise OSError("the loader was called")

    monkeypatch.setattr(cpp_extension, "load", loader)
    monkeypatch.setattr(kernels, "_state", {"choice": "compiled", "ops": None, "error": None, "noticed": False})
    assert kernels.build() is torch.ops.odernn_fused and calls == []
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(kernels, "_state", {"choice": "compiled", "ops": None, "error": None, "noticed": False})
    with pytest.raises(OSError, match="the loader was called"):
        kernels.build()
    assert calls == [kernels.NAME]
