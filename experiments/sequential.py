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
import contextlib
import csv
import io
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import solvers
from experiments.cli_options import (ERRORS, SolverOptions, add_dataclass_arguments, add_threads_argument,
                                     check_device, check_output_folder, flag, given, report_error)
from experiments.data import NOISE_MODES, TASKS, SequenceTask, get_task, load_task
from experiments.io import atomic_write_json, atomic_write_text, folder_lock, read_json, remove_stale_temporaries
from experiments.presets import PRESETS, Preset, get_preset
from experiments.resume import CONFIG_FILE, FREE, GROW, check_resume, snapshot
from experiments.stability_gate import DEFAULT_STEPS as DEFAULT_STABILITY_STEPS
from experiments.stability_gate import add_stability_argument, pre_training_check
from experiments.distributed import current
from experiments.training import (CHECKPOINT, OPTIMIZERS, FitResult, TrainConfig, check_run_folder, check_seed,
                                  evaluate, fit)
from odernn import MODEL_NAMES, SequenceClassifier, build_rnn, count_parameters
from odernn.models import default_gamma

BASELINES = ("lstm", "gru")


def _hidden_size(text: str) -> int | tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden size must be an int or comma-separated ints, got {text!r}") from None
    return sizes[0] if len(sizes) == 1 else sizes


DEFAULT_EPOCHS = 10


@dataclass(frozen=True)
class RunSettings(SolverOptions):
    """Every setting of one run after merging flags over the preset over the defaults.

    The flags are derived from the fields (``--hidden-size`` from ``hidden_size``, ...), the preset supplies
    the fields it shares with :class:`experiments.presets.Preset`, and ``--resume`` compares every field
    (:mod:`experiments.resume`): ``epochs`` may be raised, ``device`` may change, nothing else.
    """

    task: str = field(metadata=flag(f"one of {', '.join(TASKS)}"))
    model: str = field(metadata=flag(f"one of {', '.join(MODEL_NAMES)}"))
    hidden_size: int | tuple[int, ...] = field(default=128, metadata=flag(
        "units (per layer: 128 or 128,128)", type=_hidden_size))
    solver: str = field(default="euler", metadata=flag("ODE solver (euler, midpoint, rk4, dopri5, ...)"))
    step_size: float = field(default=0.01, metadata=flag("eps, the step of the discretisation"))
    gamma: float | None = field(default=None, metadata=flag(
        "diffusion gamma (eq. 12); coRNN's stiffness, Lipschitz RNN's shift (default: the model's own, "
        "odernn.models.default_gamma: 0.01, 2.7, 0.001)", type=float))
    sigma_w: float | None = field(default=None, metadata=flag(
        "recurrent init std scale (App. C; default: the field's)", type=float))
    substeps: int = field(default=1, metadata=flag("solver steps per input sample"))
    epochs: int | None = field(default=None, metadata=flag(
        f"epochs (default: the preset's, else {DEFAULT_EPOCHS}); may be raised on --resume", type=int, resume=GROW))
    batch_size: int = field(default=128, metadata=flag("sequences per batch"))
    lr: float = field(default=1e-3, metadata=flag("learning rate"))
    optimizer: str = field(default="adam", metadata=flag("optimiser", choices=OPTIMIZERS))
    momentum: float = field(default=0.9, metadata=flag("SGD momentum"))
    grad_clip: float | None = field(default=None, metadata=flag("clip the gradient norm to this value", type=float))
    lr_decay_epoch: int | None = field(default=None, metadata=flag(
        "divide the learning rate by 10 after this many epochs (coRNN's schedule)", type=int))
    epsilon: float | None = field(default=None, metadata=flag("coRNN's damping epsilon", type=float))
    alpha: float | None = field(default=None, metadata=flag(
        "UnICORNN's alpha, or Lipschitz RNN's scale of A_beta", type=float))
    beta: float | None = field(default=None, metadata=flag("Lipschitz RNN's beta", type=float))
    seed: int = field(default=0, metadata=flag("seed of the model initialisation and batch order"))
    device: str = field(default="cpu", metadata=flag("cpu or cuda[:N]", resume=FREE))
    preset: str | None = field(default=None, metadata=flag(f"a paper row: {', '.join(PRESETS)}", type=str))

    def __post_init__(self) -> None:
        super().__post_init__()
        get_task(self.task)
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; known models: {', '.join(MODEL_NAMES)}")
        if self.gamma is None and self.model in MODEL_NAMES:  # the field's own default, recorded as a number
            object.__setattr__(self, "gamma", default_gamma(self.model))
        stray = [name for name in ("sigma_w", "epsilon", "alpha", "beta") if getattr(self, name) is not None]
        if self.model in BASELINES and stray:
            raise ValueError(f"--{stray[0].replace('_', '-')} is a setting of the ODE models; {self.model} has none")
        if self.model not in BASELINES and self.solver not in solvers.available():
            raise ValueError(f"unknown solver {self.solver!r}; known solvers: {', '.join(solvers.available())}")
        if not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"step size must be a positive finite number, got {self.step_size}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs}")
        sizes = (self.hidden_size,) if isinstance(self.hidden_size, int) else self.hidden_size
        if not sizes or min(sizes) < 1:
            raise ValueError(f"hidden size must be positive, got {self.hidden_size}")
        check_seed(self.seed)
        check_device(self.device)

    def model_kwargs(self) -> dict[str, Any]:
        """Keywords for ``build_rnn`` beyond name, sizes and the ODE settings."""
        if self.model in BASELINES:
            return {}
        given = {name: getattr(self, name) for name in ("sigma_w", "epsilon", "alpha", "beta")
                 if getattr(self, name) is not None}  # build_rnn refuses one the model does not take
        return {"substeps": self.substeps, **given}

    def train_config(self, n_train: int, progress: bool, checkpoint_every: int) -> TrainConfig:
        preset = get_preset(self.preset) if self.preset else None
        epochs = self.epochs or (preset.epochs_for(n_train, self.batch_size) if preset else DEFAULT_EPOCHS)
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           momentum=self.momentum, grad_clip=self.grad_clip, lr_decay_epoch=self.lr_decay_epoch,
                           seed=self.seed, device=self.device,
                           checkpoint_every=checkpoint_every, progress=progress)


PRESET_FIELDS = tuple(f.name for f in fields(Preset) if f.name in {g.name for g in fields(RunSettings)})
"""The fields a preset gives: those it shares with RunSettings."""


@dataclass(frozen=True)
class DataSettings:
    """Where the data is and how it is split (the flags shared with ``sweep``); ``--resume`` compares every
    field but ``data_root``, whose place is compared through the data's identity (resolved path and content
    hash) instead."""

    data_root: str | None = field(default=None, metadata=flag(
        "folder holding MNIST/raw/*, FashionMNIST/raw/* or cifar-10-batches-py/ (never downloaded)", type=str,
        resume=FREE))
    val_fraction: float = field(default=0.1, metadata=flag("validation share carved from train"))
    split_seed: int = field(default=0, metadata=flag("seed of the train/validation split"))
    permutation_seed: int = field(default=0, metadata=flag("seed of the fixed permutation (p-tasks)"))
    noise: str = field(default="fresh", metadata=flag(
        "noise padding: fresh per sample and epoch, or one fixed tensor (coRNN/LEM convention)", choices=NOISE_MODES))
    noise_seed: int = field(default=0, metadata=flag("seed of the fixed noise tensor"))
    train_subset: int | None = field(default=None, metadata=flag(
        "use a seeded subset of N training examples", type=int))
    test_subset: int | None = field(default=None, metadata=flag("evaluate on the first N test examples", type=int))

    def __post_init__(self) -> None:
        for name in ("split_seed", "permutation_seed", "noise_seed"):
            check_seed(getattr(self, name), name)


def resolve_settings(args: argparse.Namespace) -> RunSettings:
    """Flags given on the command line, else the preset's values, else the defaults of :class:`RunSettings`."""
    preset: Preset | None = get_preset(args.preset) if getattr(args, "preset", None) else None
    values: dict[str, Any] = {}
    for f in fields(RunSettings):
        flag_value = getattr(args, f.name, None)
        if flag_value is not None:
            values[f.name] = flag_value
        elif preset is not None and f.name in PRESET_FIELDS and getattr(preset, f.name) is not None:
            values[f.name] = getattr(preset, f.name)
    for required in ("task", "model"):
        if required not in values:
            raise ValueError(f"--{required} is required unless --preset gives it; known presets: {', '.join(PRESETS)}")
    return RunSettings(**values)


def data_settings(args: argparse.Namespace) -> DataSettings:
    return DataSettings(**given(args, DataSettings))


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
    return SequenceClassifier(settings.configure(rnn), task.num_classes)


def _csv_line(row: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    return buf.getvalue()


@dataclass
class PreparedRun:
    """One run after every check (:func:`prepare_run`), before anything is written."""

    settings: RunSettings
    task: SequenceTask
    out_dir: Path
    model: SequenceClassifier
    config: TrainConfig
    resume: bool
    record: dict[str, Any]
    grown: list[str]


def data_identity(task: SequenceTask) -> dict[str, Any]:
    """What identifies the data a run read: the SHA-256 of its files' content (None for data generated or
    shipped with a package, which the settings determine). Its place is free: a run continued in a later
    session on another machine reads the same files from wherever they were fetched to."""
    return {"content_sha256": task.info.get("content_sha256")}


def started_only(out_dir: Path) -> bool:
    """Whether ``out_dir`` exists and holds nothing but what a run writes before its first checkpoint: its
    record, its machine, its lock and temporary files; nothing trained."""
    before_training = {CONFIG_FILE, MACHINE_FILE, ".lock"}
    return out_dir.is_dir() and all(p.name in before_training or p.name.endswith(".tmp") for p in out_dir.iterdir())


def prepare_run(settings: RunSettings, task: SequenceTask, out_dir: Path, *, resume: bool = False,
                progress: bool = True, checkpoint_every: int = 0, data: DataSettings | None = None) -> PreparedRun:
    """Build the model and make every check before anything is written into ``out_dir``: the model and
    training settings are valid, and with ``resume`` the folder's ``config.json`` and checkpoint follow the
    resume rules (:mod:`experiments.resume`; only ``epochs`` may grow), without it there is no checkpoint."""
    model = build_classifier(settings, task)
    context = current(settings.device)
    config = settings.train_config(len(task.train), progress and context.is_writer, checkpoint_every)
    settings = replace(settings, epochs=config.epochs)  # the record holds the epochs actually run
    now: dict[str, Any] = {"settings": settings, "data": data_identity(task)}
    if data is not None:
        now["data_settings"] = data
    checkpoint = (out_dir / CHECKPOINT).is_file()
    if resume and not out_dir.is_dir():
        raise FileNotFoundError(f"--resume given but there is no checkpoint at {out_dir / CHECKPOINT} ({out_dir} "
                                f"holds no run); start the run without --resume")
    if resume and not checkpoint and started_only(out_dir):
        if (out_dir / CONFIG_FILE).is_file():
            check_resume(out_dir, now)
        resume = False  # killed before its first checkpoint: nothing trained is lost; it starts from the beginning
    elif resume and not checkpoint and (out_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"--resume given but there is no checkpoint at {out_dir / CHECKPOINT} (a finished "
                                f"run keeps none); use another --out-dir, or raise --epochs of a run that has one")
    grown = check_resume(out_dir, now) if resume else []
    check_run_folder(out_dir, config, resume, model)
    return PreparedRun(settings, task, out_dir, model, config, resume, now, grown)


def train_and_test(settings: RunSettings, task: SequenceTask, out_dir: Path, *, resume: bool = False,
                   progress: bool = True, checkpoint_every: int = 0, stability_check: str = "warn",
                   test_every_epoch: bool = False, data: DataSettings | None = None,
                   stability_steps: int = DEFAULT_STABILITY_STEPS,
                   prepared: PreparedRun | None = None) -> tuple[dict[str, Any], SequenceClassifier, FitResult]:
    """Train on ``task.train``, select on ``task.val``, evaluate ``task.test`` once; write the run's files.

    Every check (:func:`prepare_run`, then the stability check of a fresh run) comes before the first file
    is written. Returns the results row (also written to ``results.json`` / ``results.csv``), the selected
    model and the loop's :class:`FitResult`.
    """
    run = prepared or prepare_run(settings, task, out_dir, resume=resume, progress=progress,
                                  checkpoint_every=checkpoint_every, data=data)
    lock = folder_lock(run.out_dir) if current(run.settings.device).is_writer else contextlib.nullcontext()
    with lock:  # one writer per run folder, from config.json to results.json (fit takes it again)
        return _train_and_test(run, task, stability_check, test_every_epoch, stability_steps, progress)


def _train_and_test(run: PreparedRun, task: SequenceTask, stability_check: str, test_every_epoch: bool,
                    stability_steps: int, progress: bool) -> tuple[dict[str, Any], SequenceClassifier, FitResult]:
    settings, model, config, out_dir, resume = run.settings, run.model, run.config, run.out_dir, run.resume
    n_params = count_parameters(model)
    context = current(settings.device)
    preset = get_preset(settings.preset) if settings.preset else None
    paper = f" (paper: {preset.paper_params})" if preset else ""
    say = print if context.is_writer else (lambda *args, **kwargs: None)
    say(f"{settings.model} on {task.name}: {n_params:,} trainable parameters{paper}; "
        f"{len(task.train)} train / {len(task.val)} validation / {len(task.test)} test sequences of "
        f"{task.seq_len} x {task.input_size}; {config.epochs} epochs"
        + (f"; {context.world_size} processes" if context.active else "")
        + (f"; resuming with {', '.join(run.grown)}" if run.grown else ""), flush=True)
    if not resume and context.is_writer:
        x = task.train[:8][0]
        if task.batch_transform is not None:
            x = task.batch_transform(x, torch.Generator().manual_seed(settings.seed))
        pre_training_check(model, x, stability_check, stability_steps, progress=progress)
    if context.is_writer:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir)
        atomic_write_json({**{name: snapshot(section) for name, section in run.record.items()}, "data": task.info,
                           "train_config": asdict(config), "parameters": n_params,
                           "world_size": context.world_size}, out_dir / CONFIG_FILE)
        record_machine(out_dir, context.world_size)
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


MACHINE_FILE = "machine.json"


def record_machine(out_dir: Path, world_size: int) -> None:
    """Append the machine this start (or resume) trains on to ``machine.json``: a run that continues across
    sessions may train on several, and its results row names them all. Not part of the resume rules."""
    path = out_dir / MACHINE_FILE
    try:
        entries = read_json(path) if path.is_file() else []
    except ValueError:  # informational only: a damaged record is restarted, never a reason to stop a run
        entries = []
    entries = entries if isinstance(entries, list) else []
    cpu = platform.processor() or platform.machine()
    try:
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    from odernn import kernels
    entries.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu, "cores": os.cpu_count(),
                    "threads": torch.get_num_threads(), "world_size": world_size, "torch": torch.__version__,
                    "scan": kernels.active(torch.device("cpu"))})
    atomic_write_json(entries, path)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``sweep``: where the data is and how it is split (one per :class:`DataSettings` field)."""
    add_dataclass_arguments(parser, DataSettings, "data", defaults=True)


_RUN_FLAGS = ("task", "model", "solver", "preset")  # sequential's own; sweep has --models and --solvers


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``sweep``: model size, ODE settings, adaptive-solver options and optimisation (one per
    :class:`RunSettings` field; unset: the preset's value or the default)."""
    add_dataclass_arguments(parser, RunSettings, "model, solver and training", exclude=_RUN_FLAGS)
    add_threads_argument(parser, None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, RunSettings, "run", exclude=tuple(
        f.name for f in fields(RunSettings) if f.name not in _RUN_FLAGS))
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--out-dir", type=Path, default=None, help="run folder (default runs/sequential/<...>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out-dir from its checkpoint; only with the settings it was "
                             "started with (--epochs may be raised to train on)")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N batches")
    parser.add_argument("--test-every-epoch", action="store_true",
                        help="also evaluate the test set after every epoch, for the learning curve only "
                             "(metrics.json: test_accuracy; the epoch is still selected on validation)")
    add_stability_argument(parser)


def load_task_from_args(args: argparse.Namespace, task: str) -> SequenceTask:
    data = data_settings(args)
    return load_task(task, data.data_root, val_fraction=data.val_fraction, split_seed=data.split_seed,
                     permutation_seed=data.permutation_seed, noise=data.noise, noise_seed=data.noise_seed,
                     train_subset=data.train_subset, test_subset=data.test_subset)


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)


def run(args: argparse.Namespace) -> int:
    try:
        settings = resolve_settings(args)
        out_dir = args.out_dir or Path("runs") / "sequential" / f"{settings.task}-{settings.model}-{settings.solver}-s{settings.seed}"
        check_output_folder(out_dir)
        apply_threads(args)
        task = load_task_from_args(args, settings.task)
        train_and_test(settings, task, out_dir, resume=args.resume, progress=not args.no_progress,
                       checkpoint_every=args.checkpoint_every, stability_check=args.stability_check,
                       test_every_epoch=args.test_every_epoch, data=data_settings(args),
                       stability_steps=args.stability_steps)
    except ERRORS as exc:
        return report_error(exc)
    return 0
