"""``python -m experiments benchmark --epoch PRESET``: the time of a training epoch of a preset, on synthetic
data of the real shape or, with ``--data-root``, on the task's real data, against torch.nn.RNN's bare
forward+backward over the same batches plus its forward over the same validation set, in one run.

Each arrangement (processes x threads, e.g. ``1x2``: one process with two threads; ``2x1``: two processes
under torchrun, DistributedDataParallel, one thread each) runs the real training loop (``experiments.training
.fit``: data batches, forward, backward, clipping, optimiser step, checkpoint, and the evaluation of a
validation set in the preset's proportion, 1 validation sequence per 9 training ones as in a 10% split) for
``--batches`` global batches of the preset's batch size in a fresh process; with ``--data-root`` the batches
are the task's real sequences (a seeded subset, read and transformed by the task's own loader, validation
carved from it). The baseline is torch.nn.RNN (tanh, the preset's hidden size per layer, the same input size)
doing forward+backward of sum(h_T^2) on the same number of batches of the same shape, plus a forward over as
many validation sequences, in this process with its default threads. Times are per batch and extrapolated to
the preset's epoch (its training-set size / batch size); the ratio is epoch / baseline. What a process pays
once, not per epoch (loading the compiled walks, ~1 s), is paid before the clock starts: scaled from 20
batches to an epoch it would count ~20 times.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from experiments.presets import get_preset

SHAPES = {"mnist": (784, 1, 10, 54000), "pmnist": (784, 1, 10, 54000), "fashion": (784, 1, 10, 54000),
          "cifar10": (1024, 3, 10, 45000), "noisy-cifar10": (1000, 96, 10, 45000)}
"""task -> (sequence length, input size, classes, training sequences after a 10% validation split)."""


def parse_arrangement(text: str) -> tuple[int, int]:
    try:
        processes, threads = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"an arrangement is PROCESSESxTHREADS such as 2x1, got {text!r}") from None
    if processes < 1 or threads < 1:
        raise ValueError(f"processes and threads must be >= 1, got {text!r}")
    return processes, threads


def shape_of(preset_name: str) -> tuple[int, int, int, int]:
    preset = get_preset(preset_name)
    if preset.task not in SHAPES:
        raise ValueError(f"preset {preset_name!r} is on task {preset.task!r}; the epoch benchmark knows "
                         f"{', '.join(SHAPES)}")
    return SHAPES[preset.task]


def validation_count(train_count: int) -> int:
    """Validation sequences beside ``train_count`` training ones: 1 per 9, as in a 10% split."""
    return max(1, train_count // 9)


def worker(preset_name: str, batches: int, seed: int = 0, batch_size: int | None = None,
           data_root: str | None = None) -> dict:
    """One process of an arrangement: ``fit`` for one epoch of ``batches`` global batches (of the preset's
    size unless ``batch_size`` says otherwise), on the task's real data under ``data_root`` if given;
    returns timings."""
    from experiments.distributed import current
    from experiments.sequential import PRESET_FIELDS, RunSettings, classification_loss
    from experiments.training import fit
    from odernn import SequenceClassifier, build_rnn, kernels

    preset = get_preset(preset_name)
    length, inputs, classes, _ = shape_of(preset_name)
    given = {name: getattr(preset, name) for name in PRESET_FIELDS if getattr(preset, name) is not None}
    settings = RunSettings(**{**given, "epochs": 1, "seed": seed,
                              **({} if batch_size is None else {"batch_size": batch_size})})
    torch.manual_seed(seed)
    rnn = build_rnn(settings.model, inputs, settings.hidden_size, solver=settings.solver,
                    step_size=settings.step_size, gamma=settings.gamma, **settings.model_kwargs())
    model = SequenceClassifier(rnn, classes)
    n_train = batches * settings.batch_size
    n_val = validation_count(n_train)
    transform = None
    if data_root is None:
        generator = torch.Generator().manual_seed(seed)
        train = TensorDataset(torch.rand(n_train, length, inputs, generator=generator),
                              torch.randint(classes, (n_train,), generator=generator))
        val = TensorDataset(torch.rand(n_val, length, inputs, generator=generator),
                            torch.randint(classes, (n_val,), generator=generator))
    else:
        from experiments.data import load_task
        task = load_task(preset.task, data_root, val_fraction=n_val / (n_train + n_val),
                         train_subset=n_train + n_val, split_seed=seed)
        train, val, transform = task.train, task.val, task.batch_transform
    config = settings.train_config(len(train), progress=False, checkpoint_every=0)
    context = current()
    kernels.compiled_ops()  # once per process, not per epoch
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        start = time.perf_counter()
        fit(model, classification_loss, train, val, config, run_dir, batch_transform=transform)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "batches": math.ceil(len(train) / settings.batch_size), "n_val": len(val),
            "world_size": context.world_size, "threads": torch.get_num_threads()}


def run_arrangement(preset_name: str, batches: int, processes: int, threads: int,
                    data_root: str | None = None) -> dict:
    """Start one arrangement in fresh processes and read rank 0's timing."""
    arguments = ["-m", "experiments.epoch_benchmark", preset_name, str(batches), str(threads),
                 *([] if data_root is None else [str(data_root)])]
    module = [sys.executable, *arguments]
    if processes > 1:
        module = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                  *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(module, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"arrangement {processes}x{threads} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][0])


def baseline_seconds(preset_name: str, batches: int, repeats: int = 3) -> float:
    """torch.nn.RNN bare forward+backward over ``batches`` batches plus its forward (no graph) over the
    validation sequences that go with them, in batches of the same size (median of ``repeats`` passes)."""
    preset = get_preset(preset_name)
    length, inputs, _, _ = shape_of(preset_name)
    hidden = preset.hidden_size if isinstance(preset.hidden_size, int) else preset.hidden_size[0]
    rnn = nn.RNN(inputs, hidden, nonlinearity="tanh", batch_first=True)
    x = torch.rand(preset.batch_size, length, inputs)
    n_val = validation_count(batches * preset.batch_size)
    val = torch.rand(n_val, length, inputs)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            rnn.zero_grad(set_to_none=True)
            rnn(x)[1].pow(2).sum().backward()
        with torch.no_grad():
            for chunk in val.split(preset.batch_size):
                rnn(chunk)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def epoch_table(preset_name: str, batches: int, arrangements: list[str], data_root: str | None = None) -> str:
    """The markdown table of one run: every arrangement and the nn.RNN baseline, as per-epoch estimates."""
    preset = get_preset(preset_name)
    _, _, _, n_train = shape_of(preset_name)
    per_epoch = math.ceil(n_train / preset.batch_size)
    base = baseline_seconds(preset_name, batches)
    base_epoch = base / batches * per_epoch
    data = f"real {preset.task} sequences from {data_root}" if data_root else "synthetic data of the real shape"
    lines = [f"epoch of preset {preset_name} ({preset.model}, {preset.solver or 'euler'}, batch {preset.batch_size}, "
             f"{per_epoch} batches per epoch; measured on {batches} batches of {data} with 1 validation sequence "
             f"per 9 and scaled), torch {torch.__version__}",
             "", "| arrangement | s / batch | epoch estimate (s) | vs nn.RNN |", "|---|---|---|---|",
             f"| torch.nn.RNN bare forward+backward (+ validation forward), 1 process, {torch.get_num_threads()} "
             f"threads | {base / batches:.3f} | {base_epoch:.0f} | 1.00x |"]
    for text in arrangements:
        processes, threads = parse_arrangement(text)
        timing = run_arrangement(preset_name, batches, processes, threads, data_root)
        seconds = timing["seconds"] / batches
        lines.append(f"| training epoch, {processes} process(es) x {threads} thread(s) | {seconds:.3f} | "
                     f"{seconds * per_epoch:.0f} | {seconds * per_epoch / base_epoch:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":  # one process: python -m experiments.epoch_benchmark PRESET BATCHES THREADS [DATA_ROOT]
    name, count, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    result = worker(name, count, data_root=sys.argv[4] if len(sys.argv) > 4 else None)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result), flush=True)
