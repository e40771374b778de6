"""ODERNN: a vector field + a solver + a step size -> a sequence module (DESIGN.md sections 2 and 4).

Time/input alignment: h_k at time k*eps (h_0 at 0), x_k the input on [(k-1)eps, k*eps) (``odernn.inputs``).
- Fixed solvers (euler, rk4, ...): one scan, ``substeps`` steps of ``solvers.rk_step`` per sample, input
  projection computed once, samples taken by ``unbind``, states collected and stacked. Euler + hold is the
  papers' recurrence h_k = h_{k-1} + eps f(h_{k-1}, x_k). For fields of the form tanh(A h + u) (plain
  antisymmetric and unstructured) every fixed tableau with the held input runs the fused scan of
  ``odernn.fused`` (``fast_path``).
- ``partitioned_euler``: the AFRNN authors' Gauss-Seidel update for block fields (layer 1 first, later layers
  see the new states), with the field's cheap per-block derivative.
- Adaptive solvers (dopri5, bosh3, adaptive_heun): one ``solvers.odeint`` call over the whole grid, in the
  interval time tau (interval k is tau in [k, k+1]). A held input jumps at every grid time, where the steps
  of two intervals meet: a stage evaluated exactly there cannot tell from t alone whether it ends interval
  k (and must see U_k) or starts interval k+1 (and must see U_{k+1}). So the hold path is integrated in a
  warped time: on interval k, physical time is t = eps (k + phi(s)), s = tau - k, phi(s) = 3s^2 - 2s^3,
  and dh/dtau = eps phi'(s) f(t, h, U_k). phi' vanishes at both ends of every interval, so the right-hand
  side is 0 at every grid time whichever interval a stage there is attributed to, and h(tau = k) is exactly
  the state of the original ODE at k*eps (a change of time variable). The linear path is continuous and
  is integrated in tau directly (dh/dtau = eps f).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

import solvers
from solvers import SolveStats
from solvers.odeint import DEFAULT_MAX_STEPS

from .fields.base import VectorField
from .fields.single import SingleLayerField
from .fused import tanh_rk_scan
from .inputs import InputPath, check_interpolation


def check_step_size(step_size: float) -> float:
    try:
        value = float(step_size)
    except (TypeError, ValueError):
        raise ValueError(f"step_size must be a positive finite number, got {step_size!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"step_size must be a positive finite number, got {step_size!r}")
    return value


def check_substeps(substeps: int) -> int:
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be an integer >= 1, got {substeps!r}")
    return substeps


def resolve_solver(name: str, field: VectorField) -> "solvers.Method":
    try:
        method = solvers.get_method(name)
    except ValueError:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(solvers.available())}") from None
    if method.kind == "partitioned" and len(field.blocks) < 2:
        raise ValueError(f"solver {name!r} needs a field with more than one block (layer); "
                         f"{type(field).__name__} has one. Use it with AFRNNField, FRNNField or "
                         f"StackedAntisymmetricField, or pick another solver")
    return method


def warp_rate(s: float) -> float:
    """phi'(s) = 6 s (1 - s) of the time warp phi(s) = 3 s^2 - 2 s^3 (0 at both ends, integral 1)."""
    return 6.0 * s * (1.0 - s)


def warp(s: float) -> float:
    return s * s * (3.0 - 2.0 * s)


def locate(tau: float, length: int) -> tuple[int, float]:
    """(interval k, fraction s in [0, 1]) of interval time tau in [0, length]."""
    k = min(max(int(math.floor(tau)), 0), length - 1)
    return k, tau - k


class ODERNN(nn.Module):
    """A continuous-time recurrent network: ``forward(x, h0=None) -> (outputs, h_n)``.

    x is (B, T, input_size) (``batch_first``) or (T, B, input_size); outputs (B, T, state_size) hold h_1..h_T,
    h_n is h_T (B, state_size). ``last_stats`` (``solvers.SolveStats``) describes the last forward.
    ``fast_path=False`` forces the generic ``rk_step`` scan where the fused scan would be used (needed for
    higher-order gradients: the fused scan's hand-written backward is differentiable once).
    ``rtol``, ``atol`` and ``max_steps`` (step attempts of one solve) apply to the adaptive solvers.
    """

    def __init__(self, field: VectorField, solver: str = "euler", step_size: float = 0.01, substeps: int = 1,
                 interpolation: str = "hold", rtol: float = 1e-6, atol: float = 1e-8, adjoint: bool = False,
                 batch_first: bool = True, check_finite: bool = True, fast_path: bool = True,
                 max_steps: int = DEFAULT_MAX_STEPS) -> None:
        super().__init__()
        if not isinstance(field, VectorField):
            raise ValueError(f"field must be an odernn.fields.VectorField, got {type(field).__name__}")
        self.field = field
        self.adjoint = bool(adjoint)
        self.solver = solver
        self.step_size = check_step_size(step_size)
        self.substeps = check_substeps(substeps)
        self.interpolation = check_interpolation(interpolation)
        # the adaptive controller's rules, checked now rather than at the first adaptive forward
        solvers.StepController(rtol=float(rtol), atol=float(atol), max_steps=int(max_steps))
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)
        self.batch_first = bool(batch_first)
        self.check_finite = bool(check_finite)
        self.fast_path = bool(fast_path)
        self.readout_slice = field.blocks[-1]
        self.last_stats = SolveStats()

    @property
    def solver(self) -> str:
        """The solver's registered name; assigning a new name switches the solver of this instance."""
        return self.method.name

    @solver.setter
    def solver(self, name: str) -> None:
        method = resolve_solver(name, self.field)
        if self.adjoint and method.kind != "adaptive":
            raise ValueError(f"adjoint=True is available for the adaptive solvers "
                             f"({', '.join(solvers.available('adaptive'))}), not for {name!r}")
        self.method = method

    @property
    def hidden_size(self) -> int:
        return self.field.state_size

    def extra_repr(self) -> str:
        return (f"solver={self.solver!r}, step_size={self.step_size}, substeps={self.substeps}, "
                f"interpolation={self.interpolation!r}")

    # ----------------------------------------------------------------------------------------- checks
    def check_input(self, x: Tensor, h0: Optional[Tensor]) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ValueError(f"x must be a 3-D tensor {layout}, got shape {shape}")
        reference = next(self.field.parameters(), None)
        if not x.is_floating_point() or (reference is not None and x.dtype != reference.dtype):
            expected = reference.dtype if reference is not None else "a floating dtype"
            raise ValueError(f"x has dtype {x.dtype}, the field's parameters are {expected}; convert one to the other")
        if reference is not None and x.device != reference.device:
            raise ValueError(f"x is on {x.device}, the field's parameters on {reference.device}; move one to the other")
        if x.shape[-1] != self.field.input_size:
            raise ValueError(f"x has {x.shape[-1]} features, the field expects input_size={self.field.input_size}")
        steps = x.shape[1] if self.batch_first else x.shape[0]
        if steps == 0:
            raise ValueError("x is an empty sequence (0 time steps); need at least 1")
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or Inf values")
        batch = x.shape[0] if self.batch_first else x.shape[1]
        if h0 is None:
            return x.new_zeros(batch, self.field.state_size)
        if not isinstance(h0, Tensor) or tuple(h0.shape) != (batch, self.field.state_size):
            shape = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
            raise ValueError(f"h0 must have shape (batch, state_size) = {(batch, self.field.state_size)}, "
                             f"got {shape}")
        if h0.dtype != x.dtype or h0.device != x.device:
            raise ValueError(f"h0 ({h0.dtype} on {h0.device}) must match x ({x.dtype} on {x.device})")
        if not bool(torch.isfinite(h0).all()):
            raise ValueError("h0 contains NaN or Inf values")
        return h0

    def check_states(self, states: Tensor) -> None:
        """One finiteness test per forward on the stacked (T, B, n) states; locate the step only if it fires."""
        finite = torch.isfinite(states.detach())
        if bool(finite.all()):
            return
        step = int(torch.nonzero(~finite.flatten(1).all(1))[0, 0]) + 1
        raise FloatingPointError(
            f"the state became non-finite at sequence step {step} of {states.shape[0]} (time {step * self.step_size:g}) "
            f"under solver {self.solver!r} with step_size={self.step_size}; reduce the step size, add diffusion "
            f"(gamma) or pass check_finite=False")

    # ---------------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, h0: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        h = self.check_input(x, h0)
        x_tm = x.transpose(0, 1) if self.batch_first else x
        if self.uses_fast_path():
            states, h_n = self.fused_scan(h, x_tm)
        else:
            if self.method.kind == "adaptive":
                states = self.solve_adaptive(h, x_tm)
            else:
                states = self.scan(h, InputPath(self.field.input_projection(x_tm), self.interpolation))
            h_n = states[-1]
        if self.check_finite:
            self.check_states(states)
        outputs = states.transpose(0, 1) if self.batch_first else states
        return outputs, h_n

    def uses_fast_path(self) -> bool:
        """Whether ``forward`` runs the fused scan: a fixed explicit tableau on a plain (non-gated) single-layer
        field, every stage seeing the held input of its sample (hold, or linear with only c = 0 stages and one
        substep, where the linear path is evaluated at the left ends only)."""
        return (self.fast_path and self.method.kind == "fixed" and not self.adjoint
                and (self.interpolation == "hold" or (self.substeps == 1 and not any(self.method.tableau.c)))
                and isinstance(self.field, SingleLayerField) and not self.field.gated)

    def fused_scan(self, h: Tensor, x_tm: Tensor) -> tuple[Tensor, Tensor]:
        steps = x_tm.shape[0] * self.substeps
        self.last_stats = SolveStats(nfe=steps * self.method.tableau.stages, n_steps=steps, n_accepted=steps)
        projection = self.field.input
        return tanh_rk_scan(h, x_tm, projection.weight, projection.bias, self.field.matrices()[0],
                            self.step_size / self.substeps, self.method.tableau, self.substeps)

    def scan(self, h: Tensor, path: InputPath) -> Tensor:
        """Fixed-step and partitioned scans: ``substeps`` steps per sample, states collected and stacked."""
        n, dt = self.substeps, self.step_size / self.substeps
        partitioned = self.method.kind == "partitioned"
        f = self.field.prepare_blocks() if partitioned else self.field.prepare()
        states = []
        for k in range(path.length):
            for j in range(n):
                if partitioned:
                    h = self.gauss_seidel_step(f, h, path.at(k, j / n), dt)
                else:
                    h = solvers.rk_step(self.interval_field(f, path, k), (k + j / n) * self.step_size, h, dt,
                                        self.method.tableau)
            states.append(h)
        steps = path.length * n
        stages = 1 if partitioned else self.method.tableau.stages
        self.last_stats = SolveStats(nfe=steps * stages, n_steps=steps, n_accepted=steps)
        return torch.stack(states)

    def interval_field(self, f: Callable, path: InputPath, k: int) -> Callable[[float, Tensor], Tensor]:
        """f(t, y) on interval k (0-based): the held input U_k, or the linear path at t's fraction of it."""
        if path.is_constant_on_intervals():
            u = path.values[k]
            return lambda t, y: f(t, y, u)
        start, eps = k * self.step_size, self.step_size
        return lambda t, y: f(t, y, path.at(k, (t - start) / eps))

    def gauss_seidel_step(self, block_f: Callable, h: Tensor, u: Tensor, dt: float) -> Tensor:
        """One step of the AFRNN code's update: block i moves with the derivative at the state whose blocks
        below i are already new (``solvers.partitioned_euler_step``'s scheme, one block derivative each)."""
        parts = [h[:, block] for block in self.field.blocks]
        for i in range(len(parts)):
            state = h if i == 0 else torch.cat(parts, dim=-1)
            parts[i] = parts[i] + dt * block_f(i, state, u)
        return torch.cat(parts, dim=-1)

    def solve_adaptive(self, h: Tensor, x_tm: Tensor) -> Tensor:
        """One ``solvers.odeint`` call over tau = 0, 1, ..., T (see the module docstring). With ``adjoint`` the
        right-hand side is an ``nn.Module`` that projects the raw input itself, so torchdiffeq's adjoint
        returns gradients for every parameter of the field, the input projection included."""
        if self.adjoint:
            rhs = IntervalRHS(self.field, InputPath(x_tm, self.interpolation), self.step_size)
        else:
            rhs = IntervalRHS(self.field, InputPath(self.field.input_projection(x_tm), self.interpolation),
                              self.step_size, prepared=self.field.prepare())
        grid = torch.arange(rhs.path.length + 1, dtype=h.dtype, device=h.device)
        states, stats = solvers.odeint(rhs, h, grid, method=self.solver, rtol=self.rtol, atol=self.atol,
                                       adjoint=self.adjoint, return_stats=True, check_finite=False,
                                       max_steps=self.max_steps)
        self.last_stats = stats
        return states[1:]


class IntervalRHS(nn.Module):
    """dh/dtau on the interval grid tau = 0..T: eps * f on the linear path, eps * phi'(s) * f in warped time on
    the held path (0 at every grid time). With ``prepared`` (``field.prepare()``) the path holds projected
    inputs; without it, raw inputs projected per evaluation (for the adjoint)."""

    def __init__(self, field: VectorField, path: InputPath, step_size: float,
                 prepared: Optional[Callable] = None) -> None:
        super().__init__()
        self.field, self.path, self.step_size, self.prepared = field, path, step_size, prepared

    def forward(self, tau: Tensor, y: Tensor) -> Tensor:
        k, s = locate(float(tau.detach()), self.path.length)
        hold = self.path.is_constant_on_intervals()
        rate, t = (warp_rate(s), k + warp(s)) if hold else (1.0, k + s)
        if rate == 0.0:
            return 0.0 * y  # a zero that depends on y, as torchdiffeq's adjoint differentiates it
        u = self.path.at(k, 0.0 if hold else s)
        if self.prepared is None:
            return (self.step_size * rate) * self.field(t * self.step_size, y, self.field.input_projection(u))
        return (self.step_size * rate) * self.prepared(t * self.step_size, y, u)
