"""Linear stability of a discretised recurrent field along a trajectory.

A one-step method applied to the linearisation dh/dt = J h multiplies each eigen-component by R(z),
z = dt * lambda(J), where R is the method's stability function R(z) = 1 + z b^T (I - zA)^{-1} 1 of its
Butcher tableau (``solvers.stability_function``): a polynomial for the explicit tableaus, a rational
function P(z) / Q(z) for the implicit ones (``solvers.available("implicit")``), which may have poles. The
discretisation is linearly stable where |R(z)| <= 1 for every eigenvalue: AntisymmetricRNN (000)
Proposition 2 / eq. 11 is the forward-Euler case |1 + eps lambda| <= 1, which a field with purely imaginary
eigenvalues (eq. 9) never satisfies without diffusion (eq. 12), while the A-stable implicit methods
(implicit midpoint, trapezoidal, Gauss-Legendre: |R(iy)| = 1; backward Euler: |R(iy)| < 1 for y != 0) hold
the whole imaginary axis at any step.

:func:`check_stability` evaluates the Jacobian J_k = df/dh at every state h_{k-1} an ODERNN visits on an
input x (with the input u_k it holds on that step), forms z = (step_size / substeps) * lambda(J_k) and
holds it against the run's solver: the verdict is the method's own (``solvers.Method.assess``). Partitioned
(Gauss-Seidel) Euler has no Butcher tableau and no scalar R(z): its one-step map on the linearisation is the
amplification matrix M = (I - dt L)^{-1} (I + dt (D + U)) (L, D, U: the strictly lower, diagonal and strictly
upper block parts of J over the field's blocks), and it is linearly stable where the spectral radius of M is
<= 1; the report then states |mu(M)| in place of |R(z)|. Reversible Heun's one-step matrix on its state pair
has eigenvalues z +- sqrt(z^2 + 1) (product -1): stable only on the imaginary segment [-i, i].
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass, field as dataclass_field
from typing import Callable, Iterator, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import solvers

__all__ = [
    "field_jacobian", "trajectory_jacobians",
    "StabilityReport", "check_stability", "assert_stable", "StabilityWarning",
    "UnstableDiscretisationError", "evenly_spaced_steps",
]


class StabilityWarning(UserWarning):
    """Warned by :func:`assert_stable` when the discretisation leaves its stability region."""


class UnstableDiscretisationError(RuntimeError):
    """Raised by :func:`assert_stable` with ``action="raise"`` when the discretisation leaves its region."""


def field_jacobian(field: nn.Module, h: Tensor, u: Tensor, t: float | Tensor = 0.0) -> Tensor:
    """J = df/dh at a batch of states: h ``(B, n)``, u ``(B, p)`` -> ``(B, n, n)``, row i = grad of f_i.

    One ``torch.func.jacrev`` of the field at a single sample, ``vmap``-ed over the batch (no Python loop).
    """
    if h.dim() != 2 or u.dim() != 2 or h.shape[0] != u.shape[0]:
        raise ValueError(f"field_jacobian expects h (B, n) and u (B, p) with the same B; got h {tuple(h.shape)}"
                         f" and u {tuple(u.shape)}")
    n, p = getattr(field, "state_size", h.shape[1]), getattr(field, "input_proj_size", u.shape[1])
    if h.shape[1] != n or u.shape[1] != p:
        raise ValueError(f"{type(field).__name__} has state_size {n} and input_proj_size {p}; got h "
                         f"{tuple(h.shape)} and u {tuple(u.shape)}")
    f = field.prepare() if hasattr(field, "prepare") else field

    def one(h1: Tensor, u1: Tensor) -> Tensor:
        return f(t, h1.unsqueeze(0), u1.unsqueeze(0)).squeeze(0)

    return torch.func.vmap(torch.func.jacrev(one))(h, u)


def evenly_spaced_steps(total: int, at_most: int | None) -> np.ndarray:
    """Indices of at most ``at_most`` steps of ``range(total)``, evenly spaced, first and last included
    (all of them when ``at_most`` is None or >= total)."""
    if at_most is None or at_most >= total:
        return np.arange(total)
    if at_most < 1:
        raise ValueError(f"the number of checked steps must be >= 1, got {at_most}")
    return np.unique(np.round(np.linspace(0, total - 1, at_most)).astype(np.int64))


def trajectory_jacobians(rnn: nn.Module, x: Tensor, h0: Tensor | None = None,
                         steps: np.ndarray | None = None) -> Tensor:
    """J_k = df/dh(h_{k-1}, u_k) for k = 1..T of an ODERNN run on x ``(B, T, m)`` -> ``(B, T, n, n)``.

    States come from ``rnn(x, h0)`` (h_0 = h0 or zeros), inputs from ``rnn.field.input_projection(x)``; the
    input u_k is the one held on step k (held on [(k-1) eps, k eps)). Only the grid states are used, not the
    intermediate stages of a step. ``steps`` (0-based indices k - 1) keeps only those steps: ``(B, len(steps),
    n, n)``; the run still covers the whole sequence.
    """
    field = rnn.field
    if x.dim() != 3:
        raise ValueError(f"x must be (B, T, input_size) (batch_first), got shape {tuple(x.shape)}")
    with torch.no_grad():
        outputs, _ = rnn(x, h0)
        u = field.input_projection(x)
        start = torch.zeros_like(outputs[:, 0]) if h0 is None else h0.to(outputs)
        states = torch.cat([start.unsqueeze(1), outputs[:, :-1]], dim=1)
        if steps is not None:
            index = torch.as_tensor(np.asarray(steps), dtype=torch.long, device=states.device)
            states, u = states[:, index], u[:, index]
        B, T, n = states.shape
        jac = field_jacobian(field, states.reshape(B * T, n), u.reshape(B * T, -1))
    return jac.reshape(B, T, n, n)


@dataclass
class StabilityReport:
    """Where the run's z = step * lambda(J_k) lie relative to its solver's stability region.

    ``max_amplification`` is max |R(z)| (for partitioned Euler: the largest |mu| of its amplification
    matrix); ``fraction_outside`` the fraction of all (sample, step, eigenvalue) triples outside the region;
    ``worst_step`` (0-based k: the Jacobian at the state before input ``x[:, k]`` is consumed, with that
    input; k = 0 is h_0) and ``worst_sample`` locate the largest amplification; ``worst_z`` is the eigenvalue there; ``max_real_eig`` the largest Re(lambda) of
    the continuous field (> 0: the ODE itself grows there). ``z`` ``(B, T, n)`` complex, for plotting;
    ``mu`` (partitioned Euler only) the eigenvalues of its amplification matrices, same shape.
    ``steps_total`` is the sequence length when only some of its steps were checked (``check_stability(...,
    sample_steps=K)``: then T = K in the shapes above, and ``worst_step`` still counts in the whole
    sequence); None when every step was.
    """

    method: str
    kind: str
    adaptive: bool
    step: float
    n_states: int
    max_amplification: float
    fraction_outside: float
    worst_step: int
    worst_sample: int
    worst_z: complex
    max_real_eig: float
    z: np.ndarray = dataclass_field(repr=False)
    criterion: str = "|R(z)| <= 1"
    mu: np.ndarray | None = dataclass_field(default=None, repr=False)
    steps_total: int | None = None

    @property
    def stable(self) -> bool:
        """True when no eigenvalue of any visited state leaves the region."""
        return self.fraction_outside == 0.0

    @property
    def verdict(self) -> str:
        return "inside its stability region" if self.stable else "OUTSIDE its stability region"

    def summary(self) -> str:
        """One readable paragraph with the numbers."""
        adaptive = (" The method is adaptive: these numbers are for the nominal step; its controller shrinks the"
                    " step where the error estimate demands it." if self.adaptive else "")
        where = (f"the worst is at sequence step {self.worst_step} of sample {self.worst_sample}"
                 f" (z = {self.worst_z.real:.4g}{self.worst_z.imag:+.4g}i)")
        return (f"Discretisation {self.method} with step {self.step:.4g} is {self.verdict} ({self.criterion}) "
                f"over {self.n_states} states{self._sampling()}: max amplification {self.max_amplification:.6f}, "
                f"{100 * self.fraction_outside:.2f}% of eigenvalues outside; {where}. The continuous field's "
                f"largest Re(lambda) is {self.max_real_eig:.4g}.{adaptive}")

    def _sampling(self) -> str:
        if self.steps_total is None:
            return ""
        return f" ({self.z.shape[1]} evenly spaced of the {self.steps_total} steps of each sequence)"


def _unwrap(model: nn.Module) -> nn.Module:
    """The ODERNN inside a head (``.rnn``) or the model itself; ValueError for models without a field."""
    rnn = getattr(model, "rnn", model)
    if not hasattr(rnn, "field") or not hasattr(rnn, "solver"):
        raise ValueError(f"stability checks need an ODERNN (a model with .field, .solver and .step_size); "
                         f"got {type(model).__name__}")
    return rnn


def _method_of(rnn: nn.Module) -> solvers.Method:
    method = getattr(rnn, "method", None)
    return method if isinstance(method, solvers.Method) else solvers.get_method(rnn.solver)


_EIGEN_CHUNK = 16  # matrices per eigenvalue call: the unit of the progress bar


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The check's work is many small problems (one sequence's matrix-vector steps, eigenvalues of n x n
    matrices): one thread. With two threads on a busy 2-core machine torch.linalg.eigvals of a 256 x 256
    matrix took ~100x longer, and a (1, 128) x (128, 256) step ~7 ms (thread contention)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _in_chunks(fn: Callable[[Tensor], Tensor], jac: Tensor, progress: bool, what: str) -> Tensor:
    """``fn`` over the (..., n, n) matrices of ``jac`` in chunks of ``_EIGEN_CHUNK``, with a progress bar when
    ``progress`` and there is more than one chunk."""
    flat = jac.reshape(-1, *jac.shape[-2:])
    starts = range(0, flat.shape[0], _EIGEN_CHUNK)
    parts = [fn(flat[i:i + _EIGEN_CHUNK]) for i in tqdm(
        starts, desc=what, unit="chunk", leave=False, disable=not progress or len(starts) <= 1)]
    return torch.cat(parts).reshape(*jac.shape[:-2], -1)


def check_stability(rnn: nn.Module, x: Tensor, h0: Tensor | None = None, *, sample_steps: int | None = None,
                    progress: bool = False) -> StabilityReport:
    """Hold z = (step_size / substeps) * lambda(J_k) of an ODERNN run on x against its solver's region.

    Runs on a float64 copy of the model (on its device): in float32 the eigenvalues of an exactly
    antisymmetric field get real parts ~1e-8, enough to push |R(z)| of rk4 over 1 on the imaginary axis.
    ``sample_steps=K`` bounds the cost on long sequences: the model still runs over the whole of x, but
    only the states at K evenly spaced steps of each sequence (first and last included) are checked, so
    there are B * K eigenvalue problems (2 B K for partitioned Euler) instead of B * T. ``progress`` shows a
    bar over the eigenvalue problems. Runs on one thread (see ``_one_thread``).
    """
    with _one_thread():
        return _check_stability(rnn, x, h0, sample_steps, progress)


def _check_stability(rnn: nn.Module, x: Tensor, h0: Tensor | None, sample_steps: int | None,
                     progress: bool) -> StabilityReport:
    rnn = copy.deepcopy(_unwrap(rnn)).to(torch.float64)
    method = _method_of(rnn)
    dt = float(rnn.step_size) / int(getattr(rnn, "substeps", 1))
    total = x.shape[1] if x.dim() == 3 else 0
    steps = evenly_spaced_steps(total, sample_steps)
    sampled = len(steps) < total
    jac = trajectory_jacobians(rnn, x.to(torch.float64), None if h0 is None else h0.to(torch.float64),
                               steps if sampled else None)
    lam = _in_chunks(torch.linalg.eigvals, jac, progress, "stability check: eigenvalues")
    z = (dt * lam).cpu().numpy()
    blocks = tuple(rnn.field.blocks)
    linear = rnn.field.linear_part
    linear = None if linear is None else linear.detach()  # a function of the parameters: only its value matters
    mu = (_in_chunks(lambda j: method.one_step_eigenvalues(j, dt, blocks, linear), jac, progress,
                     "stability check: one-step matrices").cpu().numpy() if method.needs_jacobian else None)
    amp, outside = method.assess(z, mu)
    sample, step, _ = np.unravel_index(int(np.argmax(amp)), amp.shape)
    worst = int(np.argmax(amp[sample, step]))
    return StabilityReport(
        method=method.name, kind=method.kind, adaptive=method.adaptive, step=dt, n_states=int(z.shape[0] * z.shape[1]),
        max_amplification=float(amp.max()), fraction_outside=float(outside.mean()),
        worst_step=int(steps[step]), worst_sample=int(sample), worst_z=complex(z[sample, step, worst]),
        max_real_eig=float(lam.real.max().item()), z=z,
        criterion=method.criterion,
        mu=mu, steps_total=total if sampled else None,
    )


def assert_stable(rnn: nn.Module, x: Tensor, action: Literal["warn", "raise"] = "warn",
                  h0: Tensor | None = None, *, sample_steps: int | None = None,
                  progress: bool = False) -> StabilityReport:
    """Run :func:`check_stability`; when the discretisation leaves its region, warn (``StabilityWarning``
    with the summary) or raise ``UnstableDiscretisationError``. Returns the report either way."""
    if action not in ("warn", "raise"):
        raise ValueError(f"action must be 'warn' or 'raise', got {action!r}")
    report = check_stability(rnn, x, h0, sample_steps=sample_steps, progress=progress)
    if not report.stable:
        if action == "raise":
            raise UnstableDiscretisationError(report.summary())
        warnings.warn(report.summary(), StabilityWarning, stacklevel=2)
    return report
