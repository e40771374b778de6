"""AFRNN (002) section 4: Fig. 2-3 (trajectories) and Fig. 4 (accumulated Jacobians) of untrained models.

Fig. 2-3: the top layer of 2-ARNN and AFRNN (``build_rnn`` "arnn2" / "afrnn"), run without input from a
random start h0 ~ U(-1, 1) and from h0 + a perturbation of size ``delta``; the authors' notebook integrates
the same two-layer ODEs without input, 3 neurons per layer, up to t = 100, from uniform random starts
(defaults here: 3 units per layer, eps 0.01, 10000 steps). Reported: the top layer's largest |h| in
each tenth of the run (bounded vs growing) and the distance between the two runs' top layers over time.
Fig. 4: mean |eigenvalue| of the top-layer block of d s_T / d s_(T-j) against j, for LSTM, ARNN, 2-ARNN,
AFRNN and FRNN (authors' set-up: untrained, hidden 20, eps 0.01, gamma 0.01, inputs U(0, 1) (torch.rand),
T = 800, h_0 = 0, the "afrnn" initialisation: input weights N(0, 1), recurrent std 1/n), from products of
per-step Jacobians (``step_maps``).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from experiments.dynamics.step_maps import accumulated_jacobians, rollout, step_jacobians, step_map
from odernn import build_rnn
from odernn.plots import draw_curves, draw_trajectories

LABELS = {"lstm": "LSTM", "arnn": "ARNN", "arnn2": "2-ARNN", "afrnn": "AFRNN", "frnn": "FRNN"}
DTYPE = torch.float64


def build(name: str, hidden: int, solver: str, eps: float, gamma: float, seed: int,
          options: dict | None = None) -> torch.nn.Module:
    """An untrained model of Fig. 2-4 in float64 (LSTM ignores solver, step and gamma; ``options``: rtol,
    atol, max_steps of adaptive solvers)."""
    torch.manual_seed(seed)
    kw = {} if name == "lstm" else {"init": "afrnn"}
    if name != "lstm" and solver == "partitioned_euler" and name == "arnn":
        solver = "euler"  # one block: Gauss-Seidel Euler is forward Euler
    rnn = build_rnn(name, 1, hidden, solver=solver, step_size=eps, gamma=gamma, **kw).to(DTYPE)
    if options and name != "lstm":
        rnn.configure(**options)
    return rnn


def _tenths(values: np.ndarray) -> list[float]:
    return [float(chunk.max()) for chunk in np.array_split(values, 10)]


def trajectory_figure(solver: str = "euler", hidden: int = 3, steps: int = 10000, eps: float = 0.01, gamma: float = 0.01,
                 delta: float = 0.01, seed: int = 0, models: tuple[str, ...] = ("arnn2", "afrnn"),
                 options: dict | None = None) -> tuple[Figure, dict]:
    """Fig. 2-3: top-layer trajectories of each model from two nearby starts, no input."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(2, steps, 1, dtype=DTYPE)
    numbers: dict = {"figure": "AFRNN Fig. 2-3", "solver": solver, "hidden": hidden, "steps": steps, "eps": eps,
                     "gamma": gamma, "delta": delta, "seed": seed, "models": {}}
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 7.5), squeeze=False)
    t = eps * np.arange(steps + 1)
    for col, name in enumerate(models):
        rnn = build(name, hidden, solver, eps, gamma, seed, options)
        n = rnn.field.state_size
        h0 = 2 * torch.rand(n, generator=gen, dtype=DTYPE) - 1
        h0 = torch.stack([h0, h0 + delta * (2 * torch.rand(n, generator=gen, dtype=DTYPE) - 1)])
        with torch.no_grad():
            out, _ = rnn(x, h0)
        states = torch.cat([h0.unsqueeze(1), out], dim=1).numpy()
        top, bottom = states[..., rnn.readout_slice], states[..., rnn.field.blocks[0]]
        gap = np.linalg.norm(top[0] - top[1], axis=-1)
        numbers["models"][LABELS[name]] = {
            "top_max_abs_per_tenth": _tenths(np.abs(top[0]).max(axis=-1)),
            "top_norm_per_tenth": _tenths(np.linalg.norm(top[0], axis=-1)),
            "distance_initial": float(gap[0]), "distance_per_tenth": _tenths(gap), "distance_final": float(gap[-1]),
        }
        draw_trajectories(axes[0, col], t, top[0, :, :6], f"Fig. 2: top layer of {LABELS[name]} ({solver}, "
                                                          f"eps={eps})")
        for run, style in ((0, "-"), (1, "--")):
            axes[1, col].plot(bottom[run, :, 0], top[run, :, 0], style, lw=0.8, label=f"start {run + 1}")
        axes[1, col].set_title(f"Fig. 3: {LABELS[name]}, two starts {delta} apart", fontsize=9)
        axes[1, col].set_xlabel("bottom neuron 1")
        axes[1, col].set_ylabel("top neuron 1")
        axes[1, col].legend(fontsize=8)
    fig.tight_layout()
    return fig, numbers


def jacobian_figure(solver: str = "euler", hidden: int = 20, steps: int = 800, eps: float = 0.01,
                          gamma: float = 0.01, seed: int = 0,
                          models: tuple[str, ...] = ("lstm", "arnn", "arnn2", "afrnn", "frnn")) -> tuple[Figure, dict]:
    """Fig. 4: mean and max |eigenvalue| of the top block of d s_T / d s_(T-j), j = 1..T."""
    x = torch.rand(steps, 1, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    j = np.arange(1, steps + 1)
    numbers: dict = {"figure": "AFRNN Fig. 4", "solver": solver, "hidden": hidden, "steps": steps, "eps": eps,
                     "gamma": gamma, "seed": seed, "j": j.tolist(), "mean_abs_eig": {}, "max_abs_eig": {}}
    for name in models:
        model = build(name, hidden, solver, eps, gamma, seed)
        sm = step_map(model)
        with torch.no_grad():
            states = rollout(sm, x)
        acc = accumulated_jacobians(step_jacobians(sm, states, x).detach(), sm.top)
        mod = torch.linalg.eigvals(acc).abs()
        numbers["mean_abs_eig"][LABELS[name]] = mod.mean(-1).tolist()
        numbers["max_abs_eig"][LABELS[name]] = mod.amax(-1).tolist()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    draw_curves(axes[0], j, {k: np.asarray(v) for k, v in numbers["mean_abs_eig"].items()},
                f"Fig. 4: mean |eig| of d h_T / d h_(T-j) (top layer; {solver}, eps={eps}, gamma={gamma})",
                "j", "mean |eigenvalue|")
    draw_curves(axes[1], j, {k: np.asarray(v) for k, v in numbers["max_abs_eig"].items()},
                "max |eig| (the authors' notebook computes this one)", "j", "max |eigenvalue|")
    fig.tight_layout()
    return fig, numbers
