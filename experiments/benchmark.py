"""``python -m experiments benchmark``: forward+backward time of ODERNN(AntisymmetricField) against torch.nn.RNN
and torch.nn.LSTM measured in the same run, printed as a markdown table of ratios .

Rows: torch.nn.RNN(tanh) (the 1.00x baseline), torch.nn.LSTM, ODERNN euler and rk4 (the fused scan of
``odernn.fused`` chosen automatically), each also through the generic stepped scan, ODERNN euler at 2T, the
gated field under euler and AFRNN with two layers of H units under euler and partitioned_euler (fused too).
Each time is the median of ``--repeats`` runs after ``--warmup`` runs; the loss is sum(h_T^2). The runs are
interleaved (one run of every model per round), so a change of machine load affects all models alike.
Targets: euler <= 1.0x nn.RNN, rk4 <= 4.5x our euler, doubling T <= 2.2x, gated euler <= 2.2x our euler,
AFRNN 2xH under euler and partitioned_euler <= 4.3x our euler (its coupling matrix has 4x the multiply-adds).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from odernn import ODERNN, AFRNNField, AntisymmetricField, GatedAntisymmetricField


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
    parser.add_argument("--arrangements", default="1x2,2x1",
                        help="PROCESSESxTHREADS list for --epoch (default 1x2,2x1)")
    parser.add_argument("--memory", action="store_true",
                        help="instead of times: bytes autograd keeps for backward, euler against reversible_heun, "
                             "at T=1000 and T=4000 (with --batch and --hidden)")


def torch_rnn_step(core: nn.RNNBase) -> Callable[[Tensor], Tensor]:
    return lambda x: core(x)[0][:, -1]


def odernn_step(model: ODERNN) -> Callable[[Tensor], Tensor]:
    return lambda x: model(x)[1]


def time_once(run: Callable[[Tensor], Tensor], x: Tensor) -> float:
    start = time.perf_counter()
    run(x).pow(2).sum().backward()
    return time.perf_counter() - start


def interleaved_medians(cases: list[tuple[str, int, Callable[[Tensor], Tensor]]], inputs: dict[int, Tensor],
                        repeats: int, warmup: int, progress: bool) -> dict[tuple[str, int], float]:
    """Median time per case over ``repeats`` rounds, each round timing every case once (after warm-up rounds)."""
    samples: dict[tuple[str, int], list[float]] = {(name, T): [] for name, T, _ in cases}
    for round_ in tqdm(range(warmup + repeats), desc="benchmark rounds", disable=not progress):
        for name, T, step in cases:
            seconds = time_once(step, inputs[T])
            if round_ >= warmup:
                samples[name, T].append(seconds)
    return {key: statistics.median(values) for key, values in samples.items()}


def check_args(args: argparse.Namespace) -> None:
    for name in ("T", "batch", "hidden", "input_size", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")


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
        print(epoch_table(args.epoch, args.epoch_batches, args.arrangements.split(",")))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    m, hidden = args.input_size, args.hidden
    field = AntisymmetricField(m, hidden, gamma=0.01)
    gated = GatedAntisymmetricField(m, hidden, gamma=0.01)
    afrnn = AFRNNField(m, [hidden, hidden], gamma=0.01)
    cases = [
        ("torch.nn.RNN(tanh)", args.T, torch_rnn_step(nn.RNN(m, hidden, nonlinearity="tanh", batch_first=True))),
        ("torch.nn.LSTM", args.T, torch_rnn_step(nn.LSTM(m, hidden, batch_first=True))),
        ("ODERNN euler", args.T, odernn_step(ODERNN(field, "euler"))),
        ("ODERNN euler, generic scan", args.T, odernn_step(ODERNN(field, "euler", fast_path=False))),
        ("ODERNN rk4", args.T, odernn_step(ODERNN(field, "rk4"))),
        ("ODERNN rk4, generic scan", args.T, odernn_step(ODERNN(field, "rk4", fast_path=False))),
        ("ODERNN euler", 2 * args.T, odernn_step(ODERNN(field, "euler"))),
        ("ODERNN gated euler", args.T, odernn_step(ODERNN(gated, "euler"))),
        (f"ODERNN AFRNN 2x{hidden} euler", args.T, odernn_step(ODERNN(afrnn, "euler"))),
        (f"ODERNN AFRNN 2x{hidden} partitioned_euler", args.T, odernn_step(ODERNN(afrnn, "partitioned_euler"))),
    ]
    inputs = {T: torch.randn(args.batch, T, m) for T in (args.T, 2 * args.T)}
    times = interleaved_medians(cases, inputs, args.repeats, args.warmup, not args.no_progress)
    base, euler = times["torch.nn.RNN(tanh)", args.T], times["ODERNN euler", args.T]
    print(f"forward+backward, B={args.batch}, H={hidden}, m={m}, median of {args.repeats} after {args.warmup} "
          f"warm-up, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | T | time (ms) | vs nn.RNN | vs ODERNN euler (same T) |")
    print("|---|---|---|---|---|")
    for (name, T), seconds in times.items():
        same_t = times.get(("ODERNN euler", T), euler)
        print(f"| {name} | {T} | {1e3 * seconds:.1f} | {seconds / base:.2f}x | {seconds / same_t:.2f}x |")
    doubling = times["ODERNN euler", 2 * args.T] / euler
    print(f"\ntargets: euler {euler / base:.2f}x nn.RNN (<= 1.0), "
          f"rk4 {times['ODERNN rk4', args.T] / euler:.2f}x euler (<= 4.5), doubling T {doubling:.2f}x (<= 2.2), "
          f"gated euler {times['ODERNN gated euler', args.T] / euler:.2f}x euler (<= 2.2), "
          f"AFRNN euler {times[f'ODERNN AFRNN 2x{hidden} euler', args.T] / euler:.2f}x and partitioned_euler "
          f"{times[f'ODERNN AFRNN 2x{hidden} partitioned_euler', args.T] / euler:.2f}x euler (<= 4.3)")
    return 0
