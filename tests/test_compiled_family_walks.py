"""The family's compiled walks (odernn/csrc/family_walks.cpp: coRNN, LEM, UnICORNN, Lipschitz RNN) against their Python
walks: equal to 1e-10 in float64 (states and every gradient, with and without gradients on the returned
states, with substeps), to float32 rounding at a training shape with random inputs, the batch's bands under
two threads equal to one, and gradcheck under each walk."""
from __future__ import annotations

import pytest
import torch

from odernn import kernels
from odernn.fused_lem import lem_scan
from odernn.fused_lipschitz import linear_tanh_euler_scan
from odernn.fused_oscillator import oscillator_scan
from odernn.fused_unicornn import independent_oscillator_scan


def leaves(model: str, n: int, m: int, batch: int, length: int, dtype, seed: int = 0,
           scale: float = 0.6) -> list[torch.Tensor]:
    """h0, x and the scan's parameters, random with standard deviation ``scale``."""
    shapes = {"cornn": [(batch, 2 * n), (length, batch, m), (n, m), (n,), (n, 2 * n)],
              "lem": [(batch, 2 * n), (length, batch, m), (4 * n, m), (4 * n,), (3 * n, n), (3 * n,), (n, n), (n,)],
              "lipschitz": [(batch, n), (length, batch, m), (n, m), (n,), (n, n), (n, n)],
              # two layers of n and n - 1 oscillators: V_l, b_l, w_l, c_l each
              "unicornn": [(batch, 2 * (2 * n - 1)), (length, batch, m), (n, m), (n,), (n,), (n,),
                           (n - 1, n), (n - 1,), (n - 1,), (n - 1,)]}[model.split()[0]]
    gen = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()
            for shape in shapes]


SCANS = {  # model: the scan with its settings, substeps last
    "cornn": lambda tensors, substeps: oscillator_scan(*tensors, 2.0, 1.5, 0.07, substeps),
    "cornn imex": lambda tensors, substeps: oscillator_scan(*tensors, 2.0, 1.5, 0.07, substeps, implicit_damping=True),
    "lem": lambda tensors, substeps: lem_scan(*tensors, 0.3, substeps),
    "lipschitz": lambda tensors, substeps: linear_tanh_euler_scan(*tensors, 0.1, substeps),
    "unicornn": lambda tensors, substeps: independent_oscillator_scan(
        tensors[0], tensors[1], tensors[2::4], tensors[3::4], tensors[4::4], tensors[5::4], 3.0, 0.19, substeps),
}


def run(model: str, tensors: list[torch.Tensor], substeps: int, choice: str, returned: bool = True):
    """States, last state and the gradients of a loss on both (or on the last state only)."""
    with kernels.use(choice):
        states, last = SCANS[model](tensors, substeps)
        weights = torch.linspace(-1.0, 2.0, states.numel(), dtype=states.dtype).view(states.shape)
        loss = last.pow(2).sum() + ((states.pow(3) + weights * states).sum() if returned else 0.0)
        grads = torch.autograd.grad(loss, tensors)
    return [states.detach(), last.detach(), *grads]


@pytest.mark.parametrize("model", SCANS)
@pytest.mark.parametrize("substeps", [1, 3])
@pytest.mark.parametrize("returned", [True, False])
def test_walks_agree_in_float64(compiled, model, substeps, returned):
    tensors = leaves(model, 7, 3, 40, 12, torch.float64)
    python, native = (run(model, tensors, substeps, choice, returned) for choice in ("python", "compiled"))
    for a, b in zip(python, native):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("model", SCANS)
def test_walks_agree_in_float32_at_a_training_shape(compiled, model):
    """n 64, B 128, T 100, random inputs and weights of the usual 1 / sqrt(n) scale times 1.5 (the tanh in
    its nonlinear range): float32 rounding apart (the compiled float tanh is within 7 ulp)."""
    tensors = leaves(model, 64, 2, 128, 100, torch.float32, seed=1, scale=1.5 / 8)
    python, native = (run(model, tensors, 1, choice) for choice in ("python", "compiled"))
    for a, b in zip(python, native):
        assert torch.isfinite(b).all()
        scale = a.abs().max().clamp_min(1.0)
        assert (a - b).abs().max() <= 2e-4 * scale


@pytest.mark.parametrize("model", SCANS)
def test_bands_equal_one_thread(compiled, model):
    """With two threads the batch is cut into two bands of rows (B = 50: unequal bands); the walk equals the
    one-thread walk to float64 rounding."""
    tensors = leaves(model, 8, 2, 50, 20, torch.float64, seed=3)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(run(model, tensors, 2, "compiled"))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert (one - two).abs().max() <= 1e-12 * one.abs().max().clamp_min(1.0)


@pytest.mark.parametrize("model", SCANS)
@pytest.mark.parametrize("choice", ["python", "compiled"])
def test_gradcheck(compiled, model, choice):
    tensors = leaves(model, 3, 2, 4, 5, torch.float64, seed=5)
    with kernels.use(choice):
        assert torch.autograd.gradcheck(lambda *t: SCANS[model](list(t), 2), tensors)
