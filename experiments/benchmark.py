"""``python -m experiments benchmark``: forward+backward time of ODERNN against the arithmetic floor of the same
shapes, torch.nn.RNN and torch.nn.LSTM, measured in the same run and printed as a markdown table of ratios.

Rows: the GEMM floor (the matrix products an Euler scan cannot avoid: T forward products (B, H) x (H, H), T
backward ones and the one large weight-gradient product (H, T B) x (T B, H), run back to back on preallocated
buffers, each product on all threads; the 1.00x baseline), the same products banded as the compiled walks run
theirs (one band of batch rows per thread, each thread through all T steps: faster than the baseline on 2
cores, so a scan's ratio to it is the stricter one), rk4's products banded (4 T forward, 4 T backward, K = 4 T B:
the arithmetic an rk4 scan cannot avoid, to read the rk4 target against), torch.nn.RNN(tanh), torch.nn.LSTM, ODERNN euler and rk4 through the fused
scan (``odernn.fused``, compiled walks where ``odernn.kernels`` builds them), euler and rk4 through the same
scan with the Python walks and through the generic stepped scan, euler at 2T, the gated field under euler and
AFRNN with two layers of H units under euler and partitioned_euler, and with ``--implicit`` midpoint,
implicit_midpoint, rk4 and gauss_legendre4 at eps 0.1. Each time is the median of ``--repeats``
runs after ``--warmup`` runs; the loss is sum(h_T^2). The runs are interleaved (every case once per round,
timed on the second of two calls in a row, so that it meets its own buffers as a training step does), so a
change of machine load affects all cases alike.
Targets: euler <= 1.5x the floor, rk4 <= 4.5x, gated euler <= 2.5x, AFRNN 2xH euler <= 5x (its coupling
matrix has 4x the multiply-adds); doubling T <= 2.2x euler.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from tqdm import tqdm

from odernn import ODERNN, AFRNNField, AntisymmetricField, GatedAntisymmetricField, kernels


IMPLICIT_EPS = 0.1
"""The step of the implicit rows (issue target: implicit_midpoint <= 10x midpoint, gauss_legendre4 <= 10x rk4)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--T", type=int, default=784, help="sequence length (default 784)")
    parser.add_argument("--batch", type=int, default=128, help="batch size B (default 128)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size H (default 128)")
    parser.add_argument("--input-size", type=int, default=1, help="input features m (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per model first (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default 0: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--epoch", metavar="PRESET", default=None,
                        help="instead of the scan table: one training epoch of PRESET on synthetic data of its shape "
                             "against torch.nn.RNN's bare forward+backward (experiments.epoch_benchmark)")
    parser.add_argument("--epoch-batches", type=int, default=20, help="batches timed per arrangement (default 20)")
    parser.add_argument("--data-root", default=None,
                        help="with --epoch: time the loop on the task's real data under this folder (e.g. MNIST/raw)")
    parser.add_argument("--arrangements", default="1x2,2x1",
                        help="PROCESSESxTHREADS list for --epoch (default 1x2,2x1)")
    parser.add_argument("--implicit", action="store_true",
                        help="add the implicit rows at eps 0.1 (implicit_midpoint against midpoint, gauss_legendre4 "
                             "against rk4; a few minutes more)")
    parser.add_argument("--family", action="store_true",
                        help="instead of the scan table: each ODE-RNN family model under its paper's discretisation "
                             "against its authors' cell looped with autograd (--T, --batch; the papers' sizes)")
    parser.add_argument("--family-models", default=None, metavar="NAMES",
                        help="with --family: a comma-separated subset of the family (default: all of "
                             "experiments.family_benchmark.FAMILY)")
    parser.add_argument("--memory", action="store_true",
                        help="instead of times: bytes autograd keeps for backward, euler against reversible_heun, "
                             "at T=1000 and T=4000 (with --batch and --hidden)")


def torch_rnn_step(core: nn.RNNBase) -> Callable[[Tensor], Tensor]:
    return lambda x: core(x)[0][:, -1]


def odernn_step(model: ODERNN) -> Callable[[Tensor], Tensor]:
    return lambda x: model(x)[1]


def gemm_floor(batch: int, hidden: int, banded: bool = False, stages: int = 1) -> Callable[[Tensor], None]:
    """The matrix products of one Euler forward+backward of an H-unit scan over the T steps of x, alone: T
    products (B, H) x (H, H) forward, T backward, and the (H, T B) x (T B, H) weight gradient. ``banded``:
    the T products run as the compiled walks run theirs, one band of rows per thread, each thread through
    all T steps (``odernn_fused.gemm_chain``); otherwise each product uses all threads, back to back.
    ``stages``: the products of an s-stage explicit method (s T forward, s T backward, K = s T B)."""
    weight, state = torch.randn(hidden, hidden) / hidden ** 0.5, torch.randn(batch, hidden)
    buffers: dict[int, tuple[Tensor, Tensor]] = {}

    def chain(out: Tensor) -> None:
        if banded:
            kernels.build().gemm_chain(out, state, weight)
            return
        for t in range(out.shape[0]):
            torch.mm(state, weight, out=out[t])

    def run(x: Tensor) -> None:
        steps = stages * x.shape[1]
        if steps not in buffers:
            buffers[steps] = (torch.empty(steps, batch, hidden), torch.empty(steps, batch, hidden))
        forward, backward = buffers[steps]
        chain(forward)
        chain(backward)
        forward.view(-1, hidden).T @ backward.view(-1, hidden)
    return run


def time_once(run: Callable[[Tensor], Optional[Tensor]], x: Tensor, walks: str) -> float:
    """The second of two runs in a row: the timed one meets the buffers and caches its own shapes left, as
    every step of a training loop does, not those of the case before it. The first run's output (and with it
    its autograd graph) is released before the second starts, as a training loop releases its loss. Python's
    garbage collector runs before the timed run and not during it (as ``timeit`` does), so that no case pays
    for collecting what an earlier one left."""

    def step() -> None:
        out = run(x)
        if out is not None:
            out.pow(2).sum().backward()

    with kernels.use(walks):
        step()
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            step()
            return time.perf_counter() - start
        finally:
            if enabled:
                gc.enable()


Case = tuple[str, int, Callable[[Tensor], Optional[Tensor]], str]
"""(name, T, run(x), walks): ``run`` returns what the loss is taken of (None: it did its whole work itself);
``walks`` is the ``odernn.kernels`` choice it runs under."""


def interleaved_medians(cases: list[Case], inputs: dict[int, Tensor], repeats: int, warmup: int,
                        progress: bool) -> dict[tuple[str, int], float]:
    """Median time per case over ``repeats`` rounds, each round timing every case once (after warm-up rounds)."""
    samples: dict[tuple[str, int], list[float]] = {(name, T): [] for name, T, _, _ in cases}
    for round_ in tqdm(range(warmup + repeats), desc="benchmark rounds", disable=not progress):
        for name, T, step, walks in cases:
            seconds = time_once(step, inputs[T], walks)
            if round_ >= warmup:
                samples[name, T].append(seconds)
    return {key: statistics.median(values) for key, values in samples.items()}


MIN_T = 10
"""Shorter sequences time the calls' fixed overhead, not the scans: their ratios would mean nothing."""


def check_args(args: argparse.Namespace) -> None:
    for name in ("T", "batch", "hidden", "input_size", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.T < MIN_T and not (args.memory or args.epoch):
        raise ValueError(f"--T must be >= {MIN_T} for the scan table (shorter sequences time the call overhead, "
                         f"not the scans, so the ratios would mean nothing), got {args.T}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    if args.family_models is not None:
        if not args.family:
            raise ValueError("--family-models only applies with --family")
        from experiments.family_benchmark import chosen
        chosen(args.family_models)


def saved_bytes(model: nn.Module, x: Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


def memory_table(args: argparse.Namespace) -> int:
    """Saved-for-backward memory of euler (fused scan) and reversible_heun at T = 1000 and 4000."""
    batch, hidden = args.batch, args.hidden
    field = AntisymmetricField(args.input_size, hidden, gamma=0.01)
    models = {"euler": ODERNN(field, "euler"), "reversible_heun": ODERNN(field, "reversible_heun")}
    print(f"bytes autograd keeps for backward (saved tensors; the returned states are the caller's), "
          f"B={batch}, H={hidden}, m={args.input_size}, float32\n")
    print("| T | euler (MB) | reversible_heun (MB) | reversible / euler |")
    print("|---|---|---|---|")
    for T in (1000, 4000):
        x = torch.randn(batch, T, args.input_size)
        euler, reversible = (saved_bytes(models[name], x) for name in ("euler", "reversible_heun"))
        print(f"| {T} | {euler / 2**20:.1f} | {reversible / 2**20:.2f} | {reversible / euler:.4f}x |")
    return 0


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if args.memory:
        return memory_table(args)
    if args.epoch:
        from experiments.epoch_benchmark import epoch_table
        print(epoch_table(args.epoch, args.epoch_batches, args.arrangements.split(","), args.data_root))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.family:
        return family(args)
    m, hidden = args.input_size, args.hidden
    field = AntisymmetricField(m, hidden, gamma=0.01)
    gated = GatedAntisymmetricField(m, hidden, gamma=0.01)
    afrnn = AFRNNField(m, [hidden, hidden], gamma=0.01)
    auto = "auto"
    compiled = kernels.active(torch.device("cpu")) == "compiled"
    T, H = args.T, hidden
    cases: list[Case] = [
        ("GEMM floor", T, gemm_floor(args.batch, hidden), auto),
        ("GEMM floor, banded", T, gemm_floor(args.batch, hidden, banded=True), "compiled"),
        ("GEMM floor, banded, rk4's products (4 stages)", T, gemm_floor(args.batch, hidden, banded=True, stages=4),
         "compiled"),
        ("torch.nn.RNN(tanh)", T, torch_rnn_step(nn.RNN(m, hidden, nonlinearity="tanh", batch_first=True)), auto),
        ("torch.nn.LSTM", T, torch_rnn_step(nn.LSTM(m, hidden, batch_first=True)), auto),
        ("ODERNN euler", T, odernn_step(ODERNN(field, "euler")), auto),
        ("ODERNN euler, Python walks", T, odernn_step(ODERNN(field, "euler")), "python"),
        ("ODERNN euler, generic scan", T, odernn_step(ODERNN(field, "euler", fast_path=False)), auto),
        ("ODERNN rk4", T, odernn_step(ODERNN(field, "rk4")), auto),
        ("ODERNN rk4, Python walks", T, odernn_step(ODERNN(field, "rk4")), "python"),
        ("ODERNN rk4, generic scan", T, odernn_step(ODERNN(field, "rk4", fast_path=False)), auto),
        ("ODERNN euler", 2 * T, odernn_step(ODERNN(field, "euler")), auto),
        ("ODERNN gated euler", T, odernn_step(ODERNN(gated, "euler")), auto),
        (f"ODERNN AFRNN 2x{H} euler", T, odernn_step(ODERNN(afrnn, "euler")), auto),
        (f"ODERNN AFRNN 2x{H} partitioned_euler", T, odernn_step(ODERNN(afrnn, "partitioned_euler")), auto),
    ]
    if args.implicit:  # eps 0.1: one step per input; the implicit stages by functional iteration (solvers.implicit)
        cases += [(f"ODERNN {name}, eps {IMPLICIT_EPS:g}", T, odernn_step(ODERNN(field, name, step_size=IMPLICIT_EPS)),
                   auto) for name in ("midpoint", "implicit_midpoint", "rk4", "gauss_legendre4")]
    if not compiled:  # the Python-walk rows would repeat the fused rows; no banded floor without the build
        cases = [case for case in cases if case[3] not in ("python", "compiled")]
    inputs = {steps: torch.randn(args.batch, steps, m) for steps in (T, 2 * T)}
    times = interleaved_medians(cases, inputs, args.repeats, args.warmup, not args.no_progress)
    base, floor, euler = times["torch.nn.RNN(tanh)", T], times["GEMM floor", T], times["ODERNN euler", T]
    print(f"forward+backward, B={args.batch}, H={hidden}, m={m}, median of {args.repeats} after {args.warmup} "
          f"warm-up, torch {torch.__version__}, {torch.get_num_threads()} threads, fused scans: "
          f"{'compiled' if compiled else 'Python'} walks\n")
    print("| case | T | time (ms) | vs GEMM floor | vs nn.RNN | vs ODERNN euler (same T) |")
    print("|---|---|---|---|---|---|")
    for (name, steps), seconds in times.items():
        same_t = times.get(("ODERNN euler", steps), euler)
        floor_t = floor * steps / T
        print(f"| {name} | {steps} | {1e3 * seconds:.1f} | {seconds / floor_t:.2f}x | {seconds / base:.2f}x | "
              f"{seconds / same_t:.2f}x |")
    doubling = times["ODERNN euler", 2 * T] / euler
    ratio = {name: times[name, T] / floor for name in ("ODERNN euler", "ODERNN rk4", "ODERNN gated euler",
                                                        f"ODERNN AFRNN 2x{H} euler")}
    rk4_floor = times.get(("GEMM floor, banded, rk4's products (4 stages)", T))
    own = f" ({times['ODERNN rk4', T] / rk4_floor:.2f}x its own products, banded)" if rk4_floor else ""
    print(f"\ntargets against the GEMM floor: euler {ratio['ODERNN euler']:.2f}x (<= 1.5), "
          f"rk4 {ratio['ODERNN rk4']:.2f}x{own} (<= 4.5), gated euler {ratio['ODERNN gated euler']:.2f}x (<= 2.5), "
          f"AFRNN 2x{H} euler {ratio[f'ODERNN AFRNN 2x{H} euler']:.2f}x (<= 5); euler {euler / base:.2f}x nn.RNN; "
          f"doubling T {doubling:.2f}x (<= 2.2)")
    if args.implicit:
        eps = f", eps {IMPLICIT_EPS:g}"
        print(f"implicit at eps {IMPLICIT_EPS:g}: implicit_midpoint "
              f"{times['ODERNN implicit_midpoint' + eps, T] / times['ODERNN midpoint' + eps, T]:.1f}x midpoint "
              f"(<= 10), gauss_legendre4 {times['ODERNN gauss_legendre4' + eps, T] / times['ODERNN rk4' + eps, T]:.1f}x "
              f"rk4 (<= 10)")
    return 0


def family(args: argparse.Namespace) -> int:
    """The family table (``experiments.family_benchmark``): ODERNN and the authors' cell, interleaved."""
    from experiments.family_benchmark import family_cases, family_table
    cases = family_cases(args.input_size, args.family_models)
    runs: list[Case] = [(f"{label} | {side}", args.T, fn, "auto") for label, ours, theirs in cases
                        for side, fn in (("ours", ours), ("theirs", theirs))]
    times = interleaved_medians(runs, {args.T: torch.randn(args.batch, args.T, args.input_size)}, args.repeats,
                                args.warmup, not args.no_progress)
    pairs = {label: (times[f"{label} | ours", args.T], times[f"{label} | theirs", args.T]) for label, _, _ in cases}
    print(f"forward+backward, T={args.T}, B={args.batch}, m={args.input_size}, median of {args.repeats} after "
          f"{args.warmup} warm-up, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(family_table(pairs))
    return 0
