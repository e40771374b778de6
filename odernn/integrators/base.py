"""The integrator interface: how ``ODERNN`` turns a field, a start state and an input sequence into states.

An integrator is resolved once from a registered method (``odernn.integrators.resolve``) and has one entry
point, ``integrate(field, h0, x, grid, settings) -> Solution``. Time/input alignment (the same for every
integrator): h_0 sits at t_0 and h_k at t_k (``Grid``: by default t_k = k * step_size; or the caller's
times, shared or per sample); the sample x_k is held on (t_{k-1}, t_k] (``interpolation="hold"``) or
interpolated linearly from x_k at t_{k-1} to x_{k+1} at t_k (``"linear"``, the last sample held); the grid
times are jumps of the right-hand side (``solvers.jumps``).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

import solvers
from solvers import NewtonOptions, SolveStats
from solvers import DEFAULT_MAX_STEPS, StepController

from ..fields.base import VectorField
from ..inputs import check_interpolation
from .grid import Grid


@dataclass(frozen=True)
class Settings:
    """The numerical settings of one forward, validated by ``ODERNN`` where they enter.

    ``step_size`` is the grid spacing eps, ``substeps`` the fixed steps per grid interval, ``rtol``,
    ``atol`` and ``max_steps`` (step attempts) the adaptive controller's, ``newton`` the implicit methods'
    stage solver, ``adjoint`` the adaptive solvers' torchdiffeq adjoint.
    """

    step_size: float
    substeps: int = 1
    interpolation: str = "hold"
    rtol: float = 1e-6
    atol: float = 1e-8
    max_steps: int = DEFAULT_MAX_STEPS
    newton: NewtonOptions = NewtonOptions()
    adjoint: bool = False

    def __post_init__(self) -> None:
        step = self.step_size
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
            raise ValueError(f"step_size must be a positive finite number, got {step!r}")
        substeps = self.substeps
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps must be an integer >= 1, got {substeps!r}")
        check_interpolation(self.interpolation)
        StepController(rtol=self.rtol, atol=self.atol, max_steps=self.max_steps)  # the controller's rules
        if not isinstance(self.newton, NewtonOptions):
            raise ValueError(f"newton must be a solvers.NewtonOptions, got {type(self.newton).__name__}")
        object.__setattr__(self, "step_size", float(step))
        object.__setattr__(self, "rtol", float(self.rtol))
        object.__setattr__(self, "atol", float(self.atol))
        object.__setattr__(self, "adjoint", bool(self.adjoint))


class Solution(NamedTuple):
    """states (T, B, n) = h_1..h_T, h_T (B, n), and the solve's statistics."""

    states: Tensor
    last: Tensor
    stats: SolveStats


class Integrator(ABC):
    """One way of integrating a field over a sequence with a registered ``method`` (``solvers.Method``)."""

    def __init__(self, method: solvers.Method) -> None:
        self.method = method

    @classmethod
    def supports(cls, method: solvers.Method, field: VectorField, settings: Settings) -> bool:
        """Whether this integrator can run ``method`` on ``field`` with ``settings`` (asked once, on resolve)."""
        return True

    @abstractmethod
    def integrate(self, field: VectorField, h0: Tensor, x: Tensor, grid: Grid, settings: Settings) -> Solution:
        """h0 (B, n) at grid t_0, x (T, B, m) time-major raw inputs, ``grid`` the times of h_0..h_T."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.method.name!r})"


def held_input_everywhere(method: solvers.Method, settings: Settings) -> bool:
    """Whether every stage of every step sees the held sample of its interval: always with ``hold``; with
    ``linear`` only when one step per interval evaluates at its left end alone (all c_i = 0)."""
    if settings.interpolation == "hold":
        return True
    return settings.substeps == 1 and method.tableau is not None and not any(method.tableau.c)


def fixed_stats(steps: int, stages: int) -> SolveStats:
    return SolveStats(nfe=steps * stages, n_steps=steps, n_accepted=steps)

