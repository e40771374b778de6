"""``python -m experiments adding``: the adding problem (Hochreiter and Schmidhuber 1997), as the coRNN and
LEM authors' code poses it, for any model and solver.

Each sequence has T steps of two inputs: a value drawn from U(0, 1), and a marker that is 1 at exactly two
steps, one drawn uniformly from the first half [0, T/2) and one from the second half [T/2, T), and 0
elsewhere. The target is the sum of the two marked values; the model reads all T steps and a linear
readout of its last state predicts the sum; the loss is the mean squared error. Always predicting 1 scores
the variance of the sum, 1/6 (``BASELINE_MSE``): a model has learned the task only well below that.

The authors draw a fresh batch at every step. Here the training set is ``train_size`` sequences, each
generated from its index and ``data_seed`` when a batch asks for it (nothing is held in memory, so the set
may be as large as the training is long); the validation and test sets (``val_size``, ``test_size``) come
from their own seeds. The epoch is chosen on validation and the test set is evaluated once.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import solvers
from experiments.cli_options import (ERRORS, SolverOptions, add_dataclass_arguments, add_threads_argument,
                                     check_output_folder, flag, given, report_error)
from experiments.io import atomic_write_json, folder_lock, remove_stale_temporaries
from experiments.resume import CONFIG_FILE, FREE, GROW, check_resume, snapshot
from experiments.sequential import started_only
from experiments.stability_gate import DEFAULT_STEPS as DEFAULT_STABILITY_STEPS
from experiments.stability_gate import add_stability_argument, pre_training_check
from experiments.training import OPTIMIZERS, TrainConfig, check_run_folder, evaluate, fit
from odernn import MODEL_NAMES, SequenceClassifier, build_rnn, count_parameters
from odernn.models import default_gamma

BASELINE_MSE = 1.0 / 6.0
"""The MSE of always predicting 1: the variance of a sum of two independent U(0, 1) values."""
CHECKPOINT = "checkpoint.pt"
RESULT_FILE = "result.json"
STREAMS = {"train": 0, "val": 1, "test": 2}
"""The data's independent random streams: sample i of a set is drawn from (data_seed, stream, i)."""


class AddingProblem(torch.utils.data.Dataset):
    """``size`` sequences of ``length`` steps; item i is ``(x (length, 2), target (1,))``, drawn from numpy's
    generator seeded by the sequence ``(seed, stream, i)``: the same item on every call, independent across
    items and streams (torch's CPU generator keeps only 32 bits of a seed, too few to tell them apart)."""

    def __init__(self, length: int, size: int, seed: int, stream: int = 0) -> None:
        if length < 2:
            raise ValueError(f"the adding problem needs sequences of at least 2 steps, got {length}")
        if size < 1 or seed < 0:
            raise ValueError(f"the adding problem takes at least 1 sequence and a data seed >= 0, got {size} and "
                             f"{seed}")
        self.length, self.size, self.seed, self.stream = length, size, seed, stream

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} sequences")
        rng = np.random.default_rng([self.seed, self.stream, index])  # a 128-bit SeedSequence: no collisions
        values = torch.from_numpy(rng.random(self.length, dtype=np.float32))
        half = self.length // 2
        first, second = int(rng.integers(0, half)), int(rng.integers(half, self.length))
        markers = torch.zeros(self.length)
        markers[first] = markers[second] = 1.0
        return torch.stack((values, markers), dim=-1), (values[first] + values[second]).reshape(1)


@dataclass(frozen=True)
class AddingSettings(SolverOptions):
    """Everything that defines a run, validated on creation; the flags are derived from the fields and a
    preset names a set of them (explicit flags override it). ``--resume`` compares every field but
    ``epochs`` (which may grow) and ``device``."""

    model: str = field(default="cornn", metadata=flag("any of odernn.MODEL_NAMES", choices=MODEL_NAMES))
    length: int = field(default=500, metadata=flag("T, steps per sequence"))
    hidden_size: int = field(default=128, metadata=flag("hidden units (per layer)"))
    solver: str = field(default="euler", metadata=flag("solver of the ODE models (any registered name)"))
    step_size: float = field(default=0.06, metadata=flag("dt (eps) per input step"))
    gamma: float | None = field(default=None, metadata=flag(
        "the field's gamma (default: the model's own, odernn.models.default_gamma)", type=float))
    epsilon: float | None = field(default=None, metadata=flag("coRNN's damping epsilon", type=float))
    train_size: int = field(default=100_000, metadata=flag("training sequences (generated on demand)"))
    val_size: int = field(default=1000, metadata=flag("validation sequences"))
    test_size: int = field(default=1000, metadata=flag("test sequences"))
    data_seed: int = field(default=0, metadata=flag("seed of the sequences"))
    epochs: int = field(default=5, metadata=flag("passes over the training set; may be raised on --resume",
                                                 resume=GROW))
    batch_size: int = field(default=50, metadata=flag("sequences per batch"))
    lr: float = field(default=0.02, metadata=flag("learning rate"))
    optimizer: str = field(default="adam", metadata=flag("optimiser", choices=OPTIMIZERS))
    grad_clip: float | None = field(default=None, metadata=flag("clip the gradient norm to this", type=float))
    seed: int = field(default=0, metadata=flag("seed of the model initialisation and batch order"))
    device: str = field(default="cpu", metadata=flag("cpu or cuda[:N]", resume=FREE))

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("length", "hidden_size", "train_size", "val_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "length" else 1):
                raise ValueError(f"{name} must be an integer >= {2 if name == 'length' else 1}, got {value!r}")
        if self.solver not in solvers.available():
            raise ValueError(f"unknown solver {self.solver!r}; known solvers: {', '.join(solvers.available())}")
        self.train_config(progress=False)  # epochs, batch size, lr, optimiser, clipping, device
        self.build()  # the model's own checks: step size, gamma, epsilon for models that take them

    def train_config(self, progress: bool = True, checkpoint_every: int = 0) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           grad_clip=self.grad_clip, seed=self.seed, device=self.device, progress=progress,
                           checkpoint_every=checkpoint_every)

    def build(self) -> SequenceClassifier:
        """The model, seeded: a linear readout of the last state gives the predicted sum."""
        torch.manual_seed(self.seed)
        options = {k: v for k, v in (("gamma", self.gamma), ("epsilon", self.epsilon)) if v is not None}
        if self.gamma is not None and default_gamma(self.model) is None:
            raise ValueError(f"--gamma has no effect on {self.model}, whose field has no gamma; drop it")
        if self.model in ("lstm", "gru"):
            if options:
                raise ValueError(f"--gamma and --epsilon apply to the ODE models, not to {self.model}")
            rnn = build_rnn(self.model, 2, self.hidden_size)
        else:
            rnn = self.configure(build_rnn(self.model, 2, self.hidden_size, solver=self.solver,
                                           step_size=self.step_size, **options))
        return SequenceClassifier(rnn, 1)

    def datasets(self) -> dict[str, AddingProblem]:
        sizes = {"train": self.train_size, "val": self.val_size, "test": self.test_size}
        return {name: AddingProblem(self.length, sizes[name], self.data_seed, STREAMS[name]) for name in STREAMS}


# The authors' settings (their code's argparse defaults); the antisymmetric preset is ours, chosen a priori.
PRESETS: dict[str, dict[str, Any]] = {
    "cornn": dict(model="cornn", hidden_size=128, solver="symplectic_euler", step_size=0.06, gamma=66.0,
                  epsilon=15.0, lr=0.02, batch_size=50),
    "lem": dict(model="lem", hidden_size=128, solver="partitioned_euler", step_size=0.0242, lr=0.0026,
                batch_size=50),
    "antisymmetric": dict(model="antisymmetric", hidden_size=128, solver="euler", step_size=0.1, gamma=0.01,
                          lr=0.005, batch_size=50),
}


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    return nn.functional.mse_loss(prediction, target)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="a model's settings from its authors' adding-problem code; explicit flags override them")
    add_dataclass_arguments(parser, AddingSettings, "task, model and training")
    parser.add_argument("--out-dir", type=Path, required=True, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out-dir (--epochs may grow)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="batches between checkpoints (100)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_stability_argument(parser)
    add_threads_argument(parser, 1, "a batch of 50 sequences runs fastest on one")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    try:
        settings = AddingSettings(**{**PRESETS.get(args.preset or "", {}), **given(args, AddingSettings)})
        train(settings, args.out_dir, resume=args.resume, progress=args.progress,
              checkpoint_every=args.checkpoint_every, stability_check=args.stability_check,
              stability_steps=args.stability_steps)
    except ERRORS as exc:
        return report_error(exc)
    return 0


def train(settings: AddingSettings, out_dir: Path, *, resume: bool = False, progress: bool = True,
          checkpoint_every: int = 0, stability_check: str = "warn",
          stability_steps: int = DEFAULT_STABILITY_STEPS) -> dict[str, Any]:
    """Every check, then train with the shared loop, select on validation, test once; returns the row
    written to ``result.json``."""
    check_output_folder(out_dir)
    if checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0, got {checkpoint_every}")
    model = settings.build()
    config = settings.train_config(progress, checkpoint_every)
    now = {"settings": settings}
    started = (out_dir / CONFIG_FILE).is_file()
    if started and not resume:
        raise ValueError(f"{out_dir} holds a run ({CONFIG_FILE}); pass --resume to continue it, or use another "
                         f"--out-dir")
    if resume and not started:
        raise ValueError(f"--resume given but {out_dir} holds no run to continue (no {CONFIG_FILE})")
    if resume:
        check_resume(out_dir, now)
        if not (out_dir / CHECKPOINT).is_file() and started_only(out_dir):
            resume = False  # killed before its first checkpoint: nothing trained is lost, it starts afresh
    check_run_folder(out_dir, config, resume, model)
    data = settings.datasets()
    with folder_lock(out_dir):
        if not resume:
            sample = range(min(8, len(data["train"])))
            pre_training_check(model, torch.stack([data["train"][i][0] for i in sample]), stability_check,
                               stability_steps, progress=progress)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir)
        atomic_write_json({"settings": snapshot(settings), "parameters": count_parameters(model)},
                          out_dir / CONFIG_FILE)
        print(f"adding problem, T = {settings.length}: {settings.model} ({count_parameters(model):,} parameters, "
              f"{settings.solver}, dt {settings.step_size:g}), {settings.train_size} training sequences, "
              f"{settings.epochs} epochs", flush=True)
        start = time.perf_counter()
        result = fit(model, mse, data["train"], data["val"], config, out_dir, resume=resume)
        test = evaluate(model, mse, data["test"], settings.batch_size, device=settings.device)["loss"]
        row = {**asdict(settings), "parameters": count_parameters(model), "test_mse": test,
               "baseline_mse": BASELINE_MSE, "test_over_baseline": test / BASELINE_MSE,
               "best_epoch": result.best_epoch, "val_mse": result.best_value,
               "iterations": settings.epochs * -(-settings.train_size // settings.batch_size),
               "train_time_s": sum(r["epoch_time_s"] for r in result.history),
               "wall_s_this_start": time.perf_counter() - start}
        atomic_write_json(row, out_dir / RESULT_FILE)
    print(f"test MSE {test:.5f} ({test / BASELINE_MSE:.3f} x the 1/6 of always predicting 1), best epoch "
          f"{result.best_epoch} of {settings.epochs}", flush=True)
    return row
