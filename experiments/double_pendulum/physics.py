"""The planar double pendulum: vector field (AFRNN paper eq. 19-20), total energy, bob positions and the
authors' initial conditions.

State convention (the authors' code): ``y = [theta1, omega1, theta2, omega2]`` in radians and rad/s, angles
measured from the downward vertical, in the last dimension of a tensor of any batch shape.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

STATE_NAMES = ("theta1", "omega1", "theta2", "omega2")


@dataclass(frozen=True)
class DoublePendulum:
    """Masses ``m1, m2`` (kg), rod lengths ``L1, L2`` (m) and gravity ``g`` (m/s^2); the paper's defaults.

    Calling the instance evaluates the vector field ``f(t, y)`` in torchdiffeq's convention.
    """

    m1: float = 1.0
    m2: float = 1.0
    L1: float = 1.0
    L2: float = 1.0
    g: float = 9.8

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"double pendulum parameter {name} must be a positive finite number, got {value!r}")

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        """dy/dt for states ``y`` of shape ``(..., 4)``: eq. 19 gives theta1'', eq. 20 gives theta2''."""
        _check_state(y)
        th1, w1, th2, w2 = y.unbind(-1)
        m1, m2, L1, L2, g = self.m1, self.m2, self.L1, self.L2, self.g
        d = th1 - th2
        sin_d, cos_d = torch.sin(d), torch.cos(d)
        den = 2 * m1 + m2 - m2 * torch.cos(2 * d)
        acc1 = (-g * (2 * m1 + m2) * torch.sin(th1) - m2 * g * torch.sin(th1 - 2 * th2)
                - 2 * sin_d * m2 * (w2 * w2 * L2 + w1 * w1 * L1 * cos_d)) / (L1 * den)  # eq. 19
        acc2 = (2 * sin_d * (w1 * w1 * L1 * (m1 + m2) + g * (m1 + m2) * torch.cos(th1)
                             + w2 * w2 * L2 * m2 * cos_d)) / (L2 * den)  # eq. 20
        return torch.stack((w1, acc1, w2, acc2), dim=-1)

    def energy(self, y: Tensor) -> Tensor:
        """Total energy T + V (J) of states ``(..., 4)``; V = 0 with both rods horizontal at the pivot height."""
        _check_state(y)
        th1, w1, th2, w2 = y.unbind(-1)
        m1, m2, L1, L2, g = self.m1, self.m2, self.L1, self.L2, self.g
        kinetic = 0.5 * (m1 + m2) * (L1 * w1) ** 2 + 0.5 * m2 * (L2 * w2) ** 2 \
            + m2 * L1 * L2 * w1 * w2 * torch.cos(th1 - th2)
        potential = -(m1 + m2) * g * L1 * torch.cos(th1) - m2 * g * L2 * torch.cos(th2)
        return kinetic + potential

    def positions(self, y: Tensor) -> Tensor:
        """Cartesian positions ``(..., 4) = [x1, y1, x2, y2]`` of the two bobs (pivot at 0, y upwards)."""
        _check_state(y)
        th1, _, th2, _ = y.unbind(-1)
        x1, y1 = self.L1 * torch.sin(th1), -self.L1 * torch.cos(th1)
        return torch.stack((x1, y1, x1 + self.L2 * torch.sin(th2), y1 - self.L2 * torch.cos(th2)), dim=-1)


def _check_state(y: Tensor) -> None:
    if y.shape[-1:] != (4,):
        raise ValueError(f"double pendulum states need a last dimension of 4 {STATE_NAMES}, got shape {tuple(y.shape)}")


def initial_conditions(n: int, seed: int, max_degrees: float = 90.0) -> np.ndarray:
    """``n`` initial states as in the authors' code: each of theta1, omega1, theta2, omega2 drawn uniformly
    from ``[-max_degrees, max_degrees]`` in degrees (deg/s for the velocities), returned in radians ``(n, 4)``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of trajectories must be a positive integer, got {n!r}")
    if not (math.isfinite(max_degrees) and max_degrees > 0):
        raise ValueError(f"max_degrees must be a positive finite number, got {max_degrees!r}")
    degrees = np.random.default_rng(seed).uniform(-max_degrees, max_degrees, size=(n, 4))
    return np.radians(degrees)


def output_times(n_steps: int = 30, dt: float = 0.1) -> np.ndarray:
    """The authors' output grid 0, dt, ..., (n_steps - 1) dt (0, 0.1, ..., 2.9 s by default)."""
    if not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"the output spacing dt must be a positive finite number, got {dt!r}")
    return np.arange(n_steps) * dt
