"""Benchmark: forward+backward time of a solve with an output at each of T times, for T and 2T, in one run.

``python -m solvers.bench_linear [--T 200] [--repeats 5]``. A linear-cost implementation gives a ratio
time(2T) / time(T) near 2; torchdiffeq's ``odeint`` (it writes each output into one preallocated tensor,
which backward copies per write) is timed alongside as the quadratic baseline. ``--counts`` prints
deterministic proxies of the same ratios instead (bytes saved for backward, elements computed in backward).
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from tqdm import tqdm

from solvers.odeint import odeint

SETTINGS = (("odernn", "euler"), ("odernn", "rk4"), ("odernn", "dopri5"),
            ("torchdiffeq", "euler"), ("torchdiffeq", "dopri5"))


def _problem(batch: int, hidden: int, seed: int, dtype: torch.dtype = torch.float32
             ) -> tuple[Callable, torch.Tensor, torch.Tensor]:
    """f(t, y) = tanh(y W^T) - y with a trainable W, and a batch of initial states."""
    gen = torch.Generator().manual_seed(seed)
    W = (torch.randn(hidden, hidden, generator=gen, dtype=dtype) / hidden ** 0.5).requires_grad_()
    y0 = torch.randn(batch, hidden, generator=gen, dtype=dtype)
    return (lambda t, y: torch.tanh(y @ W.T) - y), y0, W


class ElementCounter(TorchDispatchMode):
    """Counts the elements of every tensor produced by an operator while active."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.elements += sum(o.numel() for o in tree_leaves(out) if isinstance(o, torch.Tensor))
        return out


def forward_backward_cost(solve: Callable, T: int) -> tuple[int, int]:
    """(bytes saved for backward, elements produced by the backward pass) of ``solve(f, y0, t)`` with
    outputs at t = 0, 0.1, ..., 0.1 T (float64, batch 4, hidden 8): deterministic proxies of the cost, both
    quadratic in T for a solver that writes its outputs into a preallocated tensor under autograd."""
    f, y0, _ = _problem(4, 8, seed=0, dtype=torch.float64)
    t = torch.arange(T + 1, dtype=torch.float64) * 0.1
    saved = 0

    def pack(x):
        nonlocal saved
        saved += x.numel() * x.element_size()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        ys = solve(f, y0, t)
    counter = ElementCounter()
    with counter:
        ys.square().sum().backward()
    return saved, counter.elements


def time_pair(backend: str, method: str, T: int, batch: int, hidden: int, dt: float,
              repeats: int) -> tuple[float, float]:
    """Fastest seconds of forward + backward through solves with outputs at t = 0, dt, ..., n dt for n = T
    and n = 2T; the two lengths alternate (after one warm-up each) so that load drifts hit both alike."""
    f, y0, W = _problem(batch, hidden, seed=0)
    best = {T: float("inf"), 2 * T: float("inf")}
    for rep in range(repeats + 1):
        for n in (T, 2 * T):
            t = torch.arange(n + 1, dtype=torch.float32) * dt
            start = time.perf_counter()
            ys = odeint(f, y0, t, method=method, rtol=1e-3, atol=1e-5, backend=backend)
            ys.square().mean().backward()
            elapsed = time.perf_counter() - start
            W.grad = None
            if rep > 0:
                best[n] = min(best[n], elapsed)
    return best[T], best[2 * T]


def print_counts(T: int) -> int:
    """Deterministic proxies of the forward+backward cost for T and 2T outputs (see ``forward_backward_cost``)."""
    print(f"float64, batch 4, hidden 8, outputs at t = 0, 0.1, ..., 0.1 n for n = {T} and {2 * T}")
    print(f"{'backend':12s} {'method':8s} {'saved bytes ratio':>18s} {'backward elements ratio':>24s}")
    for backend, method in SETTINGS:
        def solve(f, y0, t):
            return odeint(f, y0, t, method=method, rtol=1e-5, backend=backend)
        (s1, b1), (s2, b2) = forward_backward_cost(solve, T), forward_backward_cost(solve, 2 * T)
        print(f"{backend:12s} {method:8s} {s2 / s1:17.2f}x {b2 / b1:23.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solvers.bench_linear", description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=200, help="number of output times of the short solve")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dt", type=float, default=0.05, help="spacing of the output times")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: less noise)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--counts", action="store_true",
                        help="print the deterministic proxies (saved bytes, backward elements) instead of times")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.counts:
        return print_counts(args.T)
    print(f"forward+backward, outputs at every dt={args.dt}, batch={args.batch}, hidden={args.hidden}, "
          f"float32, fastest of {args.repeats} alternating runs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'backend':12s} {'method':8s} {'T=' + str(args.T):>10s} {'T=' + str(2 * args.T):>10s}  ratio")
    rows = []
    for backend, method in tqdm(SETTINGS, desc="bench", disable=args.no_progress, leave=False):
        rows.append((backend, method, *time_pair(backend, method, args.T, args.batch, args.hidden, args.dt,
                                                 args.repeats)))
    for backend, method, t1, t2 in rows:
        print(f"{backend:12s} {method:8s} {t1 * 1e3:8.1f}ms {t2 * 1e3:8.1f}ms  {t2 / t1:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
