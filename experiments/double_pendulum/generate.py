"""Ground truth for the double pendulum: every trajectory integrated in ONE batched ``solvers.odeint`` call,
saved to and loaded from a ``.npz`` file (written atomically) with its metadata.

Default: dopri5 at rtol = atol = 1e-12 in float64 (the authors used scipy's LSODA at default tolerances;
tests check ours against scipy's DOP853 at 1e-12 and against energy conservation).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from experiments.io import atomic_path
from experiments.double_pendulum.physics import DoublePendulum, initial_conditions, output_times
from solvers import get_method, odeint

DEFAULT_METHOD = "dopri5"
DEFAULT_TOL = 1e-12
DEFAULT_FIXED_STEP = 1e-3
_ARRAYS = ("states", "times", "initial_conditions")


@dataclass
class GroundTruth:
    """``states (N, T, 4)`` at ``times (T,)`` from ``initial_conditions (N, 4)`` (radians), with metadata."""

    states: np.ndarray
    times: np.ndarray
    initial_conditions: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def pendulum(self) -> DoublePendulum:
        return DoublePendulum(**self.metadata.get("parameters", {}))


class _SimulatedTimeBar:
    """Wraps ``f(t, y)`` and advances a progress bar to the furthest simulated time it was asked about."""

    def __init__(self, f: DoublePendulum, t_end: float, progress: bool) -> None:
        self.f = f
        self.bar = tqdm(total=round(t_end, 6), unit="s simulated", desc="ground truth", disable=not progress,
                        bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} s simulated [{elapsed}]")

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        now = min(float(t), self.bar.total)
        if now > self.bar.n:
            self.bar.update(now - self.bar.n)
        return self.f(t, y)


def generate(
    n: int = 1000,
    seed: int = 0,
    pendulum: DoublePendulum = DoublePendulum(),
    method: str = DEFAULT_METHOD,
    rtol: float = DEFAULT_TOL,
    atol: float = DEFAULT_TOL,
    step_size: float | None = None,
    times: np.ndarray | None = None,
    max_degrees: float = 90.0,
    progress: bool = True,
) -> GroundTruth:
    """Draw ``n`` initial conditions (authors' ranges) and integrate all of them in one batched solve.

    ``method`` is any registered ``solvers`` name; fixed-step, implicit and partitioned methods use
    ``step_size`` (default 1e-3 s), adaptive ones ``rtol``/``atol``. Solved in float64. Implicit methods solve
    Newton's stage equations per trajectory (``batch_rows=True``: (N, s 4, s 4) systems, not one of size
    s 4 N), and the metadata records their Newton iterations.
    """
    spec = get_method(method)  # raises ValueError listing the known names
    kind = spec.kind
    if spec.adaptive:
        for name, tol in (("rtol", rtol), ("atol", atol)):
            if not (math.isfinite(tol) and tol > 0):
                raise ValueError(f"{name} must be a positive finite number, got {tol!r}")
        step_size = None
    else:
        step_size = DEFAULT_FIXED_STEP if step_size is None else step_size
        if not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"step_size must be a positive finite number, got {step_size!r}")
    times = output_times() if times is None else np.asarray(times, dtype=np.float64)
    y0 = initial_conditions(n, seed, max_degrees)
    y0_t, t_t = torch.as_tensor(y0, dtype=torch.float64), torch.as_tensor(times, dtype=torch.float64)
    options: dict[str, Any] = spec.select(partition=(1, 1, 1, 1), batch_rows=True)
    f = _SimulatedTimeBar(pendulum, float(times[-1]), progress)
    start = time.perf_counter()
    with torch.no_grad():
        states, stats = odeint(f, y0_t, t_t, method=method, step_size=step_size, rtol=rtol, atol=atol,
                               return_stats=True, **options)
    seconds = time.perf_counter() - start
    f.bar.close()
    metadata = {
        "n": n, "seed": seed, "solver": method, "solver_kind": kind,
        "rtol": rtol if spec.adaptive else None, "atol": atol if spec.adaptive else None,
        "step_size": step_size, "dtype": "float64", "max_degrees": max_degrees,
        "parameters": asdict(pendulum), "solve_seconds": seconds, "nfe": stats.nfe, "n_steps": stats.n_steps,
        "n_newton": stats.n_newton, "n_functional": stats.n_functional,
        "state_names": ["theta1", "omega1", "theta2", "omega2"],
    }
    return GroundTruth(states.transpose(0, 1).numpy(), times, y0, metadata)


def relative_energy_drift(truth: GroundTruth) -> np.ndarray:
    """Per trajectory, max over time of |E(t) - E(0)| / max(|E(0)|, characteristic scale m g L)."""
    p = truth.pendulum
    energy = p.energy(torch.as_tensor(truth.states)).numpy()
    scale = np.maximum(np.abs(energy[:, :1]), (p.m1 + p.m2) * p.g * (p.L1 + p.L2))
    return np.max(np.abs(energy - energy[:, :1]) / scale, axis=1)


def save(truth: GroundTruth, path: str | Path) -> Path:
    """Write ``truth`` to ``path`` (``.npz``) atomically: a complete file or none."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, states=truth.states, times=truth.times, initial_conditions=truth.initial_conditions,
                 metadata=np.array(json.dumps(truth.metadata)))
    return path


def load(path: str | Path) -> GroundTruth:
    """Read a file written by :func:`save`, checking that it holds what the task needs."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no double-pendulum data at {path}: expected a .npz file written by "
                         f"`python -m experiments double-pendulum generate --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {k: data[k] for k in data.files}
    except Exception as exc:  # zip, pickle and format errors from a foreign or truncated file
        raise ValueError(f"{path} is not a readable double-pendulum .npz file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in (*_ARRAYS, "metadata") if k not in contents]
    if missing:
        raise ValueError(f"{path} lacks {missing}; a double-pendulum data file holds {[*_ARRAYS, 'metadata']}")
    try:
        arrays = {k: np.asarray(contents[k], dtype=np.float64) for k in _ARRAYS}
        metadata = json.loads(str(contents["metadata"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: arrays must be numeric and metadata a JSON string ({exc})") from exc
    _check_arrays(path, **arrays)
    return GroundTruth(metadata=metadata, **arrays)


def _check_arrays(path: Path, states: np.ndarray, times: np.ndarray, initial_conditions: np.ndarray) -> None:
    n = states.shape[0] if states.ndim == 3 else -1
    if states.ndim != 3 or states.shape[2] != 4 or times.shape != (states.shape[1],) \
            or initial_conditions.shape != (n, 4) or states.shape[1] < 2:
        raise ValueError(f"{path}: expected states (N, T>=2, 4), times (T,), initial_conditions (N, 4); got "
                         f"{states.shape}, {times.shape}, {initial_conditions.shape}")
    if not (np.isfinite(states).all() and np.isfinite(times).all()):
        raise ValueError(f"{path}: states or times contain NaN or Inf")
