"""Figures: predicted against true trajectories (angles over time, x-y paths of both bobs) and training curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from experiments.io import atomic_path  # noqa: E402
from experiments.double_pendulum.physics import DoublePendulum  # noqa: E402
from experiments.double_pendulum.table import LABELS  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_trajectories(true: np.ndarray, predictions: dict[str, np.ndarray], times: np.ndarray,
                      pendulum: DoublePendulum, path: str | Path) -> Path:
    """One row per sample: theta1(t), theta2(t) and the x-y path of both bobs, truth (black) against each
    model's prediction. ``true`` and every prediction are ``(k, T, 4)`` states, step 0 included."""
    k = len(true)
    fig, axes = plt.subplots(k, 3, figsize=(13, 3.4 * k), squeeze=False, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xy_true = pendulum.positions(torch.as_tensor(true)).numpy()
    for i in range(k):
        ax_t1, ax_t2, ax_xy = axes[i]
        for ax, j, name in ((ax_t1, 0, r"$\theta_1$"), (ax_t2, 2, r"$\theta_2$")):
            ax.plot(times, true[i, :, j], "k-", lw=2, label="truth")
            ax.set_ylabel(f"{name} (rad)")
            ax.set_xlabel("t (s)")
        ax_xy.plot(xy_true[i, :, 0], xy_true[i, :, 1], "k-", lw=1.5, alpha=0.6, label="truth bob 1")
        ax_xy.plot(xy_true[i, :, 2], xy_true[i, :, 3], "k-", lw=2.5, label="truth bob 2")
        for c, (model, pred) in zip(colors, predictions.items()):
            label = LABELS.get(model, model)
            ax_t1.plot(times, pred[i, :, 0], "--", color=c, label=label)
            ax_t2.plot(times, pred[i, :, 2], "--", color=c, label=label)
            xy = pendulum.positions(torch.as_tensor(pred[i])).numpy()
            ax_xy.plot(xy[:, 0], xy[:, 1], ":", color=c, alpha=0.7)
            ax_xy.plot(xy[:, 2], xy[:, 3], "--", color=c, label=f"{label} bob 2")
        reach = pendulum.L1 + pendulum.L2
        ax_xy.plot([0], [0], "ko", ms=4)
        ax_xy.set_xlim(-1.1 * reach, 1.1 * reach)
        ax_xy.set_ylim(-1.1 * reach, 1.1 * reach)
        ax_xy.set_aspect("equal")
        ax_xy.set_xlabel("x (m)")
        ax_xy.set_ylabel("y (m)")
        ax_t1.set_title(f"test sample {i}")
    axes[0, 0].legend(fontsize=8)
    axes[0, 2].legend(fontsize=7, loc="upper right")
    fig.suptitle("Double pendulum: truth (black) and predictions from the state at t = 0 "
                 "(x-y: dotted bob 1, dashed bob 2)")
    return _save(fig, Path(path))


def plot_training_curves(histories: dict[str, list[dict[str, float]]], path: str | Path,
                         units: float = 1.0, ylabel: str = "MSE per element") -> Path:
    """Training (dashed) and validation (solid) loss per epoch for each model, log scale."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (model, history) in zip(colors, histories.items()):
        epochs = [row["epoch"] for row in history]
        label = LABELS.get(model, model)
        ax.plot(epochs, [row["val_loss"] * units for row in history], "-o", ms=3, color=c, label=f"{label} val")
        ax.plot(epochs, [row["train_loss"] * units for row in history], "--", color=c, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title("Double pendulum: training (dashed) and validation (solid) loss")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, Path(path))


def plot_energy_error(times: np.ndarray, curves: dict[str, np.ndarray], path: str | Path, n: int) -> Path:
    """Relative energy error against time on log-log axes, one line per solve (``curves``: label -> the max
    over the ``n`` trajectories at each output time). Exact zeros (t = 0) are left out of the log scale."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    keep = times > 0
    for label, error in curves.items():
        error = np.asarray(error)[keep]
        ax.plot(times[keep], np.where(error > 0, error, np.nan), lw=1.1, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t (s)")
    ax.set_ylabel("max relative energy error")
    ax.set_title(f"Double pendulum: |E(t) - E(0)| / E-scale, max over {n} trajectories", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, Path(path))
