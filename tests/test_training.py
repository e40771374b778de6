"""The shared training loop: selection, files, exact resumption mid-epoch, atomic writes, bad settings."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from experiments.io import atomic_save, load_checkpoint
from experiments.training import TrainConfig, epoch_order, evaluate, fit


def _data(n: int = 96, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    w = torch.randn(5, 3, generator=g)
    y = (x @ w).argmax(dim=1)
    return TensorDataset(x[: n * 3 // 4], y[: n * 3 // 4]), TensorDataset(x[n * 3 // 4:], y[n * 3 // 4:])


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def _correct(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(dim=1) == y).sum())


def _noise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x + 0.1 * torch.randn(x.shape, generator=g)


def _config(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=8, lr=0.05, checkpoint_every=2, progress=False, seed=3)
    return TrainConfig(**{**base, **kw})


def _losses(history):
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_fit_learns_and_writes_files(tmp_path, optimizer):
    train, val = _data()
    model = _model()
    before = evaluate(model, nn.functional.cross_entropy, val, 16, metrics={"acc": _correct})
    result = fit(model, nn.functional.cross_entropy, train, val, _config(optimizer=optimizer, epochs=6),
                 tmp_path, metrics={"acc": _correct}, select="acc")
    after = evaluate(model, nn.functional.cross_entropy, val, 16, metrics={"acc": _correct})
    assert after["loss"] < 0.7 * before["loss"]
    # the model holds the selected epoch's weights, whose validation accuracy is the best of the history
    assert after["acc"] == pytest.approx(max(r["val_acc"] for r in result.history))
    assert result.history[result.best_epoch - 1]["val_acc"] == result.best_value
    for name in ("checkpoint.pt", "best.pt", "metrics.json", "metrics.csv"):
        assert (tmp_path / name).is_file()
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == 6
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss,val_loss,val_acc")
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_mid_epoch_reproduces_uninterrupted_run(tmp_path):
    train, val = _data()
    cfg = _config()
    ref_model = _model()
    ref = fit(ref_model, nn.functional.cross_entropy, train, val, cfg, tmp_path / "ref",
              metrics={"acc": _correct}, batch_transform=_noise)

    calls = {"n": 0}

    def killed_loss(out, y):  # dies in the middle of epoch 2
        calls["n"] += 1
        if calls["n"] == 17:  # 9 train + 3 validation calls in epoch 1, then batch 5
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(out, y)

    run = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), killed_loss, train, val, cfg, run, metrics={"acc": _correct}, batch_transform=_noise)
    state = load_checkpoint(run / "checkpoint.pt")
    assert (state["epoch"], state["batch"]) == (1, 4)  # the last mid-epoch checkpoint before the kill

    resumed_model = _model(seed=99)  # different initial weights: everything must come from the checkpoint
    resumed = fit(resumed_model, nn.functional.cross_entropy, train, val, cfg, run,
                  metrics={"acc": _correct}, batch_transform=_noise, resume=True)
    assert _losses(resumed.history) == _losses(ref.history)
    assert resumed.best_epoch == ref.best_epoch
    for a, b in zip(ref_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_can_extend_a_finished_run(tmp_path):
    train, val = _data()
    ref = fit(_model(), nn.functional.cross_entropy, train, val, _config(epochs=4), tmp_path / "ref")
    fit(_model(), nn.functional.cross_entropy, train, val, _config(epochs=2), tmp_path / "run")
    more = fit(_model(), nn.functional.cross_entropy, train, val, _config(epochs=4), tmp_path / "run", resume=True)
    assert _losses(more.history) == _losses(ref.history)


def test_epoch_order_is_a_seeded_permutation():
    a, b, c = epoch_order(50, 1, 0), epoch_order(50, 1, 0), epoch_order(50, 1, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == list(range(50))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=math.nan), "lr"),
        (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'; known: adam, sgd, adagrad"),
        (dict(grad_clip=0.0), "grad_clip"),
        (dict(checkpoint_every=-1), "checkpoint_every"),
        (dict(device="cuda:7"), "CUDA"),
    ],
)
def test_bad_config(kw, match):
    if kw.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA present: the device is valid here")
    with pytest.raises(ValueError, match=match):
        _config(**kw)


def test_bad_fit_calls(tmp_path):
    train, val = _data()
    empty = TensorDataset(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="validation set is empty"):
        fit(_model(), nn.functional.cross_entropy, train, empty, _config(), tmp_path / "a")
    with pytest.raises(ValueError, match="select='acc'"):
        fit(_model(), nn.functional.cross_entropy, train, val, _config(), tmp_path / "b", select="acc")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(_model(), nn.functional.cross_entropy, train, val, _config(), tmp_path / "c", resume=True)
    assert not (tmp_path / "c").exists()  # nothing created by a failed resume
    fit(_model(), nn.functional.cross_entropy, train, val, _config(epochs=1), tmp_path / "d")
    with pytest.raises(ValueError, match="exists: pass resume=True"):
        fit(_model(), nn.functional.cross_entropy, train, val, _config(epochs=1), tmp_path / "d")
    with pytest.raises(ValueError, match="other training settings: lr: 0.05 -> 0.1"):
        fit(_model(), nn.functional.cross_entropy, train, val, _config(lr=0.1), tmp_path / "d", resume=True)


def test_non_finite_loss_names_the_batch(tmp_path):
    train, val = _data()
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        fit(_model(), lambda out, y: out.sum() * math.inf, train, val, _config(), tmp_path)


def test_atomic_save_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"v": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"v": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["v"], torch.ones(3))  # the old version is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a file at"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable odernn checkpoint"):
        load_checkpoint(bad)


def test_lr_decay_epoch_sets_the_rate_of_every_epoch_and_resumes_with_it(tmp_path):
    """lr / 10 from epoch lr_decay_epoch on: the optimiser of the last checkpoint holds it, and a run resumed
    after the decay ends where an uninterrupted one does."""
    train, val = _data()
    config = _config(epochs=3, lr_decay_epoch=2)
    fit(_model(), nn.functional.cross_entropy, train, val, config, tmp_path / "a")
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert [group["lr"] for group in state["optimizer"]["param_groups"]] == [config.lr / 10]
    fit(_model(), nn.functional.cross_entropy, train, val, _config(epochs=2, lr_decay_epoch=2), tmp_path / "b")
    resumed = fit(_model(), nn.functional.cross_entropy, train, val, config, tmp_path / "b", resume=True)
    whole = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert _losses(resumed.history) == _losses(whole)
