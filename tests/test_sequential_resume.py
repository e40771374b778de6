"""A sequential run killed mid-epoch and resumed with ``--resume`` reproduces the uninterrupted run."""
from __future__ import annotations

import json

import pytest
import torch

import experiments.sequential as sequential
from experiments.__main__ import main
from experiments.io import load_checkpoint

KILL_AT_BATCH = 17  # 12 batches per epoch: batch 5 of epoch 2, two batches after the checkpoint at batch 3


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _argv(out_dir) -> list[str]:
    return ["sequential", "--task", "digits-permuted", "--model", "gated", "--hidden-size", "16",
            "--step-size", "0.1", "--epochs", "3", "--batch-size", "30", "--lr", "0.02", "--train-subset", "400",
            "--checkpoint-every", "3", "--seed", "3", "--out-dir", str(out_dir), "--threads", "1", "--no-progress"]


def _history(run_dir) -> list[dict]:
    rows = json.loads((run_dir / "metrics.json").read_text())
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in rows]


def test_killed_mid_epoch_then_resumed_matches_uninterrupted(tmp_path, monkeypatch):
    assert main(_argv(tmp_path / "full")) == 0

    calls = {"train": 0}
    original = sequential.classification_loss

    def dying_loss(logits, labels):
        if torch.is_grad_enabled():
            calls["train"] += 1
            if calls["train"] == KILL_AT_BATCH:
                raise KeyboardInterrupt("killed mid-epoch")
        return original(logits, labels)

    monkeypatch.setattr(sequential, "classification_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(tmp_path / "killed"))
    state = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert (state["epoch"], state["batch"]) == (1, 3)  # the last checkpoint: batch 3 of epoch 2 (0-based 1)
    assert not (tmp_path / "killed" / "results.json").exists()
    monkeypatch.setattr(sequential, "classification_loss", original)

    assert main(_argv(tmp_path / "killed")) == 2  # an existing checkpoint is not overwritten without --resume
    assert main([*_argv(tmp_path / "killed"), "--resume"]) == 0
    assert _history(tmp_path / "killed") == _history(tmp_path / "full")
    full, resumed = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("full", "killed"))
    assert resumed["test_accuracy"] == full["test_accuracy"] and resumed["test_loss"] == full["test_loss"]
    permutation = json.loads((tmp_path / "full" / "config.json").read_text())["data"]["permutation"]
    assert sorted(permutation) == list(range(64))


def test_a_run_killed_before_its_first_checkpoint_continues_from_the_start(tmp_path):
    """kill -9 after config.json but before the first checkpoint: --resume checks the record and starts the
    run from the beginning (nothing trained was lost), ending where an uninterrupted run ends."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main([*_argv(whole), "--epochs", "2"]) == 0
    assert main([*_argv(killed), "--epochs", "2"]) == 0
    for name in list(killed.iterdir()):
        if name.name not in ("config.json", "machine.json"):
            name.unlink()
    assert main([*_argv(killed), "--epochs", "2", "--resume"]) == 0
    assert _history(killed) == _history(whole)
    assert main([*_argv(tmp_path / "never"), "--epochs", "2", "--resume"]) == 2  # no run there at all


def test_a_finished_run_without_a_checkpoint_is_not_restarted_by_resume(tmp_path):
    """A finished run keeps best.pt and its results but no checkpoint: --resume refuses (one line) and
    leaves it as it was, rather than training it again from the start."""
    run = tmp_path / "run"
    assert main([*_argv(run), "--epochs", "1"]) == 0
    (run / "checkpoint.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main([*_argv(run), "--epochs", "2", "--resume"]) == 2
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
