"""``python -m experiments reproduce``: a run folder's best.pt re-evaluated on the whole test set from its
config.json alone gives the accuracy the run recorded; other data, a missing or foreign best.pt are refused
in one line. Data: tiny IDX files in MNIST's layout written here (no download)."""
from __future__ import annotations

import json

import pytest
import torch

from experiments.__main__ import main
from conftest import write_fake_mnist as fake_mnist


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("reproduce")
    data, out = fake_mnist(base / "data"), base / "results" / "mnist-antisymmetric"
    threads = torch.get_num_threads()
    argv = ["sequential", "--preset", "antisymmetric-mnist", "--hidden-size", "6", "--batch-size", "16",
            "--epochs", "2", "--data-root", str(data), "--threads", "1", "--no-progress",
            "--stability-check", "off", "--out-dir", str(out)]
    assert main(argv) == 0
    torch.set_num_threads(threads)
    return base, data, out


def test_reproduce_prints_the_recorded_test_accuracy(run, capsys):
    base, data, out = run
    capsys.readouterr()
    moved = fake_mnist(base / "elsewhere")  # the same files fetched to another place
    assert main(["reproduce", str(out), "--data-root", str(moved), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    recorded = json.loads((out / "results.json").read_text())
    row = [line for line in printed.splitlines() if line.startswith(f"| {out.as_posix()} |")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[2] == "98.0"  # the paper's figure (AntisymmetricRNN Table 1)
    assert cells[3] == f"{100 * recorded['test_accuracy']:.2f}"  # the same weights on the same 24 images
    assert cells[4] == str(recorded["best_epoch"])
    assert cells[6] == "6 of 6 (finished)"  # 2 epochs of ceil(36 / 16) = 3 batches
    assert "Intel" in cells[8] or "threads x 1 proc." in cells[8]
    machines = json.loads((out / "machine.json").read_text())
    assert len(machines) == 1 and machines[0]["threads"] == 1


def test_reproduce_refuses_other_data_and_broken_weights(run, capsys, tmp_path):
    base, data, out = run
    other = fake_mnist(tmp_path / "other", seed=3)
    assert main(["reproduce", str(out), "--data-root", str(other)]) == 2
    assert "is not the data" in capsys.readouterr().err
    assert main(["reproduce", str(tmp_path), "--data-root", str(data)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "metrics.json"):
        (broken / name).write_text((out / name).read_text())
    torch.save({"weight": torch.zeros(2)}, broken / "best.pt")
    assert main(["reproduce", str(broken), "--data-root", str(data)]) == 2
    assert "does not fit the model" in capsys.readouterr().err
