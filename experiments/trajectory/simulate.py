"""Ground truth of a built-in system: every trajectory integrated in ONE batched ``solvers.odeint`` call
(float64; dopri5 at rtol = atol = 1e-12 by default; any registered solver by name).

Observation times are either a shared grid 0, dt, ..., (T-1) dt, or (``irregular=True``) each trajectory's
own: t_0 = 0 and gaps drawn independently and uniformly from [(1 - jitter) dt, (1 + jitter) dt]. Irregular
times are still one batched solve: trajectory i is integrated in a common clock s in [0, T-1] with
t_i(s) linear on each [j, j+1] from t_ij to t_i,j+1, i.e. dy/ds = (t_i,j+1 - t_ij) f(t_i(s), y); the outputs
at s = 0, 1, ..., T-1 are exactly each trajectory's observations, and the integers are declared as jumps of
the right-hand side (its rate changes there), so no step straddles one. Fixed-step methods take
``step_size`` in the system's time; with irregular times each interval gets ceil(largest gap / step_size)
equal substeps, so no trajectory's step exceeds ``step_size``.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from experiments.trajectory.data import Trajectories
from experiments.trajectory.flags import flag
from experiments.trajectory.systems import SYSTEMS, System, get_system, parse_params
from solvers import get_method, odeint

DEFAULT_METHOD = "dopri5"
DEFAULT_TOL = 1e-12
DEFAULT_FIXED_STEP = 1e-3


def param_pair(text: str) -> tuple[str, float]:
    """``"mu=2"`` -> ``("mu", 2.0)`` (the ``--param`` flag)."""
    try:
        (name, value), = parse_params([text]).items()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name, value


@dataclass(frozen=True)
class SimulationSettings:
    """What defines a generated data set: the system and its parameters, how many trajectories of how many
    observations, the time grid, the seed and the ground-truth solver. ``None`` takes the system's default."""

    system: str = field(default="damped-oscillator", metadata=flag(
        "built-in ODE system", choices=tuple(SYSTEMS)))
    params: tuple[tuple[str, float], ...] = field(default=(), metadata=flag(
        "a system parameter, NAME=VALUE (repeatable; e.g. --param mu=2 for van-der-pol)", option="--param",
        type=param_pair, action="append", metavar="NAME=VALUE"))
    n: int = field(default=500, metadata=flag("number of trajectories"))
    steps: int | None = field(default=None, metadata=flag(
        "observations per trajectory, the initial state included (default: the system's)", type=int))
    dt: float | None = field(default=None, metadata=flag(
        "observation spacing in the system's time unit (default: the system's)", type=float))
    irregular: bool = field(default=False, metadata=flag(
        "irregular observation times: each trajectory's own, gaps uniform in [(1-jitter) dt, (1+jitter) dt]"))
    jitter: float = field(default=0.8, metadata=flag("relative spread of the irregular gaps, in [0, 1)"))
    data_seed: int = field(default=0, metadata=flag("seed of the initial conditions and irregular times"))
    truth_solver: str = field(default=DEFAULT_METHOD, metadata=flag(
        "solver of the ground truth (any registered solvers method)"))
    truth_rtol: float = field(default=DEFAULT_TOL, metadata=flag("ground truth: relative tolerance (adaptive)"))
    truth_atol: float = field(default=DEFAULT_TOL, metadata=flag("ground truth: absolute tolerance (adaptive)"))
    truth_step_size: float | None = field(default=None, metadata=flag(
        f"ground truth: step of fixed-step solvers (default {DEFAULT_FIXED_STEP:g})", type=float))

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ValueError(f"unknown system {self.system!r}; known systems: {', '.join(SYSTEMS)}")
        self.build_system()  # unknown or invalid parameters
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 3:
            raise ValueError(f"the number of trajectories must be an integer >= 3, got {self.n!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 2):
            raise ValueError(f"observations per trajectory must be an integer >= 2, got {self.steps!r}")
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"the observation spacing dt must be a positive finite number, got {self.dt!r}")
        if not (math.isfinite(self.jitter) and 0 <= self.jitter < 1):
            raise ValueError(f"jitter must lie in [0, 1) (gaps uniform in [(1-jitter) dt, (1+jitter) dt]), "
                             f"got {self.jitter!r}")
        method = get_method(self.truth_solver)  # unknown: ValueError listing the known solvers
        if method.adaptive:
            for name in ("truth_rtol", "truth_atol"):
                value = getattr(self, name)
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        elif self.truth_step_size is not None and not (math.isfinite(self.truth_step_size) and self.truth_step_size > 0):
            raise ValueError(f"truth_step_size must be a positive finite number, got {self.truth_step_size!r}")

    def build_system(self) -> System:
        return get_system(self.system, **dict(self.params))

    @property
    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else SYSTEMS[self.system].default_steps

    @property
    def resolved_dt(self) -> float:
        return self.dt if self.dt is not None else SYSTEMS[self.system].default_dt


def observation_times(n: int, steps: int, dt: float, irregular: bool, jitter: float, seed: int) -> np.ndarray:
    """``(n, steps)`` observation times from 0: the grid k dt, or irregular gaps uniform in
    [(1 - jitter) dt, (1 + jitter) dt] (drawn from their own stream of ``seed``)."""
    if not irregular:
        return np.broadcast_to(np.arange(steps) * dt, (n, steps)).copy()
    gaps = np.random.default_rng([seed, 1]).uniform((1 - jitter) * dt, (1 + jitter) * dt, size=(n, steps - 1))
    return np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)


class _Clock:
    """f(t_i(s), y) * dt_i/ds: trajectory i's own times reached at the integers of a common clock s."""

    def __init__(self, f: System, times: Tensor) -> None:
        self.f, self.times = f, times  # times (N, T)
        self.gaps = times.diff(dim=1)  # (N, T-1)
        self.last = times.shape[1] - 2

    def __call__(self, s: Tensor, y: Tensor) -> Tensor:
        j = min(max(int(math.floor(float(s))), 0), self.last)
        rate = self.gaps[:, j]
        t = self.times[:, j] + (s - j) * rate
        return self.f(t, y) * rate.unsqueeze(-1)


class _Progress:
    """Wraps ``f(t, y)`` and advances a progress bar to the furthest (common) time it was asked about."""

    def __init__(self, f: Any, end: float, progress: bool, unit: str) -> None:
        self.f = f
        self.bar = tqdm(total=round(end, 6), desc="ground truth", disable=not progress,
                        bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} " + unit + " [{elapsed}]")

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        now = min(float(t), self.bar.total)
        if now > self.bar.n:
            self.bar.update(now - self.bar.n)
        return self.f(t, y)


def simulate(system: System, y0: np.ndarray, times: np.ndarray, method: str = DEFAULT_METHOD,
             rtol: float = DEFAULT_TOL, atol: float = DEFAULT_TOL, step_size: float | None = None,
             progress: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """States ``(N, T, d)`` of ``system`` from ``y0 (N, d)`` at ``times`` ((T,) shared or (N, T) per
    trajectory, each starting at its y0), in one batched float64 solve; and the solve's statistics."""
    spec = get_method(method)
    y = torch.as_tensor(np.asarray(y0, dtype=np.float64))
    times = np.asarray(times, dtype=np.float64)
    shared = times.ndim == 1 or bool(np.all(times == times[:1]))
    grid = torch.as_tensor(times if times.ndim == 1 else times[0]) if shared else None
    options: dict[str, Any] = spec.select(partition=(1,) * y.shape[-1], batch_rows=True)
    if spec.adaptive:
        step = None
    else:
        step = DEFAULT_FIXED_STEP if step_size is None else float(step_size)
    start = time.perf_counter()
    with torch.no_grad():
        if shared:
            f = _Progress(system, float(grid[-1]), progress, "time")
            states, stats = odeint(f, y, grid, method=method, step_size=step, rtol=rtol, atol=atol,
                                   return_stats=True, **options)
        else:
            t = torch.as_tensor(times)
            clock = torch.arange(times.shape[1], dtype=torch.float64)
            if step is not None:  # in clock units: every trajectory's step <= step_size
                step = 1.0 / math.ceil(float(np.diff(times, axis=1).max()) / step)
            f = _Progress(_Clock(system, t), float(clock[-1]), progress, "observations")
            states, stats = odeint(f, y, clock, method=method, step_size=step, rtol=rtol, atol=atol,
                                   jumps=clock[1:-1], return_stats=True, **options)
    f.bar.close()
    info = {"solver": method, "solver_kind": spec.kind, "rtol": rtol if spec.adaptive else None,
            "atol": atol if spec.adaptive else None, "step_size": None if spec.adaptive else step_size,
            "solve_seconds": time.perf_counter() - start, "nfe": stats.nfe, "n_steps": stats.n_steps,
            "stage_iterations": stats.stage_iterations}
    return states.transpose(0, 1).numpy(), info


def generate(settings: SimulationSettings, progress: bool = False) -> Trajectories:
    """Draw ``settings.n`` initial states and observation times and integrate them in one batched solve."""
    system = settings.build_system()
    steps, dt = settings.resolved_steps, settings.resolved_dt
    y0 = system.initial_conditions(settings.n, settings.data_seed)
    times = observation_times(settings.n, steps, dt, settings.irregular, settings.jitter, settings.data_seed)
    step = settings.truth_step_size if settings.truth_step_size is not None else DEFAULT_FIXED_STEP
    states, info = simulate(system, y0, times[0] if not settings.irregular else times, settings.truth_solver,
                            settings.truth_rtol, settings.truth_atol, step, progress)
    metadata = {"system": settings.system, "parameters": asdict(system.params), "n": settings.n, "steps": steps,
                "dt": dt, "irregular": settings.irregular, "jitter": settings.jitter if settings.irregular else None,
                "seed": settings.data_seed, "dtype": "float64", **info}
    return Trajectories(states, times, system.state_names, metadata)


def check_against_scipy(system: System, traj: Trajectories, k: int, tol: float = 1e-12) -> float:
    """max |states - scipy DOP853| over ``k`` trajectories spread evenly through ``traj``: each solved on its
    own by ``solve_ivp(method="DOP853", rtol=atol=tol)`` with ``system`` evaluated one state at a time."""
    from scipy.integrate import solve_ivp

    def f(t: float, y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return system(torch.tensor(t, dtype=torch.float64), torch.as_tensor(y)).numpy()

    idx = np.unique(np.linspace(0, traj.n - 1, max(1, min(k, traj.n))).round().astype(int))
    err = 0.0
    for i in idx:
        t = traj.times[i]
        sol = solve_ivp(f, (t[0], t[-1]), traj.states[i, 0], method="DOP853", t_eval=t, rtol=tol, atol=tol)
        err = max(err, float(np.abs(sol.y.T - traj.states[i]).max()))
    return err
