"""Pictures of recurrent dynamics: stability regions with eigenvalue clouds, phase portraits, trajectories.

Every function draws with matplotlib's Agg backend (no display needed). Functions taking ``ax`` draw into
one axes; ``stability_region_figure`` builds a whole figure; ``save_figure`` writes a PNG atomically
(temporary file in the destination folder, then ``os.replace``).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import solvers  # noqa: E402

__all__ = ["save_figure", "stability_region_figure", "amplification_figure", "draw_phase_portrait", "draw_vector_field", "draw_trajectories", "draw_curves"]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a figure gets the permissions of any other output
    try:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def stability_region_figure(methods: Sequence[str], z: np.ndarray | None = None, outside: np.ndarray | None = None,
                            title: str = "", max_points: int = 20000) -> Figure:
    """Stability regions of the chosen methods (``solvers.plot_stability_region``) with the eigenvalue cloud
    z = step * lambda of a run drawn on them; points flagged in ``outside`` are redrawn in red."""
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    cloud = None
    if z is not None:
        z = np.asarray(z, dtype=complex).ravel()
        keep = np.linspace(0, z.size - 1, min(z.size, max_points)).astype(int)
        cloud = z[keep]
        flags = None if outside is None else np.asarray(outside).ravel()[keep]
    solvers.plot_stability_region([m for m in methods if solvers.get_method(m).tableau is not None],
                                  eigenvalues=cloud, ax=ax)
    if cloud is not None and flags is not None and flags.any():
        handles = list(ax.get_legend().legend_handles)
        handles.append(ax.scatter(cloud.real[flags], cloud.imag[flags], s=14, c="crimson", marker="x", zorder=4,
                                  label=f"outside ({int(flags.sum())} shown)"))
        ax.legend(handles=handles, loc="upper left", fontsize="small")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def amplification_figure(mu: np.ndarray, z: np.ndarray, title: str = "", max_points: int = 20000) -> Figure:
    """For schemes without a scalar R(z) (partitioned Euler): left, z = step * lambda on forward Euler's region
    for reference; right, the eigenvalues mu of the scheme's amplification matrices against the unit circle."""
    keep = np.linspace(0, np.size(mu) - 1, min(np.size(mu), max_points)).astype(int)
    mu, z = np.asarray(mu).ravel()[keep], np.asarray(z).ravel()[keep]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 5.4))
    solvers.plot_stability_region(["euler"], eigenvalues=z, ax=left)
    left.set_title("z = step * lambda on forward Euler's region (reference)", fontsize=9)
    angle = np.linspace(0, 2 * np.pi, 400)
    right.plot(np.cos(angle), np.sin(angle), color="C0", lw=1.3, label="|mu| = 1")
    outside = np.abs(mu) > 1 + 1e-12
    right.scatter(mu.real[~outside], mu.imag[~outside], s=10, c="k", marker="x", label="|mu| <= 1")
    right.scatter(mu.real[outside], mu.imag[outside], s=10, c="crimson", marker="x", label="|mu| > 1")
    right.set_aspect("equal")
    right.set_xlabel("Re mu")
    right.set_ylabel("Im mu")
    right.legend(loc="upper left", fontsize="small")
    right.set_title("eigenvalues of the amplification matrices", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return fig


def draw_vector_field(ax: Axes, f: Callable[[torch.Tensor], torch.Tensor], lim: float = 1.0, n: int = 15) -> None:
    """Quiver of a planar field f(h) (h ``(N, 2)`` -> ``(N, 2)``) on [-lim, lim]^2, drawn under the data."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    v = f(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)).reshape(n, n, 2)
    ax.quiver(xx.numpy(), yy.numpy(), v[..., 0].numpy(), v[..., 1].numpy(), color="0.65", width=0.004,
              zorder=0, angles="xy")


def draw_phase_portrait(ax: Axes, traj: np.ndarray, title: str = "", lim: float = 1.0,
                        f: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
    """Planar trajectories ``(T+1, S, 2)``: later steps more opaque, starts as stars, optional field under."""
    traj = np.asarray(traj)
    if f is not None:
        draw_vector_field(ax, f, lim)
    steps = traj.shape[0]
    alpha = np.linspace(0.15, 1.0, steps)
    for s in range(traj.shape[1]):
        color = matplotlib.colors.to_rgba(f"C{s}")
        colors = np.tile(color, (steps, 1))
        colors[:, 3] = alpha
        ax.scatter(traj[:, s, 0], traj[:, s, 1], s=7, c=colors, zorder=2)
        ax.scatter(traj[0, s, 0], traj[0, s, 1], marker="*", s=90, c=[color], edgecolors="k", zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)


def draw_trajectories(ax: Axes, t: np.ndarray, values: np.ndarray, title: str = "") -> None:
    """Lines of ``values`` ``(T, k)`` against t, one per column."""
    values = np.asarray(values)
    for j in range(values.shape[1]):
        ax.plot(t, values[:, j], lw=0.9, color=f"C{j}")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("t")


def draw_curves(ax: Axes, x: np.ndarray, curves: Mapping[str, np.ndarray], title: str = "", xlabel: str = "",
                ylabel: str = "", logy: bool = False) -> None:
    """One labelled line per entry of ``curves`` against x."""
    for name, y in curves.items():
        ax.plot(x, y, lw=1.2, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
