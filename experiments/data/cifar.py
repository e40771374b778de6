"""CIFAR-10 "python version" batches, read through a restricted unpickler.

The batches (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``) are Python 2 pickles of a dict
``{"data": uint8 array (10000, 3072), "labels": list of ints, ...}``; each row of ``data`` holds the
1024 red, then 1024 green, then 1024 blue values of a 32x32 image in row-major order. A pickle can name
any importable callable, so :class:`RestrictedUnpickler` resolves only the handful of globals this format
needs (numpy's array reconstruction and dtype, the codec used for Python 2 byte strings, builtin
containers); anything else, e.g. ``os.system``, is refused before it is called.
"""
from __future__ import annotations

import builtins
import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from experiments.data.splits import ArraySplits, missing_files_error

try:  # numpy >= 2 moved the pickle helpers to numpy._core; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric

_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, "_reconstruct"): _multiarray._reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _numeric._frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    **{(module, name): getattr(builtins, name)
       for module in ("builtins", "__builtin__") for name in ("dict", "list", "tuple", "set", "frozenset", "bytearray")},
}
CIFAR_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle named a global outside the allowed set; nothing of it was called."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``_SAFE_GLOBALS``; others raise
    :class:`ForbiddenGlobalError` (an ``UnpicklingError``)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in _SAFE_GLOBALS))
            raise ForbiddenGlobalError(
                f"refusing to load global {module}.{name}: CIFAR batches only need {allowed}"
            ) from None


def safe_load_pickle(data: bytes, encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``latin1`` decodes Python 2 strings)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``, every field checked."""
    path = Path(path)
    try:
        batch = safe_load_pickle(path.read_bytes())
    except ForbiddenGlobalError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    except Exception as exc:  # truncated or foreign bytes raise many types inside pickle
        raise ValueError(f"{path}: not a readable CIFAR-10 batch pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: expected a dict with keys 'data' and 'labels', got {keys}")
    data, labels = batch["data"], np.asarray(batch["labels"])
    width = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != width:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {width}), got {got}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' must be {len(data)} integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def cifar10_paths(root: str | os.PathLike) -> dict[str, list[Path]]:
    """The expected batch files under ``root`` (torchvision's layout)."""
    folder = Path(root) / CIFAR_FOLDER
    return {"train": [folder / name for name in TRAIN_BATCHES], "test": [folder / TEST_BATCH]}


def load_cifar10(root: str | os.PathLike) -> ArraySplits:
    """CIFAR-10 from ``root/cifar-10-batches-py/``: 50,000 training and 10,000 test images (N, 3, 32, 32)."""
    paths = cifar10_paths(root)
    expected = [p for files in paths.values() for p in files]
    if not all(p.is_file() for p in expected):
        raise missing_files_error(
            "CIFAR-10", [str(p) for p in expected],
            "Unpack cifar-10-python.tar.gz (the 'python version') into --data-root; nothing is downloaded.",
        )
    parts = {name: [read_cifar_batch(p) for p in files] for name, files in paths.items()}
    x = {name: np.concatenate([b[0] for b in batches]) for name, batches in parts.items()}
    y = {name: np.concatenate([b[1] for b in batches]) for name, batches in parts.items()}
    return ArraySplits(x["train"], y["train"], x["test"], y["test"], source=str(Path(root) / CIFAR_FOLDER))
