"""The settings of a trajectory-prediction run (task, models, training), declared once; the command-line
flags are derived from them (:mod:`experiments.trajectory.flags`), and presets name a whole set.

Merging order: flags given on the command line, then the preset's values, then the defaults below.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import solvers
from experiments.cli_options import SolverOptions
from experiments.resume import FREE, GROW
from experiments.training import OPTIMIZERS, TrainConfig
from experiments.trajectory.flags import flag
from experiments.trajectory.references import REFERENCES
from experiments.trajectory.task import ALIGNMENTS, OBJECTIVES
from odernn import INTERPOLATIONS, LAYERED_MODELS, MODEL_NAMES
from odernn.models import FIELD_OPTIONS

H0_MODES = ("state", "encoder", "zeros", "ones")
DISCRETE_MODELS = ("lstm", "gru")
MLP_OPTIONS = ("width", "depth")
"""Settings of the neural-ODE field's MLP: passed to the models whose field takes them, refused where none does."""


def model_size(text: str) -> tuple[str, int, int | None]:
    """``"arnn=200"`` -> ``("arnn", 200, None)``, ``"lstm=100x2"`` -> ``("lstm", 100, 2)`` (the ``--size`` flag)."""
    name, sep, size = text.partition("=")
    width, _, layers = size.partition("x")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), int(width), int(layers) if layers else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size takes MODEL=WIDTH or MODEL=WIDTHxLAYERS (e.g. arnn=200, "
                                         f"lstm=100x2), got {text!r}") from None


def seed_or_order(text: str) -> int | None:
    """An integer seed, or ``none`` for the data's own order (the ``--split-seed`` flag)."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split-seed takes an integer or none (the data's own order), "
                                         f"got {text!r}") from None


@dataclass(frozen=True)
class TaskSettings(SolverOptions):
    """Everything about the task and the models once the trajectories are given; validated on creation so
    that a bad value fails before any file is written. The adaptive solvers' ``rtol``, ``atol`` and
    ``max_steps`` come from :class:`experiments.cli_options.SolverOptions`. On ``--resume`` every field must
    match the run's except ``epochs`` (may be raised) and ``device``."""

    models: tuple[str, ...] = field(default=("antisymmetric", "afrnn", "gated", "lstm"), metadata=flag(
        "models to train, any of odernn.MODEL_NAMES", nargs="+", choices=MODEL_NAMES, metavar="MODEL"))
    objective: str = field(default="rollout", metadata=flag(
        "rollout: predict the rest of each trajectory from its first --context observations; one-step: predict each "
        "next observation from all before it (the LEM authors' FitzHugh-Nagumo task)", choices=OBJECTIVES))
    observed: tuple[str, ...] = field(default=(), metadata=flag(
        "the state variables the models read and predict (default: all), by name", nargs="+", type=str,
        metavar="NAME"))
    context: int = field(default=1, metadata=flag(
        "observations the model sees before predicting the rest (1: the papers' protocol, the first state only)"))
    alignment: str = field(default="previous", metadata=flag(
        "input alignment: previous (the input on the interval ending at an observation is the one before it) or "
        "current (one step per observation reading it, the AFRNN authors' double-pendulum code)",
        choices=tuple(ALIGNMENTS)))
    hidden_size: int = field(default=32, metadata=flag("hidden units (per layer for afrnn, arnn2, frnn)"))
    num_layers: int | None = field(default=None, metadata=flag(
        "layers (default: build_rnn's, 2 for afrnn/arnn2/frnn and 1 for lstm/gru)", type=int))
    sizes: tuple[tuple[str, int, int | None], ...] = field(default=(), metadata=flag(
        "one model's width (and layers), overriding --hidden-size and --num-layers for it, MODEL=WIDTH or "
        "MODEL=WIDTHxLAYERS (repeatable; e.g. --size arnn=200 --size lstm=100x2)", option="--size",
        type=model_size, action="append", metavar="MODEL=WIDTH[xLAYERS]"))
    solver: str = field(default="euler", metadata=flag("solver of the ODE models (any registered name)"))
    step_size: float = field(default=0.1, metadata=flag(
        "eps: model time per observation interval (irregular data: per median interval)"))
    gamma: float = field(default=0.01, metadata=flag("diffusion of the ODE models' fields"))
    substeps: int = field(default=1, metadata=flag("fixed steps per observation interval"))
    interpolation: str = field(default="hold", metadata=flag(
        "input path between observations", choices=INTERPOLATIONS))
    sigma_w: float | None = field(default=None, metadata=flag(
        "recurrent init scale of the ODE fields (default: the field's)", type=float))
    width: int | None = field(default=None, metadata=flag(
        "hidden layer width of the neural-ODE field's MLP (default: 2 x hidden size)", type=int))
    depth: int | None = field(default=None, metadata=flag(
        "layers of the neural-ODE field's MLP (default 2)", type=int))
    h0: str = field(default="state", metadata=flag(
        "initial hidden state: state (a learned affine map of the first observation), encoder (a learned MLP of "
        "all the context observations), zeros, or ones",
        choices=H0_MODES))
    normalize: bool = field(default=True, metadata=flag(
        "standardise every state variable with the training set's mean and std (errors are then in those units)"))
    split: tuple[float, float, float] = field(default=(0.7, 0.15, 0.15), metadata=flag(
        "train / validation / test fractions of the trajectories", type=float, nargs=3,
        metavar=("TRAIN", "VAL", "TEST")))
    split_seed: int | None = field(default=0, metadata=flag(
        "seed of the train/validation/test split; none: consecutive blocks in the data's own order",
        type=seed_or_order))
    epochs: int = field(default=30, metadata=flag(
        "training epochs (the epoch is chosen on validation); may be raised on --resume", resume=GROW))
    batch_size: int = field(default=32, metadata=flag("trajectories per batch"))
    lr: float = field(default=1e-2, metadata=flag("learning rate"))
    optimizer: str = field(default="adam", metadata=flag("optimiser", choices=OPTIMIZERS))
    grad_clip: float | None = field(default=None, metadata=flag("clip the gradient norm to this", type=float))
    seed: int = field(default=0, metadata=flag("seed of the model initialisation and batch order"))
    device: str = field(default="cpu", metadata=flag("cpu or cuda[:N]", resume=FREE))
    reference: str | None = field(default=None, metadata=flag(
        "a published table to print beside ours, in its units", choices=tuple(REFERENCES), resume=FREE))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.models:
            raise ValueError(f"--models needs at least one model; known: {', '.join(MODEL_NAMES)}")
        unknown = [m for m in self.models if m not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; known models: {', '.join(MODEL_NAMES)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"--models lists a model twice: {' '.join(self.models)}")
        if self.solver not in solvers.available():
            raise ValueError(f"unknown solver {self.solver!r}; known solvers: {', '.join(solvers.available())}")
        for name in ("context", "hidden_size", "substeps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_layers is not None and self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {self.num_layers!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        if self.objective == "one-step" and self.context != 1:
            raise ValueError(f"--context {self.context} has no effect in one-step prediction (every observation is "
                             f"read); drop it, or use --objective rollout")
        if self.objective == "one-step" and self.alignment != "previous":
            raise ValueError("one-step prediction needs --alignment previous: with 'current' the step that ends at an "
                             "observation reads it, so its output would see its own target")
        if len(set(self.observed)) != len(self.observed):
            raise ValueError(f"--observed names a variable twice: {' '.join(self.observed)}")
        for entry in self.sizes:
            model, width, layers = entry
            if model not in self.models:
                raise ValueError(f"--size {model}={width} names a model that is not trained (--models "
                                 f"{' '.join(self.models)})")
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ValueError(f"--size {model}: the width must be a positive integer, got {width!r}")
            if layers is not None and (model not in LAYERED_MODELS or layers < 1):
                raise ValueError(f"--size {model}={width}x{layers}: layers apply to {', '.join(LAYERED_MODELS)} "
                                 f"and must be positive")
        if len({entry[0] for entry in self.sizes}) != len(self.sizes):
            raise ValueError(f"--size gives one model twice: {self.sizes}")
        if self.split_seed is not None and (isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int)):
            raise ValueError(f"split_seed must be an integer or None (the data's own order), got {self.split_seed!r}")
        for name in MLP_OPTIONS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if not any(name in FIELD_OPTIONS.get(m, ()) for m in self.models):
                takers = [m for m, options in FIELD_OPTIONS.items() if name in options]
                raise ValueError(f"--{name} has no effect on {', '.join(self.models)}; it applies to "
                                 f"{', '.join(takers)}")
        single = [m for m in self.models if m not in LAYERED_MODELS]
        if self.num_layers not in (None, 1) and single:
            raise ValueError(f"--num-layers {self.num_layers} has no effect on the single-layer model(s) "
                             f"{', '.join(single)}; it applies to {', '.join(LAYERED_MODELS)} (train those with "
                             f"it, the others without it)")
        for name in ("step_size",):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, got {self.gamma!r}")
        if self.h0 not in H0_MODES:
            raise ValueError(f"unknown initial hidden state {self.h0!r}; known: {', '.join(H0_MODES)}")
        if len(self.split) != 3 or not all(math.isfinite(f) and f > 0 for f in self.split):
            raise ValueError(f"split must be three positive fractions (train, validation, test), got {self.split!r}")
        self.train_config(progress=False)  # epochs, batch size, lr, optimiser, clipping, device

    def train_config(self, progress: bool = True) -> TrainConfig:
        """The shared loop's settings."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           grad_clip=self.grad_clip, seed=self.seed, device=self.device, progress=progress)

    def hidden_width(self, model: str) -> int:
        """Hidden units (per layer) of ``model``: its ``--size``, else ``hidden_size``."""
        return next((w for m, w, _ in self.sizes if m == model), self.hidden_size)

    def hidden_layers(self, model: str) -> int | None:
        """Layers of ``model``: its ``--size``, else ``num_layers`` where it applies; None: build_rnn's default."""
        own = next((n for m, _, n in self.sizes if m == model), None)
        return own if own is not None else (self.num_layers if model in LAYERED_MODELS else None)

    def rnn_kwargs(self, model: str) -> dict[str, Any]:
        """Keywords for ``odernn.build_rnn`` beyond the name, sizes, solver, step size and gamma."""
        kw: dict[str, Any] = {}
        if self.hidden_layers(model) is not None:
            kw["num_layers"] = self.hidden_layers(model)
        if model in DISCRETE_MODELS:
            return kw
        kw.update(substeps=self.substeps, interpolation=self.interpolation, rtol=self.rtol, atol=self.atol)
        if self.sigma_w is not None:
            kw["sigma_w"] = self.sigma_w
        kw.update({name: getattr(self, name) for name in MLP_OPTIONS
                   if getattr(self, name) is not None and name in FIELD_OPTIONS[model]})
        return kw


# Named settings for both dataclasses: "simulation" (experiments.trajectory.simulate.SimulationSettings) and
# "task" (TaskSettings). Explicit flags override them.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The papers' six ODE models and the LSTM on the pendulum (30 observations over 2.9 s, angles up to
    # 2 rad): ~25 s on 2 cores, every model far below the mean predictor.
    "demo": {
        "simulation": dict(system="pendulum", n=400, steps=30, dt=0.1, data_seed=0),
        "task": dict(models=("antisymmetric", "gated", "afrnn", "arnn", "arnn2", "frnn", "lstm"), hidden_size=32,
                     solver="euler", step_size=0.1, gamma=0.01, h0="state", context=1, epochs=30, batch_size=32,
                     lr=1e-2, optimizer="adam", seed=0),
    },
    # AFRNN paper, Table 3 (Section 5.3), as the authors' code runs it: 1000 double-pendulum trajectories of
    # 30 observations 0.1 s apart, 800/100/100 in the data's order, no normalisation, h0 = ones, one step per
    # observation reading it (alignment "current"), the state at step 0 then the placeholder 1; Euler with
    # eps 0.1 and gamma 0.15; two layers of 100 (ARNN one of 200, the LSTM two of 100); Adam 1e-3, batch 8.
    "table3": {
        "simulation": dict(system="double-pendulum", n=1000, steps=30, dt=0.1, data_seed=0),
        "task": dict(models=("afrnn", "arnn", "frnn", "arnn2", "lstm"), hidden_size=100,
                     sizes=(("arnn", 200, None), ("lstm", 100, 2)), solver="euler", step_size=0.1, gamma=0.15,
                     h0="ones", normalize=False, alignment="current", context=1, split=(0.8, 0.1, 0.1),
                     split_seed=None, epochs=20, batch_size=8, lr=1e-3, optimizer="adam", seed=0,
                     reference="afrnn-table3"),
    },
}
# The Table 3 protocol at demo size: 400 trajectories (300/50/50), 10 epochs (about a minute on 2 cores).
PRESETS["table3-demo"] = {"simulation": {**PRESETS["table3"]["simulation"], "n": 400},
                          "task": {**PRESETS["table3"]["task"], "split": (0.75, 0.125, 0.125), "epochs": 10}}
