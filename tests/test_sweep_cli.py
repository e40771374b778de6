"""``python -m experiments sweep``: one task across solvers and models, written as markdown, JSON and CSV."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from experiments.__main__ import main


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_sweep_table_counts_evaluations_and_checks_stability(tmp_path, capsys):
    out = tmp_path / "sweep"
    rc = main(["sweep", "--task", "digits", "--models", "antisymmetric,lstm", "--solvers", "euler,rk4,dopri5",
               "--hidden-size", "8", "--epochs", "1", "--train-subset", "120", "--test-subset", "40",
               "--check-sequences", "4", "--step-size", "0.1", "--gamma", "0.5", "--out-dir", str(out),
               "--threads", "1", "--no-progress"])
    assert rc == 0
    rows = {(r["model"], r["solver"]): r for r in json.loads((out / "sweep.json").read_text())["rows"]}
    assert set(rows) == {("antisymmetric", "euler"), ("antisymmetric", "rk4"), ("antisymmetric", "dopri5"),
                         ("lstm", "")}
    assert rows["antisymmetric", "euler"]["nfe_per_sequence"] == 64  # one evaluation per pixel
    assert rows["antisymmetric", "rk4"]["nfe_per_sequence"] == 4 * 64
    assert rows["antisymmetric", "dopri5"]["nfe_per_sequence"] > 6 * 64  # >= 6 new stages per accepted step
    # strong diffusion (gamma 0.5) and a small step (0.1) keep every eps * lambda inside each region here
    assert all(rows["antisymmetric", s]["stable"] is True for s in ("euler", "rk4", "dopri5"))
    assert rows["lstm", ""]["stable"] == "" and 0 <= rows["lstm", ""]["test_accuracy"] <= 1
    with open(out / "sweep.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    table = (out / "sweep.md").read_text().splitlines()
    assert table[0].startswith("| model | solver |") and table[5].startswith("| lstm |") and table[6] == ""
    assert "Adaptive solvers (dopri5)" in table[7] and "nominal step" in table[7]
    assert "| antisymmetric | rk4 |" in table[3] and "| inside |" in table[3]
    assert rows["antisymmetric", "rk4"]["newton_per_sequence"] == 0 and rows["lstm", ""]["newton_per_sequence"] == ""
    assert (out / "antisymmetric-dopri5" / "results.json").is_file()
    assert "NFE / sequence" in capsys.readouterr().out


def test_sweep_runs_implicit_methods_and_counts_their_newton_iterations(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--models", "antisymmetric", "--solvers", "rk4,implicit_midpoint,gauss_legendre4",
                 "--hidden-size", "6", "--epochs", "1", "--train-subset", "60", "--test-subset", "8",
                 "--check-sequences", "4", "--step-size", "0.5", "--gamma", "0.0", "--sigma-w", "8",
                 "--out-dir", str(out), "--threads", "1", "--no-progress"]) == 0
    rows = {r["solver"]: r for r in json.loads((out / "sweep.json").read_text())["rows"]}
    for name in ("implicit_midpoint", "gauss_legendre4"):
        row = rows[name]
        assert row["newton_per_sequence"] >= 64  # at least one Newton iteration per pixel
        assert row["jacobians_per_sequence"] >= row["newton_per_sequence"]
        assert row["nfe_per_sequence"] > 64 and 0 <= row["test_accuracy"] <= 1
        # gamma 0: eigenvalues on the imaginary axis, where |R(iy)| = 1 for these A-stable methods
        assert row["stable"] is True and row["max_amplification"] == pytest.approx(1.0, abs=1e-9)
    assert rows["rk4"]["newton_per_sequence"] == 0
    assert rows["rk4"]["stable"] is False  # sigma_w 8, eps 0.5: some |eps lambda| past rk4's 2.83
    table = (out / "sweep.md").read_text()
    assert "| Newton / sequence |" in table.splitlines()[0]
    assert "Implicit solvers (gauss_legendre4, implicit_midpoint): Newton / sequence" in table
    with open(out / "sweep.csv", newline="") as fh:
        assert [int(r["newton_per_sequence"]) > 0 for r in csv.DictReader(fh)] == [False, True, True]
    printed = capsys.readouterr().out  # each row once as it finishes, once in the final table
    assert all(printed.count(f"| antisymmetric | {name} |") == 2 for name in rows)


def test_sweep_detects_euler_outside_its_region_without_diffusion(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--models", "antisymmetric", "--solvers", "euler", "--hidden-size", "8", "--epochs", "1",
                 "--train-subset", "60", "--test-subset", "8", "--check-sequences", "4", "--step-size", "0.5",
                 "--gamma", "0.0", "--out-dir", str(out), "--threads", "1", "--no-progress"]) == 0
    row = json.loads((out / "sweep.json").read_text())["rows"][0]
    assert row["stable"] is False and row["max_amplification"] > 1  # |1 + i eps w| > 1 (AntisymmetricRNN Prop. 2)
    assert abs(row["max_real_eig"]) < 1e-6  # while the continuous field (gamma = 0) is neutral: eigenvalues on iR


@pytest.mark.parametrize("argv,message", [
    (["--solvers", "euler,rk9"], "unknown solver 'rk9'"),
    (["--models", "antisymmetric,mamba"], "unknown model 'mamba'"),
    (["--task", "imagenet"], "unknown task 'imagenet'"),
    (["--epochs", "-2"], "epochs must be a positive integer"),
    (["--check-sequences", "0"], "--check-sequences must be positive"),
])
def test_sweep_bad_inputs(tmp_path, capsys, argv, message):
    assert main(["sweep", *argv, "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "sweep.md").exists()
