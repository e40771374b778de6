"""The sequential-classification tasks by name, and :func:`load_task` that builds their datasets.

A task = a loader (files or generated data -> :class:`ArraySplits`), an encoding of images into (N, T, m)
sequences, an optional fixed permutation of the time steps, and optional noise padding. ``load_task``
carves a validation split from the training data (model selection never sees the test set) and returns
``torch`` datasets ready for :func:`experiments.training.fit`.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from experiments.data.builtin import load_digits_splits, load_fashion_mnist, load_mnist, load_mnist1d
from experiments.data.cifar import load_cifar10
from experiments.data.splits import ArraySplits, carve_validation
from experiments.data.transforms import (
    fixed_noise, fixed_permutation, pad_with_noise, permute_steps, pixel_sequence,
    row_sequence, standardize_channels, to_unit_interval,
)

NOISE_MODES = ("fresh", "fixed")
NOISE_PADDED_LENGTH = 1000  # AntisymmetricRNN Sec. 5.3: T = 1000 (32 rows + 968 noise steps)
Encoder = Callable[[ArraySplits], tuple[Tensor, Tensor]]


def _scaled_pixels(max_value: float) -> Encoder:
    return lambda s: tuple(pixel_sequence(to_unit_interval(x, max_value)) for x in (s.train_x, s.test_x))


def _series_unchanged(s: ArraySplits) -> tuple[Tensor, Tensor]:  # MNIST-1D comes standardised
    return tuple(pixel_sequence(torch.as_tensor(np.asarray(x, dtype=np.float32))) for x in (s.train_x, s.test_x))


def _cifar(to_sequence: Callable[[Tensor], Tensor]) -> Encoder:
    return lambda s: tuple(to_sequence(standardize_channels(x, s.train_x)) for x in (s.train_x, s.test_x))


@dataclass(frozen=True)
class TaskSpec:
    """How to build one task: ``load(data_root)``, ``encode(splits) -> (train, test)`` sequences,
    whether its steps are permuted, the length it is noise-padded to (None: no padding), and its classes."""

    name: str
    description: str
    load: Callable[[str | os.PathLike | None], ArraySplits]
    encode: Encoder
    permuted: bool = False
    pad_to: int | None = None
    num_classes: int = 10


def _needs_root(loader: Callable[[str | os.PathLike], ArraySplits], what: str) -> Callable[[Any], ArraySplits]:
    @functools.wraps(loader)
    def load(root: str | os.PathLike | None) -> ArraySplits:
        if root is None:
            raise ValueError(f"task needs {what} files: pass --data-root (nothing is downloaded)")
        if not os.path.isdir(root):
            raise ValueError(f"--data-root {root} is not a directory")
        return loader(root)
    return load


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("digits", "scikit-learn 8x8 digits, pixel by pixel (64 x 1)",
             lambda root: load_digits_splits(), _scaled_pixels(16.0)),
    TaskSpec("digits-permuted", "scikit-learn digits, one fixed permutation of the 64 pixels",
             lambda root: load_digits_splits(), _scaled_pixels(16.0), permuted=True),
    TaskSpec("mnist1d", "MNIST-1D generated offline (40 x 1)",
             lambda root: load_mnist1d(), _series_unchanged),
    TaskSpec("mnist", "pixel-by-pixel MNIST (784 x 1)", _needs_root(load_mnist, "MNIST"), _scaled_pixels(255.0)),
    TaskSpec("pmnist", "permuted pixel-by-pixel MNIST (784 x 1, one fixed permutation)",
             _needs_root(load_mnist, "MNIST"), _scaled_pixels(255.0), permuted=True),
    TaskSpec("fashion", "pixel-by-pixel Fashion-MNIST (784 x 1)", load_fashion_mnist, _scaled_pixels(255.0)),
    TaskSpec("cifar10", "pixel-by-pixel CIFAR-10 (1024 x 3)", _needs_root(load_cifar10, "CIFAR-10"),
             _cifar(pixel_sequence)),
    TaskSpec("noisy-cifar10", "noise-padded CIFAR-10 (32 rows of 96, then N(0,1) noise: 1000 x 96)",
             _needs_root(load_cifar10, "CIFAR-10"), _cifar(row_sequence),
             pad_to=NOISE_PADDED_LENGTH),
)}


def content_hash(splits: ArraySplits) -> str:
    """SHA-256 of the data as read (train and test examples and labels, with their shapes and dtypes): the
    identity of a data set that ``--resume`` compares, wherever its files lie."""
    digest = hashlib.sha256()
    for array in (splits.train_x, splits.train_y, splits.test_x, splits.test_y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


@dataclass
class SequenceTask:
    """Datasets of one task, ready for training: items are ``(x (T, m) float32, label int64)``, where for
    noise-padded tasks x holds only the data rows until ``batch_transform(x, generator)`` pads the batch
    to ``seq_len`` steps."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    input_size: int
    seq_len: int
    num_classes: int
    batch_transform: Callable[[Tensor, torch.Generator], Tensor] | None
    info: dict[str, Any] = field(default_factory=dict)


def load_task(name: str, data_root: str | os.PathLike | None = None, *, val_fraction: float = 0.1,
              split_seed: int = 0, permutation_seed: int = 0, noise: str = "fresh", noise_seed: int = 0,
              train_subset: int | None = None, test_subset: int | None = None) -> SequenceTask:
    """Build task ``name``: train / validation (carved from train with ``split_seed``) / test datasets.

    ``train_subset`` keeps a seeded subset of the training pool before the validation split;
    ``test_subset`` keeps the first examples of the test set. Noise-padded tasks store only the rows and
    return ``batch_transform``, which pads each batch (pass it to ``fit`` and ``evaluate``): ``noise="fresh"``
    draws new N(0, 1) noise from the loop's seeded generator, ``"fixed"`` pads every sample with one tensor
    drawn from ``noise_seed``. ``info`` records what was used, the permutation included.
    """
    spec = get_task(name)
    if noise not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise!r}; known: {', '.join(NOISE_MODES)}")
    if test_subset is not None and test_subset < 1:
        raise ValueError(f"test_subset must be positive, got {test_subset}")
    splits = spec.load(data_root)
    train_x, test_x = spec.encode(splits)
    train_y, test_y = torch.as_tensor(splits.train_y), torch.as_tensor(splits.test_y)
    for labels in (train_y, test_y):
        if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
            raise ValueError(f"{splits.source}: labels must lie in 0..{spec.num_classes - 1}, "
                             f"found {int(labels.min())}..{int(labels.max())}")
    info: dict[str, Any] = {"task": name, "description": spec.description, "source": splits.source,
                            "path": os.path.abspath(splits.source) if os.path.exists(splits.source) else None,
                            "content_sha256": content_hash(splits), "split_seed": split_seed,
                            "val_fraction": val_fraction}
    if spec.permuted:
        permutation = fixed_permutation(train_x.shape[1], permutation_seed)
        train_x, test_x = permute_steps(train_x, permutation), permute_steps(test_x, permutation)
        info.update(permutation_seed=permutation_seed, permutation=permutation.tolist())
    train_idx, val_idx = carve_validation(len(train_y), val_fraction, split_seed, train_subset)
    test_idx = np.arange(len(test_y) if test_subset is None else min(test_subset, len(test_y)))
    transform = None
    if spec.pad_to is not None:
        info.update(noise=noise, padded_length=spec.pad_to)
        fixed = None
        if noise == "fixed":
            info.update(noise_seed=noise_seed)
            fixed = fixed_noise(spec.pad_to - train_x.shape[1], train_x.shape[2], noise_seed)
        transform = functools.partial(pad_with_noise, length=spec.pad_to, noise=fixed)
    info.update(n_train=len(train_idx), n_val=len(val_idx), n_test=len(test_idx))
    train, val = (TensorDataset(train_x[idx], train_y[idx]) for idx in (train_idx, val_idx))
    test = TensorDataset(test_x[test_idx], test_y[test_idx])
    seq_len = spec.pad_to or train_x.shape[1]
    return SequenceTask(name, train, val, test, input_size=int(train_x.shape[2]), seq_len=int(seq_len),
                        num_classes=spec.num_classes, batch_transform=transform, info=info)

