"""Sequence transforms (pixels, rows, permutation, noise padding) and the tasks built from data on the machine."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from experiments.data import load_task
from experiments.data.splits import carve_validation
from experiments.data.transforms import (
    fixed_noise, fixed_permutation, pad_with_noise, permute_steps, pixel_sequence, row_sequence,
    standardize_channels,
)


def test_pixel_and_row_shapes_and_order():
    mnist = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 28, 28)
    assert pixel_sequence(mnist).shape == (2, 784, 1)
    assert torch.equal(pixel_sequence(mnist)[1, :, 0], mnist[1].reshape(-1))  # scan-line order
    cifar = torch.randn(2, 3, 32, 32)
    pix = pixel_sequence(cifar)
    assert pix.shape == (2, 1024, 3)
    assert torch.equal(pix[1, 32 * 5 + 7], cifar[1, :, 5, 7])  # step = the 3 channels of pixel (5, 7)
    rows = row_sequence(cifar)
    assert rows.shape == (2, 32, 96)
    assert torch.equal(rows[0, 4], torch.cat([cifar[0, c, 4] for c in range(3)]))
    with pytest.raises(ValueError, match="expects"):
        row_sequence(torch.zeros(5))


def test_permutation_fixed_by_seed_and_applied_to_steps():
    a, b, c = fixed_permutation(784, 3), fixed_permutation(784, 3), fixed_permutation(784, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == list(range(784))
    x = torch.arange(784, dtype=torch.float32).reshape(1, 784, 1)
    assert torch.equal(permute_steps(x, a)[0, :, 0], a.float())
    with pytest.raises(ValueError, match="permutation must reorder range"):
        permute_steps(x, a[:10])


def test_permuted_digits_task_saves_its_permutation():
    plain, permuted = load_task("digits"), load_task("digits-permuted", permutation_seed=5)
    perm = torch.tensor(permuted.info["permutation"])
    assert torch.equal(perm, fixed_permutation(64, 5))
    assert torch.equal(permuted.test.tensors[0], plain.test.tensors[0][:, perm])
    assert torch.equal(permuted.train.tensors[1], plain.train.tensors[1])


def test_noise_padding_shape_statistics_and_data_intact():
    rows = torch.rand(64, 32, 96)
    out = pad_with_noise(rows, torch.Generator().manual_seed(0), length=1000)
    assert out.shape == (64, 1000, 96)
    assert torch.equal(out[:, :32], rows)
    noise = out[:, 32:]
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 1.0) < 0.01  # 5.9M samples: se ~4e-4
    # fresh per sample, reproducible from the generator's seed, different for another seed
    assert not torch.allclose(noise[0], noise[1])
    assert torch.equal(pad_with_noise(rows, torch.Generator().manual_seed(0), length=1000), out)
    assert not torch.equal(pad_with_noise(rows, torch.Generator().manual_seed(1), length=1000), out)


def test_fixed_noise_option_shares_one_tensor():
    noise = fixed_noise(968, 96, seed=2)
    assert torch.equal(noise, fixed_noise(968, 96, seed=2))
    out = pad_with_noise(torch.rand(3, 32, 96), torch.Generator(), length=1000, noise=noise)
    assert torch.equal(out[0, 32:], noise) and torch.equal(out[2, 32:], noise)
    with pytest.raises(ValueError, match=r"fixed noise must have shape \(968, 96\)"):
        pad_with_noise(torch.rand(3, 32, 96), torch.Generator(), length=1000, noise=noise[:5])
    with pytest.raises(ValueError, match="cannot pad"):
        pad_with_noise(torch.rand(3, 32, 96), torch.Generator(), length=10)


def test_standardize_uses_reference_statistics():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (50, 3, 4, 4)).astype(np.uint8)
    out = standardize_channels(ref, ref).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_validation_carved_from_train_disjoint_and_seeded():
    train, val = carve_validation(100, 0.1, seed=3)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    again = carve_validation(100, 0.1, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    sub_train, sub_val = carve_validation(100, 0.2, seed=3, subset=30)
    assert (len(sub_train), len(sub_val)) == (24, 6)
    with pytest.raises(ValueError, match="val_fraction must lie in"):
        carve_validation(100, 1.0, seed=0)


def test_builtin_tasks_shapes():
    digits = load_task("digits")
    assert (digits.seq_len, digits.input_size, digits.num_classes) == (64, 1, 10)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert 0.0 <= float(digits.train.tensors[0].min()) and float(digits.train.tensors[0].max()) <= 1.0
    state = np.random.get_state()[1].copy()
    series = load_task("mnist1d")
    assert (series.seq_len, len(series.train) + len(series.val), len(series.test)) == (40, 4000, 1000)
    assert np.array_equal(np.random.get_state()[1], state)  # generating MNIST-1D leaves numpy's global RNG alone


def test_noisy_task_transform_matches_fit_hook_signature(tmp_path):
    import pickle
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": np.full((2, 3072), 128, np.uint8), "labels": [0, 1]}
        (folder / name).write_bytes(pickle.dumps(batch))
    fixed = load_task("noisy-cifar10", tmp_path, val_fraction=0.2, noise="fixed", noise_seed=7)
    x = fixed.batch_transform(fixed.test.tensors[0], torch.Generator().manual_seed(0))
    assert x.shape == (2, 1000, 96) and torch.equal(x[0, 32:], fixed_noise(968, 96, 7))
    assert isinstance(fixed.batch_transform, functools.partial)
    with pytest.raises(ValueError, match="unknown noise mode 'pink'"):
        load_task("noisy-cifar10", tmp_path, noise="pink")
