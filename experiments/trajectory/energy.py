"""Long-horizon energy conservation of a conservative system under fixed-step and adaptive solvers
(``python -m experiments trajectory energy``; the double pendulum by default).

A Hamiltonian system keeps its total energy E constant along every exact trajectory. A symplectic method
(Gauss-Legendre collocation, implicit midpoint) keeps the energy error of a fixed step bounded, oscillating
without drift, over long times; non-symplectic ones (rk4, the adaptive dopri5 at any tolerance) let it
drift, roughly linearly in time. :func:`energy_study` integrates a few trajectories over a long horizon with
each method in one batched solve (:func:`experiments.trajectory.simulate.simulate`; implicit methods solve
their stage equations per trajectory) and reports the relative energy error

    |E(t) - E(0)| / max(|E(0)|, system.energy_scale())     ((m1 + m2) g (L1 + L2) for the double pendulum)

at every output time, its maximum over the trajectories up to each checkpoint time, and the cost: function
evaluations, steps, stage iterations and seconds. An adaptive solve steps all trajectories together, so
its step is set by the hardest one. The system must offer ``energy(y)`` and ``energy_scale()``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from experiments.trajectory.simulate import simulate
from experiments.trajectory.systems import System, get_system
from solvers import get_method

DEFAULT_SYSTEM = "double-pendulum"
DEFAULT_FIXED = ("gauss_legendre4", "rk4")
DEFAULT_ADAPTIVE = ("dopri5",)
DEFAULT_TOLERANCES = (1e-6, 1e-9)
DEFAULT_CHECKPOINTS = (1.0, 10.0, 100.0)


@dataclass
class EnergyRun:
    """One solve: ``label`` names the method and its step or tolerance; ``error (T, N)`` is the relative
    energy error of each trajectory at each output time."""

    method: str
    kind: str
    label: str
    step_size: float | None
    tol: float | None
    error: np.ndarray = field(repr=False)
    nfe: int
    n_steps: int
    n_stage: int
    """Iterations on the implicit stage equations (functional and Newton; 0 for explicit methods)."""
    seconds: float

    def max_error_until(self, times: np.ndarray, t: float) -> float:
        """max over trajectories and over output times <= t (to 1e-9 s) of the relative energy error."""
        return float(self.error[times <= t + 1e-9].max())


def check_settings(fixed: Sequence[str], adaptive: Sequence[str], step_size: float, tolerances: Sequence[float],
                   t_end: float, sample_every: float, checkpoints: Sequence[float], n: int) -> None:
    """ValueError naming the first bad setting (before any solve runs)."""
    for name in fixed:
        method = get_method(name)
        if method.adaptive or method.partitioned:
            raise ValueError(f"--fixed-solvers takes fixed-step methods of the whole state, got {name!r} "
                             f"({method.kind})")
    for name in adaptive:
        method = get_method(name)
        if not method.adaptive:
            raise ValueError(f"--adaptive-solvers takes adaptive methods, got {name!r} ({method.kind})")
    if not fixed and not adaptive:
        raise ValueError("nothing to run: give at least one of --fixed-solvers and --adaptive-solvers")
    for flag, value in (("--step-size", step_size), ("--t-end", t_end), ("--sample-every", sample_every),
                        *(("--tolerances", tol) for tol in tolerances), *(("--checkpoints", c) for c in checkpoints)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a positive finite number, got {value!r}")
    if adaptive and not tolerances:
        raise ValueError("adaptive solvers need at least one value in --tolerances")
    if sample_every > t_end:
        raise ValueError(f"--sample-every ({sample_every:g} s) must not exceed --t-end ({t_end:g} s)")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"--n must be a positive integer, got {n!r}")


def output_grid(t_end: float, sample_every: float) -> np.ndarray:
    """0, sample_every, 2 sample_every, ..., up to t_end (t_end itself always included)."""
    count = max(1, round(t_end / sample_every))
    if abs(count * sample_every - t_end) > 1e-9 * max(1.0, t_end):
        raise ValueError(f"--t-end ({t_end:g} s) must be a whole number of --sample-every ({sample_every:g} s)")
    return np.linspace(0.0, t_end, count + 1)


def conserves_energy(system: System) -> bool:
    """Whether ``system`` offers what the study asks for: ``energy(y)`` and ``energy_scale()``."""
    return callable(getattr(system, "energy", None)) and callable(getattr(system, "energy_scale", None))


def relative_energy_error(system: System, states: torch.Tensor) -> np.ndarray:
    """|E(t) - E(0)| / max(|E(0)|, energy scale) for states ``(N, T, d)`` -> ``(T, N)``."""
    energy = system.energy(states).T
    scale = torch.clamp(energy[0].abs(), min=system.energy_scale())
    return ((energy - energy[0]).abs() / scale).numpy()


def energy_study(n: int = 8, seed: int = 0, t_end: float = 100.0, sample_every: float = 0.1,
                 fixed: Sequence[str] = DEFAULT_FIXED, step_size: float = 0.02,
                 adaptive: Sequence[str] = DEFAULT_ADAPTIVE, tolerances: Sequence[float] = DEFAULT_TOLERANCES,
                 checkpoints: Sequence[float] = DEFAULT_CHECKPOINTS, system: System | None = None,
                 progress: bool = False) -> tuple[np.ndarray, list[EnergyRun]]:
    """Integrate ``n`` trajectories of ``system`` (default: the double pendulum; its own initial conditions,
    ``seed``) to ``t_end`` with every fixed method at ``step_size`` and every adaptive method at each
    tolerance (rtol = atol); float64.

    Returns the output times and one :class:`EnergyRun` per solve, in that order.
    """
    system = get_system(DEFAULT_SYSTEM) if system is None else system
    if not conserves_energy(system):
        raise ValueError(f"system {system.name!r} defines no conserved energy (energy(y) and energy_scale()); "
                         f"the energy study needs a conservative system such as double-pendulum or pendulum")
    check_settings(fixed, adaptive, step_size, tolerances, t_end, sample_every, checkpoints, n)
    times = output_grid(t_end, sample_every)
    y0 = system.initial_conditions(n, seed)
    plans: list[tuple[str, str, float | None, float | None]] = []
    plans += [(name, f"{name}, h = {step_size:g} s", step_size, None) for name in fixed]
    plans += [(name, f"{name}, tol = {tol:g}", None, tol) for name in adaptive for tol in tolerances]
    runs = []
    for name, label, h, tol in plans:
        if progress:
            print(f"   {label} ...", flush=True)
        tolerance = {} if tol is None else dict(rtol=tol, atol=tol)
        states, info = simulate(system, y0, times, name, step_size=h, progress=progress, **tolerance)
        runs.append(EnergyRun(name, info["solver_kind"], label, h, tol,
                              relative_energy_error(system, torch.as_tensor(states)), info["nfe"], info["n_steps"],
                              info["stage_iterations"], info["solve_seconds"]))
    return times, runs


def _marks(times: np.ndarray, checkpoints: Sequence[float]) -> list[float]:
    """The checkpoints within the horizon, in increasing order, ending with the horizon itself."""
    marks = sorted(float(c) for c in checkpoints if c <= times[-1] + 1e-9)
    if not marks or marks[-1] < times[-1] - 1e-9:
        marks.append(float(times[-1]))
    return marks


def markdown(times: np.ndarray, runs: list[EnergyRun], checkpoints: Sequence[float] = DEFAULT_CHECKPOINTS) -> str:
    """The table: max relative energy error up to each checkpoint (``_marks``), then the cost."""
    marks = _marks(times, checkpoints)
    header = ["method", *(f"max rel. energy error, t <= {c:g} s" for c in marks), "NFE", "steps",
              "stage iterations", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.label, *(f"{run.max_error_until(times, c):.2e}" for c in marks), str(run.nfe),
                 str(run.n_steps), str(run.n_stage) if "newton" in get_method(run.method).options else "-", f"{run.seconds:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(times: np.ndarray, runs: list[EnergyRun], settings: dict[str, Any],
            checkpoints: Sequence[float] = DEFAULT_CHECKPOINTS) -> dict[str, Any]:
    """Everything the table and the plot show: settings, per-run cost and checkpoint errors, and the curve
    (max over trajectories of the relative energy error at each output time)."""
    marks = _marks(times, checkpoints)
    return {"settings": settings, "times": times.tolist(), "runs": [
        {"method": r.method, "kind": r.kind, "label": r.label, "step_size": r.step_size, "tol": r.tol,
         "nfe": r.nfe, "n_steps": r.n_steps, "stage_iterations": r.n_stage, "seconds": r.seconds,
         "max_error_until": {f"{c:g}": r.max_error_until(times, c) for c in marks},
         "max_error_per_time": r.error.max(axis=1).tolist()} for r in runs]}
