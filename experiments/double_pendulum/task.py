"""The prediction task of the AFRNN paper (Section 5.3): the network sees the true state at step 0 and a
constant 1 placeholder at every later step, and predicts the remaining states of the trajectory.

Inputs ``x (N, T, 4)``: ``x[:, 0] = y(0)``, ``x[:, 1:] = 1``. Targets ``y (N, T-1, 4)``: the states at
steps 1..T-1 (29 with the paper's 30 points). The paper's loss is the *sum* of squared errors over
29 steps x 4 variables x a batch of 8 (Table 3), i.e. per-element MSE x 928.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

DEFAULT_SPLIT = (800, 100, 100)
PAPER_BATCH = 8


def make_inputs(states: Tensor) -> Tensor:
    """``(N, T, 4)`` states -> inputs: the true state at step 0, then the constant-1 placeholder."""
    x = torch.ones_like(states)
    x[:, 0] = states[:, 0]
    return x


def make_dataset(states: np.ndarray | Tensor, dtype: torch.dtype = torch.float32) -> TensorDataset:
    """``TensorDataset(inputs (N, T, 4), targets (N, T-1, 4))`` of a set of trajectories."""
    states = torch.as_tensor(np.asarray(states), dtype=dtype)
    if states.ndim != 3 or states.shape[-1] != 4 or states.shape[1] < 2:
        raise ValueError(f"trajectories must have shape (N, T>=2, 4), got {tuple(states.shape)}")
    return TensorDataset(make_inputs(states), states[:, 1:].clone())


def split(states: np.ndarray, sizes: tuple[int, int, int] = DEFAULT_SPLIT) -> tuple[np.ndarray, ...]:
    """Train / validation / test trajectories: consecutive blocks of the given sizes (the initial
    conditions are i.i.d., so the order of the file is already random)."""
    if len(sizes) != 3 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"split sizes must be three positive integers (train, val, test), got {sizes!r}")
    if sum(sizes) > len(states):
        raise ValueError(f"split {sizes} needs {sum(sizes)} trajectories but the data holds {len(states)}; "
                         f"generate more (--n) or pass smaller --split sizes")
    bounds = np.cumsum((0, *sizes))
    return tuple(states[a:b] for a, b in zip(bounds[:-1], bounds[1:]))


def mse(predictions: Tensor, targets: Tensor) -> Tensor:
    """Training loss: mean squared error per element (rad^2 and (rad/s)^2 mixed, as in the paper)."""
    return torch.nn.functional.mse_loss(predictions, targets)


def paper_units(mse_per_element: float, n_steps: int = 29) -> float:
    """Per-element MSE -> the paper's Table 3 loss: a sum over n_steps x 4 variables x batch of 8 (x928)."""
    return mse_per_element * n_steps * 4 * PAPER_BATCH
