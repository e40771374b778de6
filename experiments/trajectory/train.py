"""Train one predictor with the shared loop (:func:`experiments.training.fit`), choose the epoch on the
validation set, evaluate the test set once, and measure the error at every horizon."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import odernn
from experiments.io import atomic_write_json
from experiments.stability_gate import DEFAULT_STEPS as DEFAULT_STABILITY_STEPS
from experiments.stability_gate import pre_training_check
from experiments.training import evaluate, fit
from experiments.trajectory.model import TrajectoryPredictor
from experiments.trajectory.settings import DISCRETE_MODELS, TaskSettings
from experiments.trajectory.task import PreparedTask

RESULT_FILE = "result.json"
EVAL_BATCH = 256


def mse(predictions: Tensor, targets: Tensor) -> Tensor:
    """The training loss: mean squared error per element (batch, horizon and state variables)."""
    return torch.nn.functional.mse_loss(predictions, targets)


def per_horizon_mse(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """MSE at each predicted observation index, averaged over trajectories and state variables: (T - k,)."""
    return ((predictions - targets) ** 2).mean(axis=(0, 2))


@torch.no_grad()
def predict(model: TrajectoryPredictor, packed: Tensor, device: str = "cpu") -> np.ndarray:
    """Predictions (n, T - k, d) of ``model`` (eval mode) for packed inputs, in batches."""
    was_training = model.training
    model.eval()
    out = [model(packed[i:i + EVAL_BATCH].to(device)).cpu() for i in range(0, len(packed), EVAL_BATCH)]
    model.train(was_training)
    return torch.cat(out).double().numpy()


def train_model(task: PreparedTask, settings: TaskSettings, model_name: str, model: TrajectoryPredictor,
                run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                stability_check: str = "warn",
                stability_steps: int = DEFAULT_STABILITY_STEPS) -> tuple[dict[str, Any], np.ndarray]:
    """Fit ``model`` on the task's training set, keep the best validation epoch, evaluate the test set once.

    Writes ``result.json`` into ``run_dir`` (beside the loop's checkpoints and metrics) and returns the result
    row and the test predictions (normalised units, (n_test, T - k, d)).
    """
    run_dir = Path(run_dir)
    config = settings.train_config(progress)
    data = task.datasets
    if not resume:
        pre_training_check(model, model.rnn_inputs(data["train"].tensors[0][:8]), stability_check, stability_steps,
                           progress=progress)
    result = fit(model, mse, data["train"], data["val"], config, run_dir, resume=resume)
    test_mse = evaluate(model, mse, data["test"], EVAL_BATCH, device=config.device)["loss"]
    predictions = predict(model, data["test"].tensors[0], config.device)
    targets = task.targets("test")
    mean_pred, persist = task.mean_predictor("test"), task.persistence("test")
    reference = {"mean_predictor_mse": float(((mean_pred - targets) ** 2).mean()),
                 "persistence_mse": float(((persist - targets) ** 2).mean())}
    discrete = model_name in DISCRETE_MODELS
    row = {
        "model": model_name, "parameters": odernn.count_parameters(model),
        "solver": "" if discrete else settings.solver, "step_size": None if discrete else settings.step_size,
        "gamma": None if discrete else settings.gamma,
        "test_mse": test_mse, **reference, "test_over_mean_predictor": test_mse / reference["mean_predictor_mse"],
        "best_epoch": result.best_epoch, "epochs": config.epochs, "val_mse": result.best_value,
        "train_time_s": sum(r["epoch_time_s"] for r in result.history),
        "horizon": {"index": list(range(task.first_target, task.trajectories.length)),
                    "mean_time_after_context": task.horizon_times("test").tolist(),
                    "mse": per_horizon_mse(predictions, targets).tolist(),
                    "mean_predictor_mse": per_horizon_mse(mean_pred, targets).tolist(),
                    "persistence_mse": per_horizon_mse(persist, targets).tolist()},
        "times_passed_to_model": model.pass_times, "interval_feature": model.interval_feature,
        "units": "standardised per state variable (training mean and std)" if settings.normalize else "data units",
        "settings": {k: v for k, v in asdict(settings).items() if k != "models"},
    }
    atomic_write_json(row, run_dir / RESULT_FILE)
    return row, predictions
