"""Real or generated data that exists on the machine without any download.

- scikit-learn's digits (``load_digits``, shipped inside the package): 1,797 8x8 images with values 0..16,
  split here into a fixed train/test partition (a seeded shuffle, 20% test).
- MNIST-1D (Greydanus 2020), generated in code with ``make_dataset(get_dataset_args())``: 4,000 training and
  1,000 test sequences of 40 steps. Its ``get_dataset`` downloads and is never called.
- Fashion-MNIST from Debian's package ``dataset-fashion-mnist`` (gzipped IDX files; ``apt-get install
  dataset-fashion-mnist``), or from ``--data-root`` in torchvision's layout.
- MNIST from ``--data-root`` in torchvision's layout (the user's own copy).
"""
from __future__ import annotations

import importlib
import os
import random
from pathlib import Path

import numpy as np

from experiments.data.idx import IDX_STEMS, load_idx_folder
from experiments.data.splits import ArraySplits

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DPKG_INFO_DIR = Path("/var/lib/dpkg/info")
IMAGE_SHAPE = (28, 28)  # MNIST and Fashion-MNIST: rows x cols of every image, train and test


def _import_optional(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for this task: pip install 'odernn[{extra}]' ({exc})") from exc


def load_digits_splits(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED) -> ArraySplits:
    """scikit-learn's 8x8 digits as (N, 8, 8) float64 images in 0..16 with a fixed seeded test split."""
    datasets = _import_optional("sklearn.datasets", "data")
    bunch = datasets.load_digits()
    order = np.random.default_rng(seed).permutation(len(bunch.target))
    n_test = round(test_fraction * len(order))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    x, y = bunch.images, bunch.target.astype(np.int64)
    return ArraySplits(x[train], y[train], x[test], y[test], source="sklearn.datasets.load_digits")


def load_mnist1d() -> ArraySplits:
    """MNIST-1D generated offline with the package's default arguments (seed 42): (N, 40) float64 series.

    ``make_dataset`` reseeds Python's and numpy's global generators; their states are restored afterwards
    so that generating the data does not change any other random stream of the run.
    """
    data_module = _import_optional("mnist1d.data", "data")
    states = random.getstate(), np.random.get_state()
    try:
        data = data_module.make_dataset(data_module.get_dataset_args())
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return ArraySplits(
        data["x"], data["y"].astype(np.int64), data["x_test"], data["y_test"].astype(np.int64),
        source="mnist1d.data.make_dataset(get_dataset_args())",
    )


def mnist_folders(root: str | os.PathLike) -> list[Path]:
    """Where MNIST is looked for: torchvision's ``root/MNIST/raw``."""
    return [Path(root) / "MNIST" / "raw"]


def load_mnist(root: str | os.PathLike) -> ArraySplits:
    """MNIST (60,000 + 10,000 images of 28x28 uint8) from ``root/MNIST/raw/*-ubyte[.gz]``."""
    return load_idx_folder(mnist_folders(root), "MNIST", "Put the four IDX files (plain or .gz) there; nothing is downloaded.",
                           image_shape=IMAGE_SHAPE)


def debian_package_files(package: str, info_dir: Path = DPKG_INFO_DIR) -> list[Path]:
    """Files installed by a Debian package, read from dpkg's own list (what ``dpkg -L`` prints)."""
    listing = info_dir / f"{package}.list"
    if not listing.is_file():
        return []
    return [Path(line) for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]


def fashion_folders(root: str | os.PathLike | None) -> list[Path]:
    """Where Fashion-MNIST is looked for: ``root/FashionMNIST/raw`` and ``root`` itself when a root is given;
    otherwise the folder of the Debian package's files (from dpkg's list, falling back to its known path)."""
    if root is not None:
        return [Path(root) / "FashionMNIST" / "raw", Path(root)]
    stem = IDX_STEMS["train_x"]
    installed = [p.parent for p in debian_package_files(FASHION_PACKAGE) if p.name.startswith(stem)]
    return installed[:1] or [FASHION_DEBIAN_DIR]


def load_fashion_mnist(root: str | os.PathLike | None = None) -> ArraySplits:
    """Fashion-MNIST (60,000 + 10,000 images of 28x28 uint8), same IDX files and reader as MNIST."""
    return load_idx_folder(
        fashion_folders(root), "Fashion-MNIST",
        f"Install Debian's package with `apt-get install {FASHION_PACKAGE}` or pass --data-root; nothing is downloaded.",
        image_shape=IMAGE_SHAPE,
    )
