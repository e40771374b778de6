"""One training loop for every experiment: optimiser, clipping, evaluation, best-on-validation selection,
atomic checkpoints (end of epoch and every ``checkpoint_every`` batches) and exact resumption.

Determinism: the order of epoch ``e`` is a permutation drawn from a generator seeded by ``(seed, e)``, and
the per-batch randomness handed to ``batch_transform`` (fresh noise padding, for instance) comes from a
generator seeded by ``(seed, e, batch)``. A checkpoint stores the model, the optimiser, the position inside
the epoch, the running sums of the epoch and the global RNG states, so a run killed at any point and resumed
from its last checkpoint computes exactly what the uninterrupted run computes.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from experiments.cli_options import check_device
from experiments.distributed import current, unwrap
from experiments.io import (atomic_save, atomic_write_json, atomic_write_text, folder_lock, load_checkpoint,
                          remove_stale_temporaries)
from experiments.resume import FREE, GROW, differences, rule

LossFn = Callable[[Tensor, Tensor], Tensor]
MetricFn = Callable[[Tensor, Tensor], float]
BatchTransform = Callable[[Tensor, torch.Generator], Tensor]

OPTIMIZERS = ("adam", "sgd", "adagrad")
_EVAL_STREAM = 1_000_003  # offsets the evaluation generators from the training ones


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; validated on creation.

    A checkpoint resumes only under the same settings (:mod:`experiments.resume`): ``epochs`` may be raised
    to train on; ``device``, ``checkpoint_every`` and ``progress`` may change; every other field must match.
    """

    epochs: int = field(metadata=rule(GROW))
    batch_size: int
    lr: float
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float | None = None
    lr_decay_epoch: int | None = None
    """After this many epochs the learning rate is divided by 10 (coRNN's schedule); None: constant."""
    seed: int = 0
    device: str = field(default="cpu", metadata=rule(FREE))
    checkpoint_every: int = field(default=0, metadata=rule(FREE))
    progress: bool = field(default=True, metadata=rule(FREE))

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (0-based) ``epoch``."""
        decayed = self.lr_decay_epoch is not None and epoch >= self.lr_decay_epoch
        return self.lr / 10 if decayed else self.lr

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.lr_decay_epoch is not None and (not isinstance(self.lr_decay_epoch, int) or self.lr_decay_epoch < 1):
            raise ValueError(f"lr_decay_epoch must be a positive integer, got {self.lr_decay_epoch!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be None or a positive number, got {self.grad_clip!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0: end of epoch only), got {self.checkpoint_every}")
        check_seed(self.seed)
        check_device(self.device)


def check_seed(seed: Any, name: str = "seed") -> None:
    """A seed torch's generators take: an int in [0, 2^63 - 1]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"{name} must be an integer from 0 to 2^63 - 1, got {seed!r}")


@dataclass
class FitResult:
    """What :func:`fit` leaves: one history row per epoch and the selected (best-on-validation) epoch.

    On return the model holds the weights of ``best_epoch``.
    """

    history: list[dict[str, float]]
    best_epoch: int
    best_value: float
    select: str
    run_dir: Path
    train_time_s: float = field(default=0.0)


def make_optimizer(params: Sequence[nn.Parameter] | Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` (SGD uses momentum ``config.momentum``)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adagrad(params, lr=config.lr, weight_decay=config.weight_decay)


def _generator(*key: int) -> torch.Generator:
    seed = 0
    for k in key:  # a simple, stable mixing of the key into a 63-bit seed
        seed = (seed * 6364136223846793005 + k + 1442695040888963407) % (2**63)
    return torch.Generator().manual_seed(seed)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The sample order of ``epoch``: a permutation of ``range(n)`` fixed by ``(seed, epoch)``."""
    return torch.randperm(n, generator=_generator(seed, epoch))


def _batch(data: Any, idx: Tensor) -> tuple[Tensor, Tensor]:
    if isinstance(data, torch.utils.data.TensorDataset):
        x, y = (t[idx] for t in data.tensors)
        return x, y
    items = [data[int(i)] for i in idx]
    return torch.stack([torch.as_tensor(a) for a, _ in items]), torch.stack([torch.as_tensor(b) for _, b in items])


def _check_dataset(name: str, data: Any) -> None:
    if data is None or len(data) == 0:
        raise ValueError(f"the {name} set is empty; fit needs at least one ({name}) sample")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    batch_size: int,
    *,
    metrics: Mapping[str, MetricFn] | None = None,
    device: str | torch.device = "cpu",
    batch_transform: BatchTransform | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Mean loss (``loss_fn`` is a batch mean) and the metrics (each a sum over a batch) over ``data``.

    Under torchrun every rank evaluates its share of each batch and the sums are all-reduced, so every rank
    returns the numbers of the whole set.
    """
    _check_dataset("evaluation", data)
    context = current()
    model = unwrap(model)
    was_training = model.training
    model.eval()
    n = len(data)
    totals = {"loss": 0.0, **{name: 0.0 for name in metrics or {}}}
    for b, start in enumerate(range(0, n, batch_size)):
        x, y = _batch(data, torch.arange(start, min(start + batch_size, n)))
        if batch_transform is not None:
            x = batch_transform(x, _generator(seed, _EVAL_STREAM, b))
        x, y = x[context.rank::context.world_size].to(device), y[context.rank::context.world_size].to(device)
        if len(y) == 0:
            continue
        out = model(x)
        totals["loss"] += float(loss_fn(out, y)) * len(y)
        for name, fn in (metrics or {}).items():
            totals[name] += float(fn(out, y))
    model.train(was_training)
    summed = context.sum(list(totals.values()))
    return {name: value / n for name, value in zip(totals, summed)}


def _is_better(value: float, best: float | None, select: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if select == "loss" else value > best


def _write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    atomic_write_json(history, run_dir / "metrics.json")
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for row in history for k in row))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(buf.getvalue(), run_dir / "metrics.csv")


CHECKPOINT_KEYS = ("model", "optimizer", "config", "epoch", "batch", "sums", "history", "best", "best_epoch",
                   "torch_rng")
"""What a checkpoint of ``fit`` holds; one missing any is refused before training."""


def _state(model, optimizer, config, epoch, batch, sums, history, best, best_epoch) -> dict[str, Any]:
    return dict(zip(CHECKPOINT_KEYS, (unwrap(model).state_dict(), optimizer.state_dict(), asdict(config), epoch,
                                      batch, sums, history, best, best_epoch, torch.get_rng_state())))


CHECKPOINT = "checkpoint.pt"


def check_run_folder(run_dir: str | Path, config: TrainConfig, resume: bool,
                     model: nn.Module | None = None) -> dict | None:
    """The checks :func:`fit` makes before it writes into ``run_dir``, for commands to make before they write
    anything of their own there. With ``resume`` a checkpoint must exist and have been written under the same
    training settings (:class:`TrainConfig`'s resume rules; raising ``epochs`` is allowed), and with ``model``
    it and the folder's ``best.pt`` must hold that model's weights (:func:`check_resumable`): returns its
    state. Without ``resume`` there must be no checkpoint (a run is never overwritten): returns None."""
    path = Path(run_dir) / CHECKPOINT
    if not resume:
        if path.exists():
            raise ValueError(f"{path} exists: pass resume=True (--resume) to continue it, or use a new run directory")
        return None
    if not path.is_file():
        raise FileNotFoundError(f"--resume given but there is no checkpoint at {path}")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path} is not a checkpoint of experiments.training.fit (no training settings in it)")
    found = differences({"settings": state["config"]}, {"settings": config})
    if found:
        raise ValueError(f"cannot resume from {path}: it was written with other training settings: "
                         f"{'; '.join(found)}; use the same settings (only epochs may be raised) or a fresh run "
                         f"directory")
    if model is not None:
        check_resumable(Path(run_dir), state, model)
    return state


def check_resumable(run_dir: Path, state: dict, model: nn.Module) -> None:
    """Before anything is written or trained: the checkpoint ``state`` is complete (every key, a byte RNG
    state, weights of this model's names and shapes) and the folder's ``best.pt``, if any, holds this model's
    weights. Raises ValueError naming the file."""
    path = run_dir / CHECKPOINT
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    rng = state.get("torch_rng")
    if missing or not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1):
        raise ValueError(f"cannot resume from {path}: it is not a complete checkpoint of this training loop "
                         f"({'missing ' + ', '.join(missing) if missing else 'its RNG state is not a byte tensor'})")
    _check_weights(path, state["model"], model)
    best = run_dir / "best.pt"
    if best.exists():  # a broken best.pt would otherwise fail only after the training, at the final load
        _check_weights(best, load_checkpoint(best), model)


def _check_weights(path: Path, weights: Any, model: nn.Module) -> None:
    expected = {name: tuple(value.shape) for name, value in unwrap(model).state_dict().items()}
    found = ({name: tuple(value.shape) for name, value in weights.items() if isinstance(value, torch.Tensor)}
             if isinstance(weights, dict) else {})
    if found != expected:
        missing = sorted(set(expected) - set(found))[:3]
        raise ValueError(f"cannot resume: {path} does not hold this model's weights "
                         f"({'missing ' + ', '.join(missing) if missing else 'other names or shapes'}; another "
                         f"size or model?); restore it or start a fresh run directory")


def _resume_state(state: dict, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    try:
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:  # another model size or architecture
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"cannot resume from {path}: its weights do not fit this model (another size or "
                         f"model?): {first}") from None
    torch.set_rng_state(state["torch_rng"])
    return state


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train: Any,
    val: Any,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    metrics: Mapping[str, MetricFn] | None = None,
    select: str = "loss",
    resume: bool = False,
    batch_transform: BatchTransform | None = None,
    monitor: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` on ``train``, evaluate on ``val`` after every epoch, keep the best epoch.

    ``monitor`` maps names to further datasets evaluated after every epoch for the record only (a learning
    curve on the test set, say): their numbers enter the history as ``<name>_<metric>`` and never the
    selection, which sees ``val`` alone.

    ``loss_fn(outputs, targets)`` returns the batch-mean loss; ``metrics`` map names to functions returning
    a *sum* over a batch (e.g. the number of correct predictions), reported as means. ``select`` is ``"loss"``
    (minimised) or a metric name (maximised). Files in ``run_dir``: ``checkpoint.pt`` (latest, atomic),
    ``best.pt`` (weights of the best epoch), ``metrics.json`` and ``metrics.csv`` (one row per epoch).
    With ``resume=True`` the run continues from ``checkpoint.pt``, only under the same training settings
    (``epochs`` may be raised: :func:`check_run_folder`); without it, an existing checkpoint is an error rather
    than silently overwritten. Temporaries that a killed writer left in ``run_dir`` are removed at the start.

    Under torchrun (``experiments.distributed``) the model is wrapped in DistributedDataParallel, every rank
    trains on its share of each global batch of ``batch_size`` samples, and rank 0 alone writes the files;
    the result equals one process's with the same global batch.
    Rank 0 holds the folder's lock (``experiments.io.folder_lock``) while it trains: a second process
    writing into the same folder is refused.
    """
    lock = folder_lock(run_dir) if current(config.device).is_writer else contextlib.nullcontext()
    with lock:
        return _train(model, loss_fn, train, val, config, run_dir, metrics, select, resume, batch_transform, monitor)


def _train(model: nn.Module, loss_fn: LossFn, train: Any, val: Any, config: TrainConfig, run_dir: str | Path,
           metrics: Mapping[str, MetricFn] | None, select: str, resume: bool,
           batch_transform: BatchTransform | None, monitor: Mapping[str, Any] | None) -> FitResult:
    """The body of :func:`fit`, under its lock."""
    _check_dataset("training", train)
    _check_dataset("validation", val)
    if select != "loss" and select not in (metrics or {}):
        raise ValueError(f"select={select!r} is neither 'loss' nor one of the metrics {sorted(metrics or {})}")
    run_dir = Path(run_dir)
    ckpt_path, best_path = run_dir / CHECKPOINT, run_dir / "best.pt"
    saved = check_run_folder(run_dir, config, resume, model)  # before anything is written
    context = current(config.device)
    if context.is_writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(context.device(config.device))
    model.to(device)
    optimizer = make_optimizer(model.parameters(), config)
    trained = context.wrap(model)

    history: list[dict[str, float]] = []
    best: float | None = None
    best_epoch, start_epoch, start_batch = -1, 0, 0
    sums = {"loss": 0.0, "n": 0, "time": 0.0}
    if saved is not None:
        state = _resume_state(saved, ckpt_path, model, optimizer)
        history, best, best_epoch = state["history"], state["best"], state["best_epoch"]
        start_epoch, start_batch, sums = state["epoch"], state["batch"], state["sums"]
    if context.is_writer:
        remove_stale_temporaries(run_dir)  # left by a writer killed before its rename
    context.barrier()  # every rank has checked the run folder before rank 0 writes into it

    n = len(train)
    n_batches = math.ceil(n / config.batch_size)
    fit_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        for group in optimizer.param_groups:  # a function of the epoch alone, so a resumed run agrees
            group["lr"] = config.lr_at(epoch)
        model.train()
        order = epoch_order(n, config.seed, epoch)
        t0 = time.perf_counter() - sums["time"]
        bar = tqdm(range(start_batch, n_batches), total=n_batches, initial=start_batch, leave=False,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (config.progress and context.is_writer))
        for b in bar:
            x, y = _batch(train, order[b * config.batch_size:(b + 1) * config.batch_size])
            if batch_transform is not None:
                x = batch_transform(x, _generator(config.seed, epoch, b))
            total = len(y)
            local = len(context.shard(y))
            scale = context.loss_scale(local, total)
            # a rank whose share of a short last batch is empty still joins the gradient all-reduce: it runs
            # one sample with weight 0
            x, y = (context.shard(x), context.shard(y)) if local else (x[:1], y[:1])
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(trained(x), y)
            batch_loss = context.sum([loss.item() * local])[0] / total
            if not math.isfinite(batch_loss):
                raise FloatingPointError(f"training loss became {batch_loss} at epoch {epoch + 1}, batch {b + 1}")
            (loss * scale if scale != 1.0 else loss).backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            sums["loss"] += batch_loss * total
            sums["n"] += total
            bar.set_postfix(loss=f"{sums['loss'] / sums['n']:.4g}")
            if config.checkpoint_every and (b + 1) % config.checkpoint_every == 0 and b + 1 < n_batches:
                sums["time"] = time.perf_counter() - t0
                if context.is_writer:
                    atomic_save(_state(model, optimizer, config, epoch, b + 1, sums, history, best, best_epoch),
                                ckpt_path)
        start_batch = 0
        val_metrics = evaluate(model, loss_fn, val, config.batch_size, metrics=metrics, device=device,
                               batch_transform=batch_transform, seed=config.seed)
        epoch_time = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": sums["loss"] / sums["n"],
               **{f"val_{k}": v for k, v in val_metrics.items()}, "epoch_time_s": epoch_time}
        for name, data in (monitor or {}).items():
            watched = evaluate(model, loss_fn, data, config.batch_size, metrics=metrics, device=device,
                               batch_transform=batch_transform, seed=config.seed)
            row.update({f"{name}_{k}": v for k, v in watched.items()})
        history.append(row)
        if _is_better(val_metrics[select], best, select):
            best, best_epoch = val_metrics[select], epoch + 1
            if context.is_writer:
                atomic_save(model.state_dict(), best_path)
        sums = {"loss": 0.0, "n": 0, "time": 0.0}
        if context.is_writer:
            atomic_save(_state(model, optimizer, config, epoch + 1, 0, sums, history, best, best_epoch), ckpt_path)
            _write_metrics(run_dir, history)
        if config.progress and context.is_writer:
            tqdm.write(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    context.barrier()  # rank 0 has written best.pt
    if best_path.is_file():
        model.load_state_dict(load_checkpoint(best_path, map_location=device))
    return FitResult(history=history, best_epoch=best_epoch, best_value=float("nan") if best is None else best,
                     select=select, run_dir=run_dir, train_time_s=time.perf_counter() - fit_start)
