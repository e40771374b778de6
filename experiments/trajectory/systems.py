"""Built-in ODE systems: each an ``f(t, y)`` ``nn.Module`` (torchdiffeq's convention) whose physical
parameters and initial-condition ranges are one frozen dataclass, ``System.Params``.

| name | state | equations | initial conditions (uniform, independent) |
|---|---|---|---|
| pendulum | (theta, omega) | theta' = omega, omega' = -(g/L) sin theta - damping omega | theta in [-max_angle, max_angle], omega in [-max_velocity, max_velocity] |
| damped-oscillator | (x, v) | x' = v, v' = -omega^2 x - 2 zeta omega v | x, v in [-amplitude, amplitude] |
| van-der-pol | (x, v) | x' = v, v' = mu (1 - x^2) v - x | x, v in [-amplitude, amplitude] |
| lorenz63 | (x, y, z) | x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z | x, y in [-xy_range, xy_range], z in [z_min, z_max] |
| fitzhugh-nagumo | (v, w) | v' = v - v^3/3 - w + I, w' = eps (v + a - b w) (I 0.5, a 0.7, b 0.8, eps 0.02) | v in [-max_v, max_v], w = 0 |
| double-pendulum | (theta1, omega1, theta2, omega2) | AFRNN paper eq. 19-20 | each in [-max_degrees, max_degrees] degrees (deg/s), the authors' ranges |

Conservative systems (pendulum without damping, double-pendulum) also give ``energy(y)`` and
``energy_scale()``, which the long-horizon energy study (:mod:`experiments.trajectory.energy`) asks for.

Every system is autonomous: ``t`` is accepted (a 0-d tensor, or one time per row) and ignored. States have
the state in the last dimension and any batch shape in front. ``get_system(name, **params)`` builds one by
name; unknown names and parameters fail listing the known ones.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn



def _check_positive(params: Any, *names: str, allow_zero: tuple[str, ...] = ()) -> None:
    """Every named field of ``params`` must be finite and > 0 (>= 0 for those in ``allow_zero``)."""
    for name in names:
        value = getattr(params, name)
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if name in allow_zero else value > 0)
        if not ok:
            bound = ">= 0" if name in allow_zero else "> 0"
            raise ValueError(f"{type(params).__qualname__.split('.')[0]} parameter {name} must be a finite number "
                             f"{bound}, got {value!r}")


class System(nn.Module):
    """Base of the built-in systems: ``forward(t, y) -> dy/dt`` and ``initial_conditions(n, seed)``.

    Subclasses set ``name``, ``Params`` (a frozen dataclass of floats, validated on creation),
    ``state_names``, and the default observation grid ``default_dt`` (spacing) and ``default_steps``
    (observations per trajectory, the initial state included).
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    state_names: ClassVar[tuple[str, ...]]
    default_dt: ClassVar[float]
    default_steps: ClassVar[int]

    def __init__(self, params: Any = None, **overrides: float) -> None:
        super().__init__()
        if params is not None and overrides:
            raise ValueError("pass either a Params instance or keyword overrides, not both")
        if params is None:
            known = [f.name for f in fields(self.Params)]
            unknown = sorted(set(overrides) - set(known))
            if unknown:
                raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for system {self.name!r}; "
                                 f"known: {', '.join(known)}")
            params = self.Params(**{k: float(v) for k, v in overrides.items()})
        elif not isinstance(params, self.Params):
            raise ValueError(f"params of {self.name!r} must be a {self.Params.__qualname__}, got {type(params).__name__}")
        self.params = params

    @property
    def dim(self) -> int:
        """Number of state variables."""
        return len(self.state_names)

    def check_state(self, y: Tensor) -> None:
        if not isinstance(y, Tensor) or y.shape[-1:] != (self.dim,):
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{self.name} states need a last dimension of {self.dim} {self.state_names}, got {shape}")

    def initial_conditions(self, n: int, seed: int) -> np.ndarray:
        """``n`` initial states ``(n, dim)`` (float64) drawn from the documented distribution, seeded."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of trajectories must be a positive integer, got {n!r}")
        return self._draw(n, np.random.default_rng(seed))

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in asdict(self.params).items())


class Pendulum(System):
    """The planar pendulum with linear damping: theta'' = -(g/L) sin theta - damping * theta'."""

    @dataclass(frozen=True)
    class Params:
        g: float = 9.81
        L: float = 1.0
        damping: float = 0.0
        max_angle: float = 2.0  # rad; initial angle uniform in [-max_angle, max_angle]
        max_velocity: float = 1.0  # rad/s; initial angular velocity uniform in [-max_velocity, max_velocity]

        def __post_init__(self) -> None:
            _check_positive(self, "g", "L", "damping", "max_angle", "max_velocity",
                            allow_zero=("damping", "max_velocity"))

    name = "pendulum"
    state_names = ("theta", "omega")
    default_dt = 0.1
    default_steps = 30

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.check_state(y)
        theta, omega = y.unbind(-1)
        p = self.params
        return torch.stack((omega, -(p.g / p.L) * torch.sin(theta) - p.damping * omega), dim=-1)

    def energy(self, y: Tensor) -> Tensor:
        """Energy per unit mass and squared length: omega^2 / 2 - (g/L) cos theta (conserved without damping)."""
        self.check_state(y)
        theta, omega = y.unbind(-1)
        return 0.5 * omega**2 - (self.params.g / self.params.L) * torch.cos(theta)

    def energy_scale(self) -> float:
        """The characteristic energy g / L that relative energy errors are measured against."""
        return self.params.g / self.params.L

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        return np.stack((rng.uniform(-p.max_angle, p.max_angle, n),
                         rng.uniform(-p.max_velocity, p.max_velocity, n)), axis=-1)


class _SquareStart:
    """Initial states (x, v) uniform in [-amplitude, amplitude]^2 (``Params.amplitude``)."""

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        a = self.params.amplitude
        return rng.uniform(-a, a, size=(n, 2))


class DampedOscillator(_SquareStart, System):
    """The linear damped harmonic oscillator x'' + 2 zeta omega x' + omega^2 x = 0."""

    @dataclass(frozen=True)
    class Params:
        omega: float = 2.0  # natural angular frequency (rad/s)
        zeta: float = 0.1  # damping ratio
        amplitude: float = 1.0  # x and v start uniform in [-amplitude, amplitude]

        def __post_init__(self) -> None:
            _check_positive(self, "omega", "zeta", "amplitude", allow_zero=("zeta",))

    name = "damped-oscillator"
    state_names = ("x", "v")
    default_dt = 0.1
    default_steps = 30

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.check_state(y)
        x, v = y.unbind(-1)
        p = self.params
        return torch.stack((v, -p.omega**2 * x - 2.0 * p.zeta * p.omega * v), dim=-1)



class VanDerPol(_SquareStart, System):
    """The Van der Pol oscillator x'' - mu (1 - x^2) x' + x = 0 (a limit cycle of amplitude ~2)."""

    @dataclass(frozen=True)
    class Params:
        mu: float = 1.0
        amplitude: float = 3.0  # x and v start uniform in [-amplitude, amplitude]

        def __post_init__(self) -> None:
            _check_positive(self, "mu", "amplitude", allow_zero=("mu",))

    name = "van-der-pol"
    state_names = ("x", "v")
    default_dt = 0.2
    default_steps = 30

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.check_state(y)
        x, v = y.unbind(-1)
        return torch.stack((v, self.params.mu * (1.0 - x * x) * v - x), dim=-1)



class Lorenz63(System):
    """Lorenz's 1963 convection model (chaotic at the classic sigma = 10, rho = 28, beta = 8/3)."""

    @dataclass(frozen=True)
    class Params:
        sigma: float = 10.0
        rho: float = 28.0
        beta: float = 8.0 / 3.0
        xy_range: float = 15.0  # x, y start uniform in [-xy_range, xy_range]
        z_min: float = 10.0  # z starts uniform in [z_min, z_max]
        z_max: float = 40.0

        def __post_init__(self) -> None:
            _check_positive(self, "sigma", "rho", "beta", "xy_range")
            if not (math.isfinite(self.z_min) and math.isfinite(self.z_max) and self.z_min <= self.z_max):
                raise ValueError(f"Lorenz63 parameters need finite z_min <= z_max, got {self.z_min!r}, {self.z_max!r}")

    name = "lorenz63"
    state_names = ("x", "y", "z")
    default_dt = 0.02
    default_steps = 40

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.check_state(y)
        a, b, c = y.unbind(-1)
        p = self.params
        return torch.stack((p.sigma * (b - a), a * (p.rho - c) - b, a * b - p.beta * c), dim=-1)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        return np.stack((rng.uniform(-p.xy_range, p.xy_range, n), rng.uniform(-p.xy_range, p.xy_range, n),
                         rng.uniform(p.z_min, p.z_max, n)), axis=-1)


class FitzHughNagumo(System):
    """The FitzHugh-Nagumo neuron, v' = v - v^3 / 3 - w + I, w' = eps (v + a - b w), as the LEM authors' task
    draws it: v starts uniform in [-max_v, max_v], w at 0, 1001 observations over 0..400."""

    @dataclass(frozen=True)
    class Params:
        I: float = 0.5
        a: float = 0.7
        b: float = 0.8
        eps: float = 0.02
        max_v: float = 1.0  # v starts uniform in [-max_v, max_v]; w at 0

        def __post_init__(self) -> None:
            _check_positive(self, "eps", "max_v")
            for name in ("I", "a", "b"):
                if not math.isfinite(getattr(self, name)):
                    raise ValueError(f"FitzHughNagumo parameter {name} must be finite, got {getattr(self, name)!r}")

    name = "fitzhugh-nagumo"
    state_names = ("v", "w")
    default_dt = 0.4
    default_steps = 1001

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.check_state(y)
        v, w = y.unbind(-1)
        p = self.params
        return torch.stack((v - v**3 / 3 - w + p.I, p.eps * (v + p.a - p.b * w)), dim=-1)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack((rng.uniform(-self.params.max_v, self.params.max_v, n), np.zeros(n)), axis=-1)


class DoublePendulum(System):
    """The planar double pendulum of the AFRNN paper (Section 5.3): state ``[theta1, omega1, theta2, omega2]``
    in radians and rad/s, angles from the downward vertical (the authors' convention); eq. 19 gives theta1'',
    eq. 20 theta2''. Initial conditions as the authors' code: each variable uniform in
    [-max_degrees, max_degrees] degrees (deg/s), converted to radians."""

    @dataclass(frozen=True)
    class Params:
        m1: float = 1.0
        m2: float = 1.0
        L1: float = 1.0
        L2: float = 1.0
        g: float = 9.8
        max_degrees: float = 90.0  # each state variable uniform in [-max_degrees, max_degrees] deg (deg/s)

        def __post_init__(self) -> None:
            _check_positive(self, "m1", "m2", "L1", "L2", "g", "max_degrees")

    name = "double-pendulum"
    state_names = ("theta1", "omega1", "theta2", "omega2")
    default_dt = 0.1
    default_steps = 30

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.check_state(y)
        th1, w1, th2, w2 = y.unbind(-1)
        p = self.params
        m1, m2, L1, L2, g = p.m1, p.m2, p.L1, p.L2, p.g
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
        self.check_state(y)
        th1, w1, th2, w2 = y.unbind(-1)
        p = self.params
        kinetic = 0.5 * (p.m1 + p.m2) * (p.L1 * w1) ** 2 + 0.5 * p.m2 * (p.L2 * w2) ** 2 \
            + p.m2 * p.L1 * p.L2 * w1 * w2 * torch.cos(th1 - th2)
        potential = -(p.m1 + p.m2) * p.g * p.L1 * torch.cos(th1) - p.m2 * p.g * p.L2 * torch.cos(th2)
        return kinetic + potential

    def energy_scale(self) -> float:
        """The characteristic energy (m1 + m2) g (L1 + L2) that relative energy errors are measured against."""
        p = self.params
        return (p.m1 + p.m2) * p.g * (p.L1 + p.L2)

    def positions(self, y: Tensor) -> Tensor:
        """Cartesian positions ``(..., 4) = [x1, y1, x2, y2]`` of the two bobs (pivot at 0, y upwards)."""
        self.check_state(y)
        th1, _, th2, _ = y.unbind(-1)
        p = self.params
        x1, y1 = p.L1 * torch.sin(th1), -p.L1 * torch.cos(th1)
        return torch.stack((x1, y1, x1 + p.L2 * torch.sin(th2), y1 - p.L2 * torch.cos(th2)), dim=-1)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        d = self.params.max_degrees
        return np.radians(rng.uniform(-d, d, size=(n, 4)))


SYSTEMS: dict[str, type[System]] = {cls.name: cls for cls in
                                    (DampedOscillator, Pendulum, VanDerPol, Lorenz63, FitzHughNagumo,
                                     DoublePendulum)}


def get_system(name: str, **params: float) -> System:
    """The system registered as ``name`` with its parameters overridden by ``params``."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known systems: {', '.join(SYSTEMS)}")
    return SYSTEMS[name](**params)


def parse_params(items: list[str] | tuple[str, ...] | None) -> dict[str, float]:
    """``["mu=2", "zeta=0.05"]`` (``--param NAME=VALUE``) -> ``{"mu": 2.0, "zeta": 0.05}``."""
    out: dict[str, float] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param takes NAME=VALUE with a number VALUE (e.g. mu=2.0), got {item!r}") from None
    return out
