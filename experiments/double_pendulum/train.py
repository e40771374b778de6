"""Train the five models of AFRNN Table 3 on the double-pendulum task with ``experiments.training.fit``,
select the epoch on the validation set and report the test set once.

Sizes (paper): AFRNN, 2-ARNN and FRNN two layers of 100; ARNN one layer of 200; LSTM two layers of 100.
Defaults: Adam lr 1e-3, batch 8, step eps = 0.1, diffusion gamma = 0.15, hidden state starting at ones.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import odernn
from experiments.double_pendulum.generate import GroundTruth
from experiments.double_pendulum.table import RESULT_FILE
from experiments.double_pendulum.task import DEFAULT_SPLIT, make_dataset, mse, paper_units, split
from experiments.cli_options import SolverOptions
from experiments.io import atomic_path, atomic_write_json
from experiments.resume import GROW, rule
from experiments.stability_gate import DEFAULT_STEPS as DEFAULT_STABILITY_STEPS
from experiments.stability_gate import pre_training_check
from experiments.training import TrainConfig, evaluate, fit
from solvers import get_method

HIDDEN: dict[str, int | list[int]] = {"afrnn": [100, 100], "arnn": 200, "arnn2": [100, 100],
                                      "frnn": [100, 100], "lstm": 100}
DISCRETISATIONS = ("joint", "partitioned")
H0_MODES = ("ones", "zeros")
PREDICTIONS_FILE = "test_predictions.npz"
N_PLOTTED = 4


@dataclass(frozen=True)
class Settings(SolverOptions):
    """Everything that defines one model's run; validated on creation so that bad input fails before any
    file is written. ``hidden_scale`` multiplies every layer width of the paper (small models for tests).
    The adaptive solvers' ``rtol``, ``atol`` and ``max_steps`` come from
    :class:`experiments.cli_options.SolverOptions`. ``--resume`` compares every field; ``epochs`` may be raised."""

    model: str
    epochs: int = field(metadata=rule(GROW))
    solver: str = "euler"
    step_size: float = 0.1
    gamma: float = 0.15
    discretisation: str = "joint"
    h0: str = "ones"
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    split: tuple[int, int, int] = DEFAULT_SPLIT
    hidden_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in HIDDEN:
            raise ValueError(f"unknown model {self.model!r}; known models: {', '.join(HIDDEN)}")
        self.train_config(progress=False)  # epochs, batch size, learning rate: TrainConfig's checks
        if not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"step size must be a positive finite number, got {self.step_size!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, got {self.gamma!r}")
        if self.discretisation not in DISCRETISATIONS:
            raise ValueError(f"unknown discretisation {self.discretisation!r}; known: {', '.join(DISCRETISATIONS)}")
        if self.h0 not in H0_MODES:
            raise ValueError(f"unknown initial hidden state {self.h0!r}; known: {', '.join(H0_MODES)}")
        if self.model == "lstm" and self.discretisation == "partitioned":
            raise ValueError("the partitioned discretisation applies to the ODE models, not to the LSTM")
        if self.discretisation == "partitioned" and self.solver not in ("euler", "partitioned_euler"):
            raise ValueError(f"--discretisation partitioned is partitioned (Gauss-Seidel) Euler; it cannot be "
                             f"combined with --solver {self.solver}")
        get_method(self.effective_solver)  # unknown solver: ValueError listing the known ones
        if not (math.isfinite(self.hidden_scale) and self.hidden_scale > 0):
            raise ValueError(f"hidden_scale must be a positive number, got {self.hidden_scale!r}")

    def train_config(self, progress: bool = True) -> TrainConfig:
        """The shared loop's settings: Adam with ``lr``, batches of ``batch_size``, seeded by ``seed``."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           progress=progress)

    @property
    def effective_solver(self) -> str:
        return "partitioned_euler" if self.discretisation == "partitioned" else self.solver

    @property
    def hidden(self) -> int | list[int]:
        size = HIDDEN[self.model]
        scale = lambda n: max(1, round(n * self.hidden_scale))  # noqa: E731
        return [scale(n) for n in size] if isinstance(size, list) else scale(size)


class PendulumPredictor(nn.Module):
    """A ``TrajectoryRegressor`` whose hidden state starts at ones (or zeros) and whose outputs at steps
    1..T-1 are the predicted states (step 0 reads the true initial state)."""

    def __init__(self, regressor: nn.Module, h0: str = "ones") -> None:
        super().__init__()
        self.regressor = regressor
        self.h0 = h0

    def forward(self, x: Tensor) -> Tensor:
        return self.regressor(x, initial_hidden(self.regressor.rnn, x, self.h0))[:, 1:]


def initial_hidden(rnn: nn.Module, x: Tensor, mode: str) -> Any:
    """The initial hidden state of ``rnn`` for the batch ``x``, filled with ones or zeros."""
    fill = 1.0 if mode == "ones" else 0.0
    if isinstance(rnn, odernn.LSTMBaseline):
        shape = (rnn.core.num_layers, x.shape[0], rnn.core.hidden_size)
        return tuple(torch.full(shape, fill, dtype=x.dtype, device=x.device) for _ in range(2))
    return torch.full((x.shape[0], rnn.field.state_size), fill, dtype=x.dtype, device=x.device)


def build_model(settings: Settings) -> PendulumPredictor:
    """The model named in ``settings`` with its paper sizes (scaled by ``hidden_scale``), seeded."""
    torch.manual_seed(settings.seed)
    if settings.model == "lstm":
        rnn = odernn.build_rnn("lstm", 4, settings.hidden, num_layers=2)
    else:
        rnn = settings.configure(odernn.build_rnn(settings.model, 4, settings.hidden,
                                                  solver=settings.effective_solver, step_size=settings.step_size,
                                                  gamma=settings.gamma))
    return PendulumPredictor(odernn.TrajectoryRegressor(rnn, 4), settings.h0)


def data_identity(truth: GroundTruth, path: str | Path | None = None) -> dict[str, Any]:
    """The identity of the ground truth a run trains on: the resolved path of its file (None when not
    given) and the SHA-256 of its states, times and initial conditions (not of the file, whose metadata
    holds the time the solve took)."""
    digest = hashlib.sha256()
    for array in (truth.states, truth.times, truth.initial_conditions):
        array = np.ascontiguousarray(array, dtype=np.float64)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return {"path": None if path is None else str(Path(path).resolve()), "content_sha256": digest.hexdigest()}


def train_model(truth: GroundTruth, settings: Settings, run_dir: str | Path, *, resume: bool = False,
                progress: bool = True, stability_check: str = "warn",
                stability_steps: int = DEFAULT_STABILITY_STEPS) -> dict[str, Any]:
    """Fit one model, evaluate its best-on-validation weights on the test set once, write ``result.json``
    and the first test predictions into ``run_dir``; return the result row."""
    run_dir = Path(run_dir)
    train_states, val_states, test_states = split(truth.states, settings.split)
    model = build_model(settings)
    config = settings.train_config(progress)
    if not resume:
        pre_training_check(model, make_dataset(train_states)[:8][0], stability_check, stability_steps,
                           progress=progress)
    result = fit(model, mse, make_dataset(train_states), make_dataset(val_states), config, run_dir,
                 resume=resume)
    test = make_dataset(test_states)
    test_mse = evaluate(model, mse, test, settings.batch_size)["loss"]
    n_steps = truth.states.shape[1] - 1
    row = {
        "model": settings.model, **{k: v for k, v in asdict(settings).items() if k != "model"},
        "solver": settings.effective_solver, "hidden": settings.hidden,
        "parameters": odernn.count_parameters(model),
        "best_epoch": result.best_epoch, "val_mse": result.best_value,
        "val_paper_units": paper_units(result.best_value, n_steps),
        "test_mse": test_mse, "test_paper_units": paper_units(test_mse, n_steps),
        "train_time_s": sum(r["epoch_time_s"] for r in result.history),
        "data": truth.metadata,
    }
    atomic_write_json(row, run_dir / RESULT_FILE)
    _save_predictions(model, test, test_states[:N_PLOTTED], truth.times, run_dir / PREDICTIONS_FILE)
    return row


@torch.no_grad()
def _save_predictions(model: PendulumPredictor, test, true: np.ndarray, times: np.ndarray, path: Path) -> None:
    model.eval()
    x = test.tensors[0][:len(true)]
    predicted = np.concatenate([true[:, :1], model(x).double().numpy()], axis=1)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, times=times, true=true, predicted=predicted)


def load_predictions(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, true, predicted)``: the first test trajectories ``(k, T, 4)`` saved by :func:`train_model`."""
    with np.load(Path(run_dir) / PREDICTIONS_FILE, allow_pickle=False) as data:
        return data["times"], data["true"], data["predicted"]
