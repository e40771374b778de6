"""Radius ratio r_T / r_0 of Fig. 1's W0 and Wdiff under several solvers, beside the linear prediction.

Near the origin tanh(W h) ~ W h, so one step multiplies each eigen-component by R(eps lambda) and after T
steps the radius by |R(eps lambda)|^T (lambda = eigenvalues of W = the Jacobian at the origin; the two are
conjugate and give the same |R|). R is the method's stability function, a polynomial for explicit
tableaus and the rational P(z) / Q(z) for the implicit ones (backward Euler, implicit midpoint, trapezoidal,
Gauss-Legendre 4, whose |R(iy)| <= 1 at every y). For partitioned (symplectic) Euler the prediction is
rho(M)^T with M its amplification matrix (the method's ``one_step_eigenvalues``). The verdict is the method's
own ``assess`` on z = eps * lambda(W).
"""
from __future__ import annotations

import torch

import solvers
from experiments.dynamics import planar

MATRICES = ("W0", "Wdiff")
METHODS = ("euler", "midpoint", "heun", "rk3", "rk4", "dopri5", "partitioned_euler", "backward_euler",
           "implicit_midpoint", "trapezoidal", "gauss_legendre4")
NEAR_ORIGIN = ((0.01, 0.0),)


def prediction_and_verdict(W: torch.Tensor, eps: float, method: str, T: int) -> tuple[float, bool]:
    """(max |R(eps lambda)|^T, inside the region) for z = eps * eigenvalues of W."""
    m = solvers.get_method(method)
    z = (eps * torch.linalg.eigvals(W)).numpy()
    mu = m.one_step_eigenvalues(W, eps, (slice(0, 1), slice(1, 2))).numpy() if m.needs_jacobian else None
    amp, outside = m.assess(z, mu)
    return float(amp.max()) ** T, not bool(outside.any())


def radius_table(T: int = 50, eps: float = 0.1, methods: tuple[str, ...] = METHODS) -> list[dict]:
    """One row per (matrix, method): ratios from (0.01, 0) and from each of the paper's starts.

    ``methods``: any names of ``solvers.available()`` (unknown names raise ``ValueError`` listing them)."""
    for method in methods:
        solvers.get_method(method)
    h0 = planar.starts(NEAR_ORIGIN + planar.STARTS)
    rows = []
    for name in MATRICES:
        W = planar.matrix(name)
        for method in methods:
            ratio = planar.radius_ratio(planar.feedback_trajectory(W, h0, T, eps, method)).tolist()
            predicted, inside = prediction_and_verdict(W, eps, method, T)
            rows.append({"matrix": name, "method": method, "ratio_near_origin": ratio[0],
                         "ratio_paper_starts": ratio[1:], "predicted": predicted,
                         "verdict": "inside" if inside else "outside"})
    return rows


def to_markdown(rows: list[dict], T: int, eps: float) -> str:
    """The table as markdown (the columns the command prints and saves)."""
    starts = ", ".join(f"({a:g}, {b:g})" for a, b in planar.STARTS)
    head = (f"Radius ratio r_T / r_0 after T={T} steps of eps={eps} (paper starts: {starts})\n\n"
            "| matrix | method | from (0.01, 0) | predicted \\|R(eps lambda)\\|^T | from the paper's starts | check |\n"
            "|---|---|---|---|---|---|\n")
    lines = [f"| {r['matrix']} | {r['method']} | {r['ratio_near_origin']:.4f} | {r['predicted']:.4f} | "
             + ", ".join(f"{v:.3f}" for v in r["ratio_paper_starts"]) + f" | {r['verdict']} |" for r in rows]
    return head + "\n".join(lines) + "\n"
