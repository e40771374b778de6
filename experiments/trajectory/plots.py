"""Figures of a trajectory-prediction run: rollouts (truth against every model for a few test
trajectories), phase portraits (2-D systems), error per horizon, training curves, and the energy study's
error over time. Written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.io import atomic_path  # noqa: E402

MAX_PANELS = 4


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def _colors() -> list[str]:
    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def plot_rollouts(times: np.ndarray, truth: np.ndarray, predictions: Mapping[str, np.ndarray], context: int,
                  state_names: tuple[str, ...], path: str | Path, title: str = "") -> Path:
    """One row per trajectory, one column per state variable (at most four): truth (black, a dot per
    observation, context observations circled) and each model's prediction from the last context observation on. ``truth (k, T, d)``,
    predictions ``(k, T - context, d)``, ``times (k, T)``."""
    k, _, d = truth.shape
    cols = min(d, MAX_PANELS)
    fig, axes = plt.subplots(k, cols, figsize=(3.6 * cols + 1, 2.6 * k), squeeze=False, layout="constrained")
    for i in range(k):
        for j in range(cols):
            ax = axes[i, j]
            ax.plot(times[i], truth[i, :, j], "k.-", lw=2, ms=4, label="truth (observations)")
            ax.plot(times[i, :context], truth[i, :context, j], "ko", ms=6, mfc="none", mew=1.5, label="context")
            for c, (name, pred) in zip(_colors(), predictions.items()):
                ax.plot(times[i, context:], pred[i, :, j], "--", color=c, lw=1.4, label=name)
            ax.set_ylabel(state_names[j])
            if i == k - 1:
                ax.set_xlabel("t")
            if j == 0:
                ax.set_title(f"test trajectory {i}", fontsize=9, loc="left")
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.suptitle(title or "truth (black) and predictions (dashed)")
    return _save(fig, Path(path))


def plot_phase(truth: np.ndarray, predictions: Mapping[str, np.ndarray], context: int, state_names: tuple[str, ...],
               path: str | Path, title: str = "") -> Path:
    """Phase portraits (first two state variables) of the same trajectories, one panel each."""
    k = truth.shape[0]
    fig, axes = plt.subplots(1, k, figsize=(3.4 * k, 3.4), squeeze=False, layout="constrained")
    for i in range(k):
        ax = axes[0, i]
        ax.plot(truth[i, :, 0], truth[i, :, 1], "k-", lw=2, label="truth")
        ax.plot(truth[i, 0, 0], truth[i, 0, 1], "ko", ms=5)
        for c, (name, pred) in zip(_colors(), predictions.items()):
            ax.plot(pred[i, :, 0], pred[i, :, 1], "--", color=c, lw=1.4, label=name)
        ax.set_xlabel(state_names[0])
        ax.set_ylabel(state_names[1])
        ax.set_title(f"test trajectory {i}", fontsize=9)
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(title or "phase portraits: truth (black, start as a dot) and predictions (dashed)")
    return _save(fig, Path(path))


def plot_horizon(horizon: Mapping[str, list[float]], index: list[int], path: str | Path, title: str = "",
                 units: str = "") -> Path:
    """Test MSE at each predicted observation index, per model and for both reference predictors."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    refs = {"mean predictor": ("0.4", ":"), "persistence": ("0.6", "-.")}
    for c, (name, values) in zip(_colors(), ((n, v) for n, v in horizon.items() if n not in refs)):
        ax.plot(index, values, "-o", ms=3, color=c, label=name)
    for name, (color, style) in refs.items():
        if name in horizon:
            ax.plot(index, horizon[name], style, color=color, lw=2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("observation index j (predicted y_j)")
    ax.set_ylabel(f"test MSE{f' ({units})' if units else ''}")
    ax.set_title(title or "error per horizon")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_training_curves(histories: Mapping[str, list[dict[str, float]]], path: str | Path, title: str = "") -> Path:
    """Training (dashed) and validation (solid) MSE per epoch for each model, log scale."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for c, (name, history) in zip(_colors(), histories.items()):
        epochs = [row["epoch"] for row in history]
        ax.plot(epochs, [row["val_loss"] for row in history], "-o", ms=3, color=c, label=f"{name} validation")
        ax.plot(epochs, [row["train_loss"] for row in history], "--", color=c, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE per element")
    ax.set_title(title or "training (dashed) and validation (solid) loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_energy_error(times: np.ndarray, curves: Mapping[str, np.ndarray], path: str | Path, title: str) -> Path:
    """Relative energy error against time on log-log axes, one line per solve (``curves``: label -> the max
    over the trajectories at each output time). Exact zeros (t = 0) are left out of the log scale."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    keep = times > 0
    for label, error in curves.items():
        error = np.asarray(error)[keep]
        ax.plot(times[keep], np.where(error > 0, error, np.nan), lw=1.1, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("max relative energy error")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, Path(path))
