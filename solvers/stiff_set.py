"""Work-precision table of the adaptive implicit methods on the stiff set, beside scipy's Radau and BDF.

``python -m solvers.stiff_set [--rtols 1e-4,1e-6,1e-8] [--methods kvaerno3,kvaerno4,trbdf2]``: for every problem
of ``solvers.problems.STIFF_SET`` and every rtol (atol = rtol * the problem's ``atol_factor``), the error
against scipy's Radau at rtol 1e-12 (max over outputs and components of |error| / max |component|),
function evaluations, Jacobians, LU factorisations, steps and wall seconds, in float64 on one thread.
"""
from __future__ import annotations

import argparse
import time
from typing import Iterator

import numpy as np
import torch

from solvers.odeint import odeint
from solvers.problems import STIFF_SET, StiffProblem
from solvers.registry import available

HEADER = ("problem", "rtol", "method", "error", "vs Radau", "nfe", "Jacobians", "LU", "steps", "seconds")


def scipy_solve(problem: StiffProblem, method: str, rtol: float, atol: float) -> tuple[np.ndarray, tuple]:
    """scipy's solution at the output times and (nfe, Jacobians, LU, steps, seconds); scipy does not report
    its steps ("-")."""
    from scipy.integrate import solve_ivp

    start = time.perf_counter()
    sol = solve_ivp(problem.f, (problem.t[0], problem.t[-1]), np.array(problem.y0), method=method, rtol=rtol,
                    atol=atol, t_eval=np.array(problem.t))
    if not sol.success:
        raise RuntimeError(f"scipy {method} failed on {problem.name}: {sol.message}")
    return sol.y.T, (sol.nfev, sol.njev, sol.nlu, "-", time.perf_counter() - start)


def ours(problem: StiffProblem, method: str, rtol: float, atol: float) -> tuple[np.ndarray, tuple]:
    """Our solution at the output times and (nfe, Jacobians, LU, steps, seconds)."""
    start = time.perf_counter()
    ys, stats = odeint(problem.f, torch.tensor(problem.y0, dtype=torch.float64),
                       torch.tensor(problem.t, dtype=torch.float64), method=method, rtol=rtol, atol=atol,
                       return_stats=True)
    return ys.numpy(), (stats.nfe, stats.n_jacobians, stats.n_lu, stats.n_steps, time.perf_counter() - start)


def relative_error(ys: np.ndarray, reference: np.ndarray) -> float:
    """Max over outputs and components of |error| / max_t |component| (Robertson's y2 is ~1e-5)."""
    return float((np.abs(ys - reference) / np.abs(reference).max(0)).max())


def rows(rtols: list[float], methods: list[str]) -> Iterator[tuple[str, ...]]:
    """The table's rows, problem by problem, rtol by rtol (scipy's two first)."""
    for problem in STIFF_SET:
        reference, _ = scipy_solve(problem, "Radau", 1e-12, 1e-12 * problem.atol_factor)
        for rtol in rtols:
            atol = rtol * problem.atol_factor
            results = [(f"scipy {m}", *scipy_solve(problem, m, rtol, atol)) for m in ("Radau", "BDF")]
            results += [(m, *ours(problem, m, rtol, atol)) for m in methods]
            radau = relative_error(results[0][1], reference)
            for label, ys, (nfe, jacobians, lu, steps, seconds) in results:
                error = relative_error(ys, reference)
                yield (problem.name, f"{rtol:g}", label, f"{error:.2e}", f"{error / radau:.1f}x", str(nfe),
                       str(jacobians), str(lu), str(steps), f"{seconds:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solvers.stiff_set", description=__doc__.splitlines()[0])
    parser.add_argument("--rtols", default="1e-4,1e-6,1e-8", help="comma-separated rtols (default 1e-4,1e-6,1e-8)")
    parser.add_argument("--methods", default=",".join(available("adaptive_implicit")),
                        help="comma-separated adaptive implicit methods (default: all)")
    args = parser.parse_args(argv)
    try:
        rtols = [float(v) for v in args.rtols.split(",")]
    except ValueError:
        parser.error(f"--rtols takes comma-separated numbers, got {args.rtols!r}")
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in available("adaptive_implicit")]
    if unknown:
        parser.error(f"--methods takes {', '.join(available('adaptive_implicit'))}; got {', '.join(unknown)}")
    torch.set_num_threads(1)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows(rtols, methods):
        print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
