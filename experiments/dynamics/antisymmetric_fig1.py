"""AntisymmetricRNN (000) Fig. 1 and App. D Figs. 2-4: planar vanilla and feedback recurrences.

Fig. 1: vanilla h_t = tanh(W h_{t-1}) with W Gaussian (seed 0), identity, random orthogonal (seeds 0, 1);
feedback with W+, W-, W0, Wdiff (eps = 0.1), T = 50, the paper's three starts, the vector field tanh(W h)
drawn under the feedback panels. App. D: Fig. 2 vanilla with Gaussian W, seeds 1..16; Fig. 3 feedback with
W = M - M^T - 0.1 I, M Gaussian, seeds 1..16; Fig. 4 the four feedback matrices with N(0, 1) inputs.
Each function returns (figure, numbers) where the numbers are what the panels show.
"""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from experiments.dynamics import planar
from odernn.plots import draw_phase_portrait


def _panel(name: str, W: Tensor, traj: Tensor, kind: str) -> dict:
    r = traj.norm(dim=-1)
    eig = torch.linalg.eigvals(W)
    return {"name": name, "kind": kind, "W": W.tolist(),
            "eigenvalues": [[float(e.real), float(e.imag)] for e in eig],
            "initial_radius": r[0].tolist(), "final_radius": r[-1].tolist(),
            "radius_ratio": (r[-1] / r[0]).tolist(), "trajectory": traj.numpy().round(6).tolist()}


def _field(W: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda h: torch.tanh(h @ W.T)


def _grid_figure(panels: list[dict], ncols: int, fields: list, title: str) -> Figure:
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.9 * nrows), squeeze=False)
    for ax, panel, f in zip(axes.flat, panels, fields):
        label = panel["name"] + "\nr_T / r_0: " + ", ".join(f"{v:.2f}" for v in panel["radius_ratio"])
        draw_phase_portrait(ax, torch.tensor(panel["trajectory"]).numpy(), label, f=f)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def fig1(method: str = "euler", T: int = 50, eps: float = 0.1, options: dict | None = None) -> tuple[Figure, dict]:
    """The 8 panels of Fig. 1; feedback panels integrated with ``method``."""
    h0 = planar.starts()
    vanilla = {"(a) Gaussian W, seed 0": planar.gaussian_matrix(0),
               "(b) identity W": torch.eye(2, dtype=planar.DTYPE),
               "(c) orthogonal W, seed 0": planar.orthogonal_matrix(0),
               "(d) orthogonal W, seed 1": planar.orthogonal_matrix(1)}
    panels = [_panel(name, W, planar.vanilla_trajectory(W, h0, T), "vanilla") for name, W in vanilla.items()]
    fields: list = [None] * len(panels)
    for letter, name in zip("efgh", planar.FEEDBACK_MATRICES):
        W = planar.matrix(name)
        panels.append(_panel(f"({letter}) feedback {name}", W,
                             planar.feedback_trajectory(W, h0, T, eps, method, options=options), "feedback"))
        fields.append(_field(W))
    numbers = {"figure": "AntisymmetricRNN Fig. 1", "solver": method, "T": T, "eps": eps,
               "starts": h0.tolist(), "panels": panels}
    return _grid_figure(panels, 4, fields, f"AntisymmetricRNN Fig. 1 (feedback rows: {method}, eps={eps}, T={T})"), numbers


def appendix_vanilla(seeds: range = range(1, 17), T: int = 50) -> tuple[Figure, dict]:
    """App. D Fig. 2: vanilla RNNs with standard Gaussian W, one panel per seed."""
    h0 = planar.starts()
    panels = [_panel(f"seed {s}", W, planar.vanilla_trajectory(W, h0, T), "vanilla")
              for s in seeds for W in [planar.gaussian_matrix(s)]]
    numbers = {"figure": "AntisymmetricRNN App. D Fig. 2", "T": T, "seeds": list(seeds), "panels": panels}
    return _grid_figure(panels, 4, [None] * len(panels), "App. D Fig. 2: vanilla RNN, Gaussian W"), numbers


def appendix_feedback(method: str = "euler", seeds: range = range(1, 17), T: int = 50, eps: float = 0.1,
                      gamma: float = 0.1, options: dict | None = None) -> tuple[Figure, dict]:
    """App. D Fig. 3: feedback RNNs with W = M - M^T - gamma I (M Gaussian), one panel per seed."""
    h0 = planar.starts()
    mats = [planar.antisymmetric_gaussian(s, gamma) for s in seeds]
    panels = [_panel(f"seed {s}", W, planar.feedback_trajectory(W, h0, T, eps, method, options=options), "feedback")
              for s, W in zip(seeds, mats)]
    numbers = {"figure": "AntisymmetricRNN App. D Fig. 3", "solver": method, "T": T, "eps": eps, "gamma": gamma,
               "seeds": list(seeds), "panels": panels}
    title = f"App. D Fig. 3: feedback, W = M - M^T - {gamma} I ({method}, eps={eps})"
    return _grid_figure(panels, 4, [_field(W) for W in mats], title), numbers


def appendix_inputs(method: str = "euler", T: int = 50, eps: float = 0.1, seed: int = 0,
                    options: dict | None = None) -> tuple[Figure, dict]:
    """App. D Fig. 4: the four feedback matrices of Fig. 1 driven by independent N(0, 1) inputs."""
    h0 = planar.starts()
    x = torch.randn(T, len(h0), 2, generator=torch.Generator().manual_seed(seed), dtype=planar.DTYPE)
    panels, fields = [], []
    for name in planar.FEEDBACK_MATRICES:
        W = planar.matrix(name)
        panels.append(_panel(f"{name} + N(0,1) input", W,
                             planar.feedback_trajectory(W, h0, T, eps, method, x, options=options), "feedback"))
        fields.append(_field(W))
    numbers = {"figure": "AntisymmetricRNN App. D Fig. 4", "solver": method, "T": T, "eps": eps,
               "input_seed": seed, "panels": panels}
    return _grid_figure(panels, 4, fields, f"App. D Fig. 4: feedback with N(0,1) input ({method}, eps={eps})"), numbers
