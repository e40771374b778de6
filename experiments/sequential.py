"""``python -m experiments sequential``: sequential image classification (AntisymmetricRNN Tables 1-2,
AFRNN Tables 1-2) on any task of :mod:`experiments.data` with any model of ``odernn.build_rnn``.

The classifier reads the last hidden state (top layer) through a linear layer and is trained with
cross-entropy by :func:`experiments.training.fit`; the epoch with the best validation accuracy (validation
carved from the training set) is kept and the test set is evaluated once. ``--preset NAME`` loads one
paper row (:mod:`experiments.presets`); explicit flags override it. Files in ``--out-dir``: ``config.json``
(settings and data provenance, the permutation included), the loop's ``metrics.json`` / ``metrics.csv``
(one row per epoch) and checkpoints, and ``results.json`` / ``results.csv`` (test accuracy and the paper's).
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import solvers
from experiments.data import NOISE_MODES, TASKS, SequenceTask, get_task, load_task
from experiments.io import atomic_write_json, atomic_write_text
from experiments.presets import PRESETS, Preset, get_preset
from experiments.stability_gate import add_stability_argument, pre_training_check
from experiments.distributed import current
from experiments.training import OPTIMIZERS, FitResult, TrainConfig, evaluate, fit
from odernn import MODEL_NAMES, SequenceClassifier, build_rnn, count_parameters

BASELINES = ("lstm", "gru")


@dataclass(frozen=True)
class RunSettings:
    """Every setting of one run after merging flags over the preset over the defaults."""

    task: str
    model: str
    hidden_size: int | tuple[int, ...] = 128
    solver: str = "euler"
    step_size: float = 0.01
    gamma: float = 0.01
    sigma_w: float | None = None
    substeps: int = 1
    epochs: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    preset: str | None = None

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; known models: {', '.join(MODEL_NAMES)}")
        if self.model not in BASELINES and self.solver not in solvers.available():
            raise ValueError(f"unknown solver {self.solver!r}; known solvers: {', '.join(solvers.available())}")
        if not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"step size must be a positive finite number, got {self.step_size}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs}")
        sizes = (self.hidden_size,) if isinstance(self.hidden_size, int) else self.hidden_size
        if not sizes or min(sizes) < 1:
            raise ValueError(f"hidden size must be positive, got {self.hidden_size}")

    def model_kwargs(self) -> dict[str, Any]:
        """Keywords for ``build_rnn`` beyond name, sizes and the ODE settings."""
        if self.model in BASELINES:
            return {}
        return {"substeps": self.substeps, **({} if self.sigma_w is None else {"sigma_w": self.sigma_w})}

    def train_config(self, n_train: int, progress: bool, checkpoint_every: int) -> TrainConfig:
        preset = get_preset(self.preset) if self.preset else None
        epochs = self.epochs or (preset.epochs_for(n_train, self.batch_size) if preset else DEFAULT_EPOCHS)
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           momentum=self.momentum, grad_clip=self.grad_clip, seed=self.seed, device=self.device,
                           checkpoint_every=checkpoint_every, progress=progress)


DEFAULT_EPOCHS = 10
_PRESET_FIELDS = ("task", "model", "hidden_size", "solver", "step_size", "gamma", "sigma_w", "batch_size", "lr",
                  "optimizer")


def resolve_settings(args: argparse.Namespace) -> RunSettings:
    """Flags given on the command line, else the preset's values, else the defaults of :class:`RunSettings`."""
    preset: Preset | None = get_preset(args.preset) if args.preset else None
    values: dict[str, Any] = {}
    for f in fields(RunSettings):
        flag = getattr(args, f.name, None)
        if flag is not None:
            values[f.name] = flag
        elif preset is not None and f.name in _PRESET_FIELDS and getattr(preset, f.name) is not None:
            values[f.name] = getattr(preset, f.name)
    for required in ("task", "model"):
        if required not in values:
            raise ValueError(f"--{required} is required unless --preset gives it; known presets: {', '.join(PRESETS)}")
    return RunSettings(**values)


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of a batch (softmax over the classes)."""
    return F.cross_entropy(logits, labels)


def correct_predictions(logits: Tensor, labels: Tensor) -> float:
    """Number of arg-max predictions equal to the label (summed over the batch, as ``fit`` expects)."""
    return float((logits.argmax(dim=-1) == labels).sum())


METRICS = {"accuracy": correct_predictions}


def build_classifier(settings: RunSettings, task: SequenceTask) -> SequenceClassifier:
    """The recurrent model of ``settings`` with a linear readout to the task's classes, seeded by ``seed``."""
    torch.manual_seed(settings.seed)
    rnn = build_rnn(settings.model, task.input_size, settings.hidden_size, solver=settings.solver,
                    step_size=settings.step_size, gamma=settings.gamma, **settings.model_kwargs())
    return SequenceClassifier(rnn, task.num_classes)


def _csv_line(row: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    return buf.getvalue()


def train_and_test(settings: RunSettings, task: SequenceTask, out_dir: Path, *, resume: bool = False,
                   progress: bool = True, checkpoint_every: int = 0, stability_check: str = "warn",
                   test_every_epoch: bool = False) -> tuple[dict[str, Any], SequenceClassifier, FitResult]:
    """Train on ``task.train``, select on ``task.val``, evaluate ``task.test`` once; write the run's files.

    Returns the results row (also written to ``results.json`` / ``results.csv``), the selected model and
    the loop's :class:`FitResult`.
    """
    model = build_classifier(settings, task)
    n_params = count_parameters(model)
    context = current(settings.device)
    config = settings.train_config(len(task.train), progress and context.is_writer, checkpoint_every)
    preset = get_preset(settings.preset) if settings.preset else None
    paper = f" (paper: {preset.paper_params})" if preset else ""
    say = print if context.is_writer else (lambda *args, **kwargs: None)
    say(f"{settings.model} on {task.name}: {n_params:,} trainable parameters{paper}; "
        f"{len(task.train)} train / {len(task.val)} validation / {len(task.test)} test sequences of "
        f"{task.seq_len} x {task.input_size}; {config.epochs} epochs"
        + (f"; {context.world_size} processes" if context.active else ""), flush=True)
    if context.is_writer:
        atomic_write_json({"settings": asdict(settings), "train_config": asdict(config), "parameters": n_params,
                           "data": task.info, "world_size": context.world_size}, out_dir / "config.json")
    if not resume and context.is_writer:
        x = task.train[:8][0]
        if task.batch_transform is not None:
            x = task.batch_transform(x, torch.Generator().manual_seed(settings.seed))
        pre_training_check(model, x, stability_check)
    result = fit(model, classification_loss, task.train, task.val, config, out_dir, metrics=METRICS,
                 select="accuracy", resume=resume, batch_transform=task.batch_transform,
                 monitor={"test": task.test} if test_every_epoch else None)
    test = evaluate(model, classification_loss, task.test, config.batch_size, metrics=METRICS,
                    device=config.device, batch_transform=task.batch_transform, seed=config.seed)
    epoch_times = [row["epoch_time_s"] for row in result.history]
    row = {"task": task.name, "model": settings.model, "solver": settings.solver if settings.model not in BASELINES
           else "", "parameters": n_params, "epochs": config.epochs, "best_epoch": result.best_epoch,
           "val_accuracy": result.best_value, "test_accuracy": test["accuracy"], "test_loss": test["loss"],
           "mean_epoch_time_s": sum(epoch_times) / len(epoch_times),
           "preset": settings.preset or "", "paper": preset.paper if preset else "",
           "paper_table": preset.table if preset else "", "paper_accuracy": preset.paper_accuracy if preset else "",
           "paper_params": preset.paper_params if preset else ""}
    if context.is_writer:
        atomic_write_json(row, out_dir / "results.json")
        atomic_write_text(_csv_line(row), out_dir / "results.csv")
    say(f"test accuracy {100 * test['accuracy']:.2f}% (best epoch {result.best_epoch} of {config.epochs}, "
          f"validation {100 * result.best_value:.2f}%)" + (f"; paper {preset.paper_accuracy}%" if preset else ""),
          flush=True)
    return row, model, result


def _hidden_size(text: str) -> int | tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden size must be an int or comma-separated ints, got {text!r}") from None
    return sizes[0] if len(sizes) == 1 else sizes


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``sweep``: where the data is and how it is split."""
    parser.add_argument("--data-root", default=None,
                        help="folder holding MNIST/raw/*, FashionMNIST/raw/* or cifar-10-batches-py/ (never downloaded)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share carved from train")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split")
    parser.add_argument("--permutation-seed", type=int, default=0, help="seed of the fixed permutation (p-tasks)")
    parser.add_argument("--noise", choices=NOISE_MODES, default="fresh",
                        help="noise padding: fresh per sample and epoch, or one fixed tensor (coRNN/LEM convention)")
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the fixed noise tensor")
    parser.add_argument("--train-subset", type=int, default=None, help="use a seeded subset of N training examples")
    parser.add_argument("--test-subset", type=int, default=None, help="evaluate on the first N test examples")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``sweep``: model size, ODE settings and optimisation (None: preset or default)."""
    parser.add_argument("--hidden-size", type=_hidden_size, default=None, help="units (per layer: 128 or 128,128)")
    parser.add_argument("--step-size", type=float, default=None, help="eps, the step of the discretisation")
    parser.add_argument("--gamma", type=float, default=None, help="diffusion gamma (eq. 12)")
    parser.add_argument("--sigma-w", type=float, default=None, help="recurrent init std scale (App. C)")
    parser.add_argument("--substeps", type=int, default=None, help="solver steps per input sample")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default: the preset's, else {DEFAULT_EPOCHS})")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    parser.add_argument("--momentum", type=float, default=None, help="SGD momentum")
    parser.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=None, help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--model", default=None, help=f"one of {', '.join(MODEL_NAMES)}")
    parser.add_argument("--solver", default=None, help="ODE solver (euler, midpoint, rk4, dopri5, ...)")
    parser.add_argument("--preset", default=None, help=f"a paper row: {', '.join(PRESETS)}")
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--out-dir", type=Path, default=None, help="run folder (default runs/sequential/<...>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N batches")
    parser.add_argument("--test-every-epoch", action="store_true",
                        help="also evaluate the test set after every epoch, for the learning curve only "
                             "(metrics.json: test_accuracy; the epoch is still selected on validation)")
    add_stability_argument(parser)


def load_task_from_args(args: argparse.Namespace, task: str) -> SequenceTask:
    return load_task(task, args.data_root, val_fraction=args.val_fraction, split_seed=args.split_seed,
                     permutation_seed=args.permutation_seed, noise=args.noise, noise_seed=args.noise_seed,
                     train_subset=args.train_subset, test_subset=args.test_subset)


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)


def run(args: argparse.Namespace) -> int:
    try:
        settings = resolve_settings(args)
        apply_threads(args)
        task = load_task_from_args(args, settings.task)
        out_dir = args.out_dir or Path("runs") / "sequential" / f"{settings.task}-{settings.model}-{settings.solver}-s{settings.seed}"
        train_and_test(settings, task, out_dir, resume=args.resume, progress=not args.no_progress,
                       checkpoint_every=args.checkpoint_every, stability_check=args.stability_check,
                       test_every_epoch=args.test_every_epoch)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
