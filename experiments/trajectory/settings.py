"""The settings of a trajectory-prediction run (task, models, training), declared once; the command-line
flags are derived from them (:mod:`experiments.trajectory.flags`), and presets name a whole set.

Merging order: flags given on the command line, then the preset's values, then the defaults below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import solvers
from experiments.cli_options import SolverOptions
from experiments.resume import FREE, GROW
from experiments.training import OPTIMIZERS, TrainConfig
from experiments.trajectory.flags import flag
from odernn import INTERPOLATIONS, LAYERED_MODELS, MODEL_NAMES

H0_MODES = ("state", "zeros", "ones")
DISCRETE_MODELS = ("lstm", "gru")


@dataclass(frozen=True)
class TaskSettings(SolverOptions):
    """Everything about the task and the models once the trajectories are given; validated on creation so
    that a bad value fails before any file is written. The adaptive solvers' ``rtol``, ``atol`` and
    ``max_steps`` come from :class:`experiments.cli_options.SolverOptions`. On ``--resume`` every field must
    match the run's except ``epochs`` (may be raised) and ``device``."""

    models: tuple[str, ...] = field(default=("antisymmetric", "afrnn", "gated", "lstm"), metadata=flag(
        "models to train, any of odernn.MODEL_NAMES", nargs="+", choices=MODEL_NAMES, metavar="MODEL"))
    context: int = field(default=1, metadata=flag(
        "observations the model sees before predicting the rest (1: the papers' protocol, the first state only)"))
    hidden_size: int = field(default=32, metadata=flag("hidden units (per layer for afrnn, arnn2, frnn)"))
    num_layers: int | None = field(default=None, metadata=flag(
        "layers (default: build_rnn's, 2 for afrnn/arnn2/frnn and 1 for lstm/gru)", type=int))
    solver: str = field(default="euler", metadata=flag("solver of the ODE models (any registered name)"))
    step_size: float = field(default=0.1, metadata=flag(
        "eps: model time per observation interval (irregular data: per median interval)"))
    gamma: float = field(default=0.01, metadata=flag("diffusion of the ODE models' fields"))
    substeps: int = field(default=1, metadata=flag("fixed steps per observation interval"))
    interpolation: str = field(default="hold", metadata=flag(
        "input path between observations", choices=INTERPOLATIONS))
    sigma_w: float | None = field(default=None, metadata=flag(
        "recurrent init scale of the ODE fields (default: the field's)", type=float))
    h0: str = field(default="state", metadata=flag(
        "initial hidden state: state (a learned affine map of the first observation), zeros, or ones",
        choices=H0_MODES))
    normalize: bool = field(default=True, metadata=flag(
        "standardise every state variable with the training set's mean and std (errors are then in those units)"))
    split: tuple[float, float, float] = field(default=(0.7, 0.15, 0.15), metadata=flag(
        "train / validation / test fractions of the trajectories", type=float, nargs=3,
        metavar=("TRAIN", "VAL", "TEST")))
    split_seed: int = field(default=0, metadata=flag("seed of the train/validation/test split"))
    epochs: int = field(default=30, metadata=flag(
        "training epochs (the epoch is chosen on validation); may be raised on --resume", resume=GROW))
    batch_size: int = field(default=32, metadata=flag("trajectories per batch"))
    lr: float = field(default=1e-2, metadata=flag("learning rate"))
    optimizer: str = field(default="adam", metadata=flag("optimiser", choices=OPTIMIZERS))
    grad_clip: float | None = field(default=None, metadata=flag("clip the gradient norm to this", type=float))
    seed: int = field(default=0, metadata=flag("seed of the model initialisation and batch order"))
    device: str = field(default="cpu", metadata=flag("cpu or cuda[:N]", resume=FREE))

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

    def rnn_kwargs(self, model: str) -> dict[str, Any]:
        """Keywords for ``odernn.build_rnn`` beyond the name, sizes, solver, step size and gamma."""
        kw: dict[str, Any] = {}
        if self.num_layers is not None and model in LAYERED_MODELS:
            kw["num_layers"] = self.num_layers
        if model in DISCRETE_MODELS:
            return kw
        kw.update(substeps=self.substeps, interpolation=self.interpolation, rtol=self.rtol, atol=self.atol)
        if self.sigma_w is not None:
            kw["sigma_w"] = self.sigma_w
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
}
