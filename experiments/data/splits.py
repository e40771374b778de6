"""Labelled arrays split into train and test, and the validation split carved from train.

Every loader returns :class:`ArraySplits` (numpy arrays exactly as stored on disk or generated); the task
registry turns them into sequences. Model selection uses a validation split taken from the *training* data
(:func:`carve_validation`), so the test set is evaluated once, after selection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class MissingDataError(FileNotFoundError, ValueError):
    """Data files are missing; the message names every expected path (catchable as either base class)."""


def missing_files_error(what: str, expected: list[str], hint: str = "") -> MissingDataError:
    """Build the error for absent files, listing every path that was looked for."""
    lines = "\n  ".join(expected)
    return MissingDataError(f"{what}: files not found; expected:\n  {lines}" + (f"\n{hint}" if hint else ""))


@dataclass(frozen=True)
class ArraySplits:
    """Train and test examples: ``x`` arrays of shape (N, ...) and integer labels of shape (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if y.ndim != 1 or len(x) != len(y):
                raise ValueError(f"{self.source}: {part} has {len(x)} examples but labels of shape {y.shape}")


def carve_validation(n: int, val_fraction: float, seed: int, subset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` of a seeded shuffle of ``range(n)``, optionally cut to its first ``subset``.

    The pool (all n examples or a seeded subset of them) is split so that validation holds
    ``ceil(val_fraction * len(pool))`` examples; the same seed always gives the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if subset is not None and not 2 <= subset:
        raise ValueError(f"a training subset needs at least 2 examples, got {subset}")
    pool = np.random.default_rng(seed).permutation(n)[: (n if subset is None else min(subset, n))]
    n_val = math.ceil(val_fraction * len(pool))
    if n_val >= len(pool):
        raise ValueError(f"val_fraction={val_fraction} leaves no training examples out of {len(pool)}")
    return np.sort(pool[n_val:]), np.sort(pool[:n_val])
