"""``python -m experiments reproduce RUN_DIR ... --data-root DIR``: check a published result in one command.

For each run folder of ``python -m experiments sequential`` (e.g. ``results/mnist-antisymmetric``), rebuilds
the model from its ``config.json``, loads ``best.pt`` (the weights of the epoch selected on validation),
evaluates the task's whole official test set and prints one row: the accuracy beside the paper's figure,
the training iterations behind the weights and in the run so far, the training hours and the machines the
run was trained on (``machine.json``). The data must be the data the run was trained on: its content hash
is compared with the one ``config.json`` recorded. Nothing is written.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import torch

from experiments.cli_options import ERRORS, report_error
from experiments.data import load_task
from experiments.io import load_checkpoint, read_json
from experiments.presets import get_preset
from experiments.sequential import (CONFIG_FILE, MACHINE_FILE, METRICS, DataSettings, RunSettings,
                                    build_classifier, classification_loss)
from experiments.training import CHECKPOINT, evaluate

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (config.json and best.pt in each)")
    parser.add_argument("--data-root", required=True,
                        help="folder holding the task's files (MNIST/raw/* for MNIST; never downloaded)")
    parser.add_argument("--batch-size", type=int, default=500, help="test sequences per forward (default 500)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


@dataclass(frozen=True)
class Row:
    """One checked run: what the README's results table shows."""

    run: str
    task: str
    model: str
    paper: str
    paper_accuracy: Optional[float]
    test_accuracy: float
    best_epoch: int
    iterations_at_best: int
    iterations: int
    target_iterations: int
    hours: float
    machines: str

    def markdown(self) -> str:
        paper = "-" if self.paper_accuracy is None else f"{self.paper_accuracy:.1f}"
        state = "finished" if self.iterations >= self.target_iterations else "running"
        return (f"| {self.run} | {self.paper} | {paper} | {100 * self.test_accuracy:.2f} | {self.best_epoch} | "
                f"{self.iterations_at_best:,} | {self.iterations:,} of {self.target_iterations:,} ({state}) | "
                f"{self.hours:.2f} | {self.machines} |")


HEADER = ("| run | paper | paper acc. % | ours: test acc. % | best epoch | iterations at best | iterations trained | "
          "training hours | machines |\n|---|---|---|---|---|---|---|---|---|")


def read_record(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} has no {path.name}: not a run folder of `sequential` ({what})")
    return read_json(path)


def dataclass_from(cls, record: dict[str, Any], path: Path):
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in record.items() if key in known})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its settings do not describe a run of this version ({exc})") from None


def machines(run: Path) -> str:
    """The machines the run trained on, from ``machine.json`` (one entry per start or resume)."""
    path = run / MACHINE_FILE
    if not path.is_file():
        return "-"
    seen: list[str] = []
    for entry in read_json(path):
        label = f"{entry.get('cpu', '?')} ({entry.get('threads', '?')} threads x {entry.get('world_size', 1)} proc.)"
        if label not in seen:
            seen.append(label)
    return "; ".join(seen)


def check(run: Path, data_root: str, batch_size: int) -> Row:
    config = read_record(run / CONFIG_FILE, "config.json")
    history = read_record(run / "metrics.json", "no epoch finished yet?")
    settings = dataclass_from(RunSettings, config.get("settings", {}), run / CONFIG_FILE)
    data = dataclass_from(DataSettings, config.get("data_settings", {}), run / CONFIG_FILE)
    task = load_task(settings.task, data_root, val_fraction=data.val_fraction, split_seed=data.split_seed,
                     permutation_seed=data.permutation_seed, noise=data.noise, noise_seed=data.noise_seed,
                     train_subset=data.train_subset)  # the whole official test set, whatever the run watched
    recorded = config.get("data", {}).get("content_sha256")
    if recorded and task.info.get("content_sha256") != recorded:
        raise ValueError(f"the data under {data_root} is not the data {run} was trained on (content hash "
                         f"{task.info.get('content_sha256')} against the recorded {recorded})")
    model = build_classifier(settings, task)
    best = run / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(f"{run} has no best.pt (no epoch finished yet)")
    try:
        model.load_state_dict(load_checkpoint(best, map_location="cpu"))
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"{best} does not fit the model of {run / CONFIG_FILE}: {str(exc).splitlines()[0]}") from None
    test = evaluate(model, classification_loss, task.test, batch_size, metrics=METRICS, device="cpu",
                    batch_transform=task.batch_transform, seed=settings.seed)
    per_epoch = math.ceil(int(config.get("data", {}).get("n_train", len(task.train))) / settings.batch_size)
    best_epoch = max(history, key=lambda row: row["val_accuracy"])["epoch"]
    partial = 0
    if (run / CHECKPOINT).is_file():
        state = load_checkpoint(run / CHECKPOINT, map_location="cpu")
        partial = int(state.get("batch", 0)) if isinstance(state, dict) else 0
    preset = get_preset(settings.preset) if settings.preset else None
    return Row(run=run.as_posix(), task=settings.task, model=settings.model,
               paper=f"{preset.paper}, {preset.table}" if preset else "-",
               paper_accuracy=preset.paper_accuracy if preset else None, test_accuracy=test["accuracy"],
               best_epoch=best_epoch, iterations_at_best=best_epoch * per_epoch,
               iterations=len(history) * per_epoch + partial, target_iterations=settings.epochs * per_epoch,
               hours=sum(row["epoch_time_s"] for row in history) / 3600, machines=machines(run))


def run(args: argparse.Namespace) -> int:
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        rows = [check(run, args.data_root, args.batch_size) for run in args.runs]
    except ERRORS as exc:
        return report_error(exc)
    print(HEADER)
    for row in rows:
        print(row.markdown())
    for row in rows:
        paper = "" if row.paper_accuracy is None else f" (paper {row.paper_accuracy:.1f}%)"
        print(f"{row.run}: test accuracy {100 * row.test_accuracy:.2f}%{paper} with the weights of epoch "
              f"{row.best_epoch} ({row.iterations_at_best:,} iterations, chosen on validation); trained "
              f"{row.iterations:,} of {row.target_iterations:,} iterations so far")
    return 0
