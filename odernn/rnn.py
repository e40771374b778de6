"""ODERNN: a vector field + an integrator + a step size -> a sequence module.

h_0 sits at t0 (0 by default) and h_k at t0 + k * step_size, or at the caller's observation times; the sample
x_k is held on (t_{k-1}, t_k] (or interpolated linearly, ``odernn.inputs``). Forward Euler with the held input is the papers' recurrence
h_k = h_{k-1} + eps f(h_{k-1}, x_k) (AntisymmetricRNN eq. 10 / 12, AFRNN eq. 11). How the field is integrated
is the business of an integrator object (``odernn.integrators``), resolved once whenever the solver or a
setting changes; ``forward`` checks its input, calls the integrator and checks the result.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

import solvers
from solvers import NewtonOptions, SolveStats

from .fields.base import VectorField
from .integrators import FUSED, Grid, Settings, resolve


def resolve_method(name: str, field: VectorField, adjoint: bool) -> solvers.Method:
    """The registered method ``name``, checked against what the field and ``adjoint`` allow."""
    try:
        method = solvers.get_method(name)
    except ValueError:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(solvers.available())}") from None
    if method.partitioned and len(field.blocks) < 2:
        raise ValueError(f"solver {name!r} needs a field with more than one block (layer); "
                         f"{type(field).__name__} has one. Use it with AFRNNField, FRNNField or "
                         f"StackedAntisymmetricField, or pick another solver")
    if adjoint and not method.adaptive:
        raise ValueError(f"adjoint=True is available for the adaptive solvers "
                         f"({', '.join(solvers.available('adaptive'))}), not for {name!r}")
    return method


def _setting(name: str) -> property:
    """A ``Settings`` field exposed on ODERNN: reading gives the value, assigning re-validates and re-resolves."""
    return property(lambda self: getattr(self.settings, name),
                    lambda self, value: self.configure(**{name: value}),
                    doc=f"``Settings.{name}`` of this module; assigning it re-resolves the integrator.")


class ODERNN(nn.Module):
    """A continuous-time recurrent network: ``forward(x, h0=None) -> (outputs, h_n)``.

    x is (B, T, input_size) (``batch_first``) or (T, B, input_size); outputs (B, T, state_size) hold h_1..h_T,
    h_n is h_T (B, state_size). ``solver`` is any name of ``solvers.available()``: fixed explicit and implicit
    Runge-Kutta methods take ``substeps`` steps per sample, adaptive ones use ``rtol``, ``atol`` and
    ``max_steps`` (step attempts of one solve), implicit ones ``newton`` (``solvers.NewtonOptions``).
    ``integrator`` is the object that runs the chosen method on this field (``odernn.integrators``);
    ``fast_path=False`` excludes the fused scans (whose hand-written backward is differentiable once).
    ``last_stats`` (``solvers.SolveStats``) describes the last forward.
    """

    step_size = _setting("step_size")
    substeps = _setting("substeps")
    interpolation = _setting("interpolation")
    rtol = _setting("rtol")
    atol = _setting("atol")
    max_steps = _setting("max_steps")
    newton = _setting("newton")
    adjoint = _setting("adjoint")

    def __init__(self, field: VectorField, solver: str = "euler", step_size: float = 0.01,
                 substeps: int = Settings.substeps, interpolation: str = Settings.interpolation,
                 rtol: float = Settings.rtol, atol: float = Settings.atol, adjoint: bool = Settings.adjoint,
                 batch_first: bool = True, check_finite: bool = True, fast_path: bool = True,
                 max_steps: int = Settings.max_steps, newton: Optional[NewtonOptions] = None) -> None:
        super().__init__()
        if not isinstance(field, VectorField):
            raise ValueError(f"field must be an odernn.fields.VectorField, got {type(field).__name__}")
        self.field = field
        self.batch_first = bool(batch_first)
        self.check_finite = bool(check_finite)
        self.readout_slice = field.blocks[-1]
        self.last_stats = SolveStats()
        self._fast_path = bool(fast_path)
        settings = Settings(step_size=step_size, substeps=substeps, interpolation=interpolation, rtol=rtol,
                            atol=atol, max_steps=max_steps, newton=newton or NewtonOptions(), adjoint=adjoint)
        self._select(resolve_method(solver, field, settings.adjoint), settings)

    def _select(self, method: solvers.Method, settings: Settings) -> None:
        """Make ``method`` with ``settings`` current: the one place where the integrator is chosen."""
        integrator = resolve(method, self.field, settings, self._fast_path)
        self.method, self.settings, self.integrator = method, settings, integrator

    def configure(self, **changes: Any) -> None:
        """Change ``Settings`` fields (validated together) and re-resolve the integrator; a refused value
        changes nothing."""
        known = [f.name for f in fields(Settings)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {', '.join(known)}")
        settings = replace(self.settings, **changes)
        self._select(resolve_method(self.method.name, self.field, settings.adjoint), settings)

    @property
    def solver(self) -> str:
        """The solver's registered name; assigning a new name switches the solver of this instance."""
        return self.method.name

    @solver.setter
    def solver(self, name: str) -> None:
        self._select(resolve_method(name, self.field, self.settings.adjoint), self.settings)

    @property
    def fast_path(self) -> bool:
        """Whether the fused scans (``odernn.integrators.FUSED``) may be chosen."""
        return self._fast_path

    @fast_path.setter
    def fast_path(self, value: bool) -> None:
        self._fast_path = bool(value)
        self._select(self.method, self.settings)

    def uses_fast_path(self) -> bool:
        """Whether ``forward`` runs a fused scan on its own uniform grid (with the caller's ``times`` the fused
        integrators hand over to the stepped scan of the same method)."""
        return isinstance(self.integrator, FUSED)

    @property
    def hidden_size(self) -> int:
        return self.field.state_size

    def extra_repr(self) -> str:
        return (f"solver={self.solver!r}, step_size={self.step_size}, substeps={self.substeps}, "
                f"interpolation={self.interpolation!r}, integrator={self.integrator!r}")

    # ----------------------------------------------------------------------------------------- checks
    def check_input(self, x: Tensor, h0: Optional[Tensor]) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ValueError(f"x must be a 3-D tensor {layout}, got shape {shape}")
        reference = next(self.field.parameters(), None)
        for what, dtype in (("x", x.dtype), ("the field's parameters", None if reference is None else reference.dtype)):
            if dtype in (torch.float16, torch.bfloat16):
                raise ValueError(
                    f"{what} {'is' if what == 'x' else 'are'} {dtype}, which ODERNN refuses: with its epsilon of "
                    f"{torch.finfo(dtype).eps:.1e} a step h + dt * f rounds back to h (and t + dt to t) for small "
                    f"steps, so the states stop moving; run the model and x in float32 or float64 (model.float())")
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
        if batch == 0:
            raise ValueError(f"x holds an empty batch (shape {tuple(x.shape)}: 0 sequences); pass at least one")
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

    def check_states(self, states: Tensor, last: Tensor, grid: Grid) -> None:
        """One finiteness test per forward, on the last state h_T (B, n): every step is h' = h + dt * (a sum of
        field values), so a non-finite state stays non-finite to the end (inf + finite = inf, inf - inf and
        anything with NaN = NaN). Only when it fires are the stacked (T, B, n) states searched for the step."""
        if bool(torch.isfinite(last.detach()).all()):
            return
        finite = torch.isfinite(states.detach())
        step, sample = torch.nonzero(~finite.all(-1))[0].tolist()
        time = float(grid.times[sample, step + 1] if grid.per_sample else grid.times[step + 1])
        step += 1
        raise FloatingPointError(
            f"the state became non-finite at sequence step {step} of {states.shape[0]} (time {time:g}) "
            f"under solver {self.solver!r} with step_size={self.step_size}; reduce the step size, add diffusion "
            f"(gamma) or pass check_finite=False")

    # ---------------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, h0: Optional[Tensor] = None, times: Optional[Tensor] = None,
                t0: Union[float, Tensor] = 0.0) -> tuple[Tensor, Tensor]:
        """``times`` (T,) or (B, T): the observation times of h_1..h_T (h_0 at ``t0``), strictly increasing in
        each sample; sample x_k is held on (t_{k-1}, t_k]. Fixed methods take ceil(interval / (step_size /
        substeps)) equal steps on every interval of every sample (reversible_heun: the most any sample of the
        batch needs); adaptive ones step onto every sample's times. Default: t_k = t0 + k * step_size."""
        h = self.check_input(x, h0)
        x_tm = x.transpose(0, 1) if self.batch_first else x
        if times is None:
            grid = Grid.uniform(x_tm.shape[0], self.step_size, float(t0), x)
        else:
            grid = Grid.observed(times, t0, x_tm.shape[1], x_tm.shape[0], x)
        states, h_n, self.last_stats = self.integrator.integrate(self.field, h, x_tm, grid, self.settings)
        if self.check_finite:
            self.check_states(states, h_n, grid)
        outputs = states.transpose(0, 1) if self.batch_first else states
        return outputs, h_n
