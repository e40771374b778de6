"""Data-parallel training under torchrun: 2 processes (gloo, CPU) compute what 1 process computes with the
same global batch, rank 0 alone writes, and a DDP run resumes exactly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.__main__ import main
from experiments.io import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["-m", "experiments", "sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "8",
        "--step-size", "0.1", "--batch-size", "50", "--lr", "0.01", "--train-subset", "301", "--test-subset", "100",
        "--threads", "1", "--no-progress", "--stability-check", "off"]


def run(out: Path, epochs: int, processes: int = 1, resume: bool = False) -> None:
    """The run in this process (one process: the same code path, without a second interpreter's start-up) or
    under torchrun."""
    options = ["--epochs", str(epochs), "--out-dir", str(out)] + (["--resume"] if resume else [])
    if processes == 1:
        threads = torch.get_num_threads()
        try:
            assert main(ARGS[2:] + options) == 0
        finally:
            torch.set_num_threads(threads)
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           *ARGS, *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(out: Path) -> dict:
    return load_checkpoint(out / "best.pt")


@pytest.mark.slow
def test_two_processes_resumed_match_one_process_with_the_same_global_batch(tmp_path):
    """One process for 2 epochs against 2 processes for 1 epoch, then resumed (2 processes) to epoch 2."""
    one, two = tmp_path / "one", tmp_path / "two"
    run(one, epochs=2)
    run(two, epochs=1, processes=2)
    assert len(json.loads((two / "metrics.json").read_text())) == 1  # one writer: one row per epoch
    run(two, epochs=2, processes=2, resume=True)
    for name, tensor in weights(one).items():
        assert torch.allclose(tensor, weights(two)[name], atol=1e-5, rtol=1e-4), name
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert abs(a["test_accuracy"] - b["test_accuracy"]) < 1e-9 and a["best_epoch"] == b["best_epoch"]
    assert len(json.loads((two / "metrics.json").read_text())) == 2
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    assert json.loads((one / "config.json").read_text())["world_size"] == 1
