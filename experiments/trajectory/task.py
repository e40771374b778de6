"""The prediction task on a set of trajectories: split, normalisation, model time, inputs and targets, and
the two reference predictors.

A trajectory has observations y_0..y_{T-1} at times tau_0 < ... < tau_{T-1}. With ``context = k`` the
model sees y_0..y_{k-1} and predicts y_k..y_{T-1} (k = 1 is the papers' protocol: the first state only).

**Model time.** Each trajectory's times are shifted so that its first observation sits at 0 and scaled by
c = eps / Delta, where Delta is the median observation interval of the training set and eps the model's
``step_size``: s_j = c (tau_j - tau_0). The recurrent state h_j sits at s_j and is read out as the
prediction of y_j; h_0 sits at s_0 = 0, so the first interval (0, s_1] is the first prediction interval
(with k = 1). On a uniform grid s_j = j eps exactly, which is what ``ODERNN`` does without ``times``.

**Inputs** (``alignment="previous"``, the default). x_j (j = 1..T-1) is held on (s_{j-1}, s_j]:
x_j = y_{j-1} for j <= k (the latest observation seen), and the constant placeholder 1 afterwards. The
model takes T - 1 steps and its outputs at steps k..T-1 are scored. With ``alignment="current"`` (the AFRNN
authors' double-pendulum code, Table 3) the model takes one step per observation, T in all: the state
starts one step eps before the first observation, the input on the step that ends at observation j is y_j
itself for j < k and the placeholder afterwards, and the first k outputs are not scored. Both are causal:
a prediction of y_j never sees y_j. The packed input tensor carries, per step, the d state inputs, the
interval length relative to Delta, (s_j - s_{j-1}) / eps, and the model time s_j;
:class:`experiments.trajectory.model.TrajectoryPredictor` unpacks them.

**One-step prediction** (``objective="one-step"``, the LEM authors' FitzHugh-Nagumo task): every observation is
an input (x_j = y_{j-1} for all j) and the model predicts each next one, y_1..y_{T-1}; ``context`` does not
apply. ``observed`` (state names) keeps only those variables as inputs and targets (partial observation).

**Targets** are y_k..y_{T-1} (T - k of them; k = 1 for one-step prediction). **Reference predictors** (same units): the mean predictor
(at each test observation, the mean over training trajectories of their state at the same time after their
start, linearly interpolated, held at the ends; on a shared grid this is the mean at each time index) and
persistence (the last context state y_{k-1}, held).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from experiments.trajectory.data import Trajectories

PLACEHOLDER = 1.0
UNIFORM_RTOL = 1e-9
OBJECTIVES = ("rollout", "one-step")
"""Predict the rest of each trajectory from its first ``context`` observations, or each next observation from
all the ones before it."""
ALIGNMENTS = {"previous": 0, "current": 1}
"""Input alignments and the extra steps each takes before the first observation's time (the *lead*)."""


def split_indices(n: int, fractions: tuple[float, float, float], seed: int | None) -> tuple[np.ndarray, ...]:
    """``range(n)`` cut into train / validation / test by ``fractions`` (normalised to sum to 1), after a
    permutation seeded by ``seed``, or in the data's own order for ``seed=None`` (consecutive blocks, as the
    AFRNN authors' double-pendulum split); validation and test get at least one trajectory each, training the
    rest (>= 1)."""
    if n < 3:
        raise ValueError(f"a train/validation/test split needs at least 3 trajectories, got {n}")
    total = float(sum(fractions))
    n_val = max(1, int(round(n * fractions[1] / total)))
    n_test = max(1, int(round(n * fractions[2] / total)))
    n_train = n - n_val - n_test
    if n_train < 1:  # validation and test asked for (nearly) everything: keep one for training
        n_test = max(1, (n - 1) // 2)
        n_train, n_val = 1, n - 1 - n_test
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


@dataclass(frozen=True)
class Normalizer:
    """Per-variable affine map (y - mean) / std (the identity when not normalising)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, states: np.ndarray, enabled: bool = True) -> "Normalizer":
        d = states.shape[-1]
        if not enabled:
            return cls(np.zeros(d), np.ones(d))
        flat = states.reshape(-1, d)
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0), np.where(std > 0, std, 1.0))

    def apply(self, states: np.ndarray) -> np.ndarray:
        return (states - self.mean) / self.std

    def invert(self, states: np.ndarray) -> np.ndarray:
        return states * self.std + self.mean


def is_uniform_grid(times: np.ndarray) -> bool:
    """Whether every trajectory, shifted to start at 0, has the same equally spaced times."""
    rel = times - times[:, :1]
    gaps = np.diff(rel, axis=1)
    scale = float(np.abs(rel).max()) or 1.0
    return bool(np.all(np.abs(rel - rel[:1]) <= UNIFORM_RTOL * scale)
                and np.all(np.abs(gaps - gaps[0, 0]) <= UNIFORM_RTOL * scale))


@dataclass
class PreparedTask:
    """The datasets (``TensorDataset(packed inputs, targets)``) and everything needed to read the results."""

    trajectories: Trajectories
    context: int
    step_size: float
    indices: dict[str, np.ndarray]
    normalizer: Normalizer
    spacing: float
    uniform: bool
    datasets: dict[str, TensorDataset]
    alignment: str = "previous"
    one_step: bool = False

    @property
    def first_target(self) -> int:
        """Index of the first predicted observation: ``context``, or 1 in one-step prediction."""
        return 1 if self.one_step else self.context

    @property
    def state_dim(self) -> int:
        return self.trajectories.dim

    @property
    def horizon(self) -> int:
        """Number of predicted observations per trajectory, T - first_target."""
        return self.trajectories.length - self.first_target

    def part(self, name: str) -> Trajectories:
        return self.trajectories.subset(self.indices[name])

    def normalized(self, name: str) -> np.ndarray:
        return self.normalizer.apply(self.part(name).states)

    def targets(self, name: str) -> np.ndarray:
        """Normalised targets y_k..y_{T-1} of a part: (n, T - k, d), k = ``first_target``."""
        return self.normalized(name)[:, self.first_target:]

    def mean_predictor(self, name: str = "test") -> np.ndarray:
        """The mean of the training trajectories at each observation's time after its start: (n, T-k, d)."""
        train, part = self.part("train"), self.part(name)
        train_rel = train.times - train.times[:, :1]
        rel = (part.times - part.times[:, :1])[:, self.first_target:]
        train_states = self.normalized("train")
        if self.uniform:
            return np.broadcast_to(train_states.mean(axis=0)[self.first_target:], rel.shape + (self.state_dim,)).copy()
        out = np.zeros(rel.shape + (self.state_dim,))
        for i in range(train.n):
            for d in range(self.state_dim):
                out[..., d] += np.interp(rel, train_rel[i], train_states[i, :, d])
        return out / train.n

    def persistence(self, name: str = "test") -> np.ndarray:
        """The last context state held over the horizon (one-step: the previous observation): (n, T-k, d)."""
        states = self.normalized(name)
        if self.one_step:
            return states[:, :-1].copy()
        return np.repeat(states[:, self.context - 1:self.context], self.horizon, axis=1)

    def horizon_times(self, name: str = "test") -> np.ndarray:
        """Mean time after the last context observation of each predicted observation: (T-k,)."""
        t, k = self.part(name).times, self.first_target
        return (t[:, k:] - t[:, k - 1:k]).mean(axis=0)

    def describe(self) -> dict[str, Any]:
        return {"context": self.context, "one_step": self.one_step, "horizon": self.horizon, "alignment": self.alignment,
                "uniform_times": self.uniform, "median_interval": self.spacing, "time_scale": self.step_size / self.spacing,
                "split_sizes": {k: int(len(v)) for k, v in self.indices.items()},
                "normalizer": {"mean": self.normalizer.mean.tolist(), "std": self.normalizer.std.tolist()},
                "state_names": list(self.trajectories.state_names)}


def pack_inputs(states: np.ndarray, times: np.ndarray, context: int, step_size: float, spacing: float,
                alignment: str = "previous") -> Tensor:
    """Packed model inputs (N, T - 1 + lead, d + 2): state inputs, relative interval length, model time s_j
    (lead = ``ALIGNMENTS[alignment]``: one reading step before the first observation for "current")."""
    n, length, d = states.shape
    lead = ALIGNMENTS[alignment]
    x = np.full((n, length - 1 + lead, d), PLACEHOLDER)
    x[:, :context] = states[:, :context]
    s = (times - times[:, :1]) * (step_size / spacing)
    if lead:  # the state starts one step eps before the first observation, at model time 0
        s = np.concatenate([np.full((n, lead), -step_size * lead), s], axis=1) + step_size * lead
    interval = np.diff(s, axis=1) / step_size
    return torch.as_tensor(np.concatenate([x, interval[..., None], s[:, 1:, None]], axis=-1), dtype=torch.float32)


def prepare(trajectories: Trajectories, context: int, step_size: float, split: tuple[float, float, float],
            split_seed: int | None, normalize: bool = True, alignment: str = "previous", objective: str = "rollout",
            observed: tuple[str, ...] = ()) -> PreparedTask:
    """Keep the ``observed`` variables (all by default), split ``trajectories`` (seeded, or in order),
    standardise with the training set and build the three datasets."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if observed:
        names = trajectories.state_names
        unknown = [v for v in observed if v not in names]
        if unknown:
            raise ValueError(f"--observed {' '.join(unknown)}: not a state variable of these trajectories "
                             f"({', '.join(names)})")
        keep = [names.index(v) for v in observed]
        trajectories = Trajectories(trajectories.states[..., keep], trajectories.times, tuple(observed),
                                    dict(trajectories.metadata))
    one_step = objective == "one-step"
    if one_step and ALIGNMENTS.get(alignment, 0):
        raise ValueError("one-step prediction needs --alignment previous: with 'current' the step that ends at an "
                         "observation reads it, so its output would see its own target")
    if one_step:
        context = 1  # every observation is read; the inputs are packed with all of them below
    if context >= trajectories.length:
        raise ValueError(f"context {context} leaves nothing to predict: the trajectories have "
                         f"{trajectories.length} observations; use --context between 1 and {trajectories.length - 1}")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown input alignment {alignment!r}; known: {', '.join(ALIGNMENTS)}")
    train, val, test = split_indices(trajectories.n, split, split_seed)
    indices = {"train": train, "val": val, "test": test}
    if len(train) > 1 and np.ptp(trajectories.states[train], axis=0).max() == 0:
        raise ValueError("the training trajectories are all the same: the mean predictor is exact and there is "
                         "nothing to learn; give trajectories that differ")
    normalizer = Normalizer.fit(trajectories.states[train], normalize)
    if not (np.isfinite(normalizer.mean).all() and np.isfinite(normalizer.std).all()):
        raise ValueError(f"the states are too large to standardise: their mean or variance overflows float64 "
                         f"(largest |value| {np.abs(trajectories.states).max():.3g}); rescale the data")
    spacing = float(np.median(np.diff(trajectories.times[train], axis=1)))
    uniform = is_uniform_grid(trajectories.times)
    datasets = {}
    for name, idx in indices.items():
        states = normalizer.apply(trajectories.states[idx])
        if np.abs(states).max() >= np.finfo(np.float32).max:
            raise ValueError(f"the {name} states exceed float32's range in the model's units (largest |value| "
                             f"{np.abs(states).max():.3g}); rescale the data, or standardise it (--normalize)")
        seen = trajectories.length - 1 if one_step else context
        x = pack_inputs(states, trajectories.times[idx], seen, step_size, spacing, alignment)
        y = torch.as_tensor(states[:, 1 if one_step else context:], dtype=torch.float32)
        datasets[name] = TensorDataset(x, y)
    return PreparedTask(trajectories, context, step_size, indices, normalizer, spacing, uniform, datasets, alignment,
                        one_step)
