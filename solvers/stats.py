"""Counters reported by every solve (``odeint(..., return_stats=True)``)."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SolveStats:
    """Function evaluations and steps of one solve; ``a + b`` adds them field by field.

    ``n_steps = n_accepted + n_rejected``; fixed-step solves never reject. Implicit methods add their
    Newton iterations (``n_newton``, summed over steps), Jacobian evaluations (``n_jacobians``), LU
    factorisations of the Newton matrix (``n_lu``), the steps whose stages needed a continuation in the
    step size (``n_continued``: plain Newton failed), the steps split in halves because even that failed
    (``n_subdivided``) and the functional iterations tried before Newton (``n_functional``, forward and
    backward; where they converge no Jacobian is formed). Solves handed
    to torchdiffeq report ``nfe`` only (that library does not expose its step counts), with the step counters at
    0. Event solves (``odeint_event``) count the steps of the search; nfe also covers the root finding.
    """

    nfe: int = 0
    n_steps: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_newton: int = 0
    n_jacobians: int = 0
    n_continued: int = 0
    n_lu: int = 0
    n_subdivided: int = 0
    n_functional: int = 0

    @property
    def stage_iterations(self) -> int:
        """Iterations spent on implicit stage equations: functional plus Newton."""
        return self.n_functional + self.n_newton

    def __add__(self, other: "SolveStats") -> "SolveStats":
        if not isinstance(other, SolveStats):
            return NotImplemented
        return SolveStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))
