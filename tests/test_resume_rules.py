"""``--resume`` continues a run only with the configuration it was started with (only ``--epochs`` may be
raised), for every training command; a refused resume changes nothing in the run folder; temporaries left
by a killed writer are removed at the next start."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import torch

from conftest import write_fake_mnist
from experiments.__main__ import main
from experiments.resume import FREE, GROW, SAME, differences, normal, snapshot
from experiments.sequential import DataSettings, RunSettings
from experiments.training import TrainConfig
from experiments.trajectory.settings import TaskSettings
from experiments.trajectory.simulate import SimulationSettings

QUIET = ["--no-progress", "--stability-check", "off"]
SEQ = ["sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "4", "--batch-size", "32",
       "--train-subset", "40", "--test-subset", "20", "--threads", "1", *QUIET]
TRAJ = ["trajectory", "--models", "lstm", "--hidden-size", "4", "--batch-size", "8", "--no-plots", *QUIET]
TABLE3 = ["trajectory", "--preset", "table3-demo", "--n", "12", "--models", "lstm", "--no-plots", *QUIET]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (ns): what a refused resume keeps."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(argv: list[str], folder: Path, capsys) -> str:
    before = folder_state(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert folder_state(folder) == before, "a refused resume changed the run folder"
    return err


# ---- the rules come from the settings dataclasses ---------------------------------------------------------

INSTANCES = [RunSettings(task="digits", model="antisymmetric", epochs=5), DataSettings(),
             TrainConfig(epochs=3, batch_size=8, lr=0.1), TaskSettings(), SimulationSettings()]


@pytest.mark.parametrize("settings", INSTANCES, ids=lambda s: type(s).__name__)
def test_every_field_is_compared_unless_marked(settings):
    now = {"settings": settings}
    saved = snapshot(settings)
    assert differences({"settings": saved}, now) == []
    free = set()
    for f in fields(settings):
        rule = f.metadata.get("resume", SAME)
        other = dict(saved, **{f.name: "__another value__"})
        listed = any(d.startswith(f"{f.name}: '__another value__' -> ") for d in differences({"settings": other}, now))
        assert listed == (rule != FREE), f.name
        if rule == FREE:
            free.add(f.name)
        if rule == GROW:  # raising is allowed, lowering is not
            assert differences({"settings": dict(saved, **{f.name: saved[f.name] - 1})}, now) == []
            assert differences({"settings": dict(saved, **{f.name: saved[f.name] + 1})}, now) == [
                f"{f.name}: {saved[f.name] + 1} -> {saved[f.name]} (may only be raised)"]
    assert free <= {"device", "data_root", "checkpoint_every", "progress", "reference"}  # none changes a result
    assert [f.name for f in fields(settings) if f.metadata.get("resume") == GROW] in ([], ["epochs"])
    # a field the record lacks (added after the run was saved) is listed unless it holds its default
    unrecorded = [d.split(":")[0] for d in differences({"settings": {}}, now)]
    assert unrecorded == [f.name for f in fields(settings) if f.name not in free
                          and (f.default is MISSING or snapshot(settings)[f.name] != normal(f.default))]


# ---- sequential -------------------------------------------------------------------------------------------

def _mnist(root: Path, seed: int = 0) -> Path:
    return write_fake_mnist(root, seed, n_train=12, n_test=4)


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "run"
    assert main([*SEQ, "--epochs", "2", "--out-dir", str(out)]) == 0
    return out


@pytest.mark.parametrize("change, listed", [
    (["--hidden-size", "8"], "hidden_size: 4 -> 8"),
    (["--model", "gated"], "model: 'antisymmetric' -> 'gated'"),
    (["--task", "digits-permuted"], "task: 'digits' -> 'digits-permuted'"),
    (["--solver", "rk4", "--step-size", "0.1"], "solver: 'euler' -> 'rk4'; step_size: 0.01 -> 0.1"),
    (["--gamma", "0.1", "--substeps", "2"], "gamma: 0.01 -> 0.1; substeps: 1 -> 2"),
    (["--rtol", "1e-3", "--max-steps", "10"], "rtol: 1e-06 -> 0.001; max_steps: 1000000 -> 10"),
    (["--lr", "0.1", "--seed", "5"], "lr: 0.001 -> 0.1; seed: 0 -> 5"),
    (["--split-seed", "1", "--train-subset", "50"], "data_settings.split_seed: 0 -> 1; data_settings.train_subset: 40 -> 50"),
    (["--epochs", "1"], "epochs: 2 -> 1 (may only be raised)"),
])
def test_sequential_resume_refuses_another_configuration(seq_run, capsys, change, listed):
    err = refused([*SEQ, "--epochs", "2", "--resume", "--out-dir", str(seq_run), *change], seq_run, capsys)
    assert f"cannot resume {seq_run}: it was made with other settings: {listed}. " in err
    assert "only --epochs may change, and only upward" in err


def test_sequential_resume_raises_epochs_and_cleans_stale_temporaries(seq_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(seq_run, run)
    dead = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    stale, live = run / f".checkpoint.pt.{dead}-x7fk2q9a.tmp", run / f".metrics.json.{os.getppid()}-abcd1234.tmp"
    stale.write_bytes(b"half a checkpoint")  # left by a writer killed before its rename
    live.write_bytes(b"")  # named after a process that is still running: it may still rename it
    assert main([*SEQ, "--epochs", "3", "--resume", "--out-dir", str(run)]) == 0
    assert "resuming with epochs: 2 -> 3" in capsys.readouterr().out
    assert len(json.loads((run / "metrics.json").read_text())) == 3
    assert json.loads((run / "config.json").read_text())["settings"]["epochs"] == 3
    assert not stale.exists() and live.exists()


def test_sequential_resume_compares_the_data_files_content_not_place(tmp_path, capsys):
    """A run continued in a later session reads the same files from wherever they were fetched to: the place
    may change, the content may not."""
    root = _mnist(tmp_path / "data")
    argv = [*SEQ, "--task", "mnist", "--data-root", str(root), "--epochs", "1", "--test-subset", "4",
            "--train-subset", "12", "--out-dir", str(tmp_path / "run")]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert saved["path"] == str((root / "MNIST" / "raw").resolve()) and len(saved["content_sha256"]) == 64
    moved = _mnist(tmp_path / "elsewhere")  # the same bytes in another place
    assert main([*argv[:-2], "--epochs", "2", "--out-dir", str(tmp_path / "run"), "--resume", "--data-root",
                 str(moved)]) == 0
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())) == 2
    _mnist(root, seed=1)  # other images under the same path
    err = refused([*argv[:-2], "--epochs", "2", "--out-dir", str(tmp_path / "run"), "--resume"], tmp_path / "run",
                  capsys)
    assert f"data.content_sha256: '{saved['content_sha256'][:20]}" in err and "data.path" not in err


def test_a_refused_fresh_run_does_not_touch_the_folder(seq_run, capsys):
    err = refused([*SEQ, "--epochs", "2", "--hidden-size", "8", "--out-dir", str(seq_run)], seq_run, capsys)
    assert "checkpoint.pt exists: pass resume=True (--resume)" in err


# ---- trajectory and its Table 3 preset -----------------------------------------------------------------------

def test_trajectory_resume_rules(tmp_path, capsys):
    data, run = tmp_path / "d.csv", tmp_path / "run"
    assert main(["trajectory", "make-data", "--n", "24", "--steps", "6", "--out", str(data), "--no-progress"]) == 0
    argv = [*TRAJ, "--data", str(data), "--epochs", "1", "--out-dir", str(run)]
    assert main(argv) == 0
    err = refused([*argv, "--resume", "--gamma", "0.1", "--models", "lstm"], run, capsys)
    assert "it was made with other settings: gamma: 0.01 -> 0.1. " in err
    other = tmp_path / "copy.csv"
    shutil.copy(data, other)
    assert "data_identity.path: " in refused([*argv, "--resume", "--data", str(other)], run, capsys)
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",0.123456", *lines[2:]]) + "\n")
    err = refused([*argv, "--resume"], run, capsys)
    assert "data_identity.fingerprint: " in err and "data_identity.path" not in err
    shutil.copy(other, data)
    assert main([*argv, "--resume", "--epochs", "2"]) == 0
    assert len(json.loads((run / "lstm" / "metrics.json").read_text())) == 2


@pytest.mark.slow
def test_table3_preset_resume_rules(tmp_path, capsys):
    """The Table 3 preset's own settings (per-model sizes, h0, batch) are held on --resume like any other."""
    run = tmp_path / "run"
    argv = [*TABLE3, "--epochs", "1", "--out-dir", str(run)]
    assert main([*argv, "--size", "lstm=4x2"]) == 0
    err = refused([*argv, "--size", "lstm=4x2", "--resume", "--h0", "zeros", "--batch-size", "4"], run, capsys)
    assert "it was made with other settings: h0: 'ones' -> 'zeros'; batch_size: 8 -> 4. " in err
    assert "sizes: " in refused([*argv, "--resume", "--size", "lstm=4x1"], run, capsys)
    argv.extend(["--size", "lstm=4x2"])
    assert main([*argv, "--resume", "--epochs", "2"]) == 0
    assert len(json.loads((run / "lstm" / "metrics.json").read_text())) == 2