"""Suite-wide guard: no test may leak torch's global settings into the next one. Under pytest-xdist each worker
runs torch on one intra-op thread (a test that needs more sets them): workers of several threads each on the
same cores spin against each other, which made small solves 10x slower."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch


if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The tests marked slow first, the rest in their order: under xdist the longest ones then start early and
    overlap the many short ones, instead of leaving one worker running them alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def compiled():
    """The compiled walks built (or loaded); the test is skipped where no compiler can build them (the Python
    walks are all there is to test)."""
    from odernn import kernels
    try:
        kernels.build()
    except Exception as error:
        pytest.skip(f"compiled walks not available: {type(error).__name__}")


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (restored afterwards by the guard above)."""
    torch.set_default_dtype(torch.float64)
    yield


def write_fake_mnist(root: Path, seed: int = 0, n_train: int = 40, n_test: int = 24) -> Path:
    """Tiny random IDX files in MNIST's layout (root/MNIST/raw): real loaders, no download."""
    from experiments.data.idx import IDX_STEMS, write_idx

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for key, array in {"train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
                       "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
                       "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
                       "test_y": rng.integers(0, 10, n_test, dtype=np.uint8)}.items():
        write_idx(array, raw / IDX_STEMS[key])
    return root


@pytest.fixture
def fake_mnist():
    """``fake_mnist(root, seed=0, n_train=40, n_test=24) -> root``: see ``write_fake_mnist``."""
    return write_fake_mnist
