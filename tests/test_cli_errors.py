"""Every failure of every ``python -m experiments`` command: exit status 2, one line on stderr naming the
problem, no traceback. The commands run in-process through ``main(argv)``; one case runs a real process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import cli_options
from experiments.__main__ import main
from experiments.data.idx import IDX_STEMS, write_idx

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--no-progress", "--stability-check", "off"]
SEQ = ["sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "4", "--epochs", "1",
       "--batch-size", "32", "--train-subset", "40", "--test-subset", "20", "--threads", "1", *QUIET]
TRAJ = ["trajectory", "--system", "damped-oscillator", "--n", "24", "--steps", "6", "--models", "lstm",
        "--hidden-size", "4", "--epochs", "1", "--batch-size", "8", "--no-plots", *QUIET]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Finished tiny runs of the three training commands, for the resume cases (which must change nothing)."""
    root = tmp_path_factory.mktemp("finished")
    threads = torch.get_num_threads()
    runs = {"seq": root / "seq", "traj": root / "traj"}
    assert main([*SEQ, "--out-dir", str(runs["seq"])]) == 0
    assert main([*TRAJ, "--out-dir", str(runs["traj"])]) == 0
    torch.set_num_threads(threads)
    return runs


def _mnist_of_two_sizes(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"train_x": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), "train_y": np.arange(4, dtype=np.uint8),
              "test_x": rng.integers(0, 256, (2, 20, 20), dtype=np.uint8), "test_y": np.arange(2, dtype=np.uint8)}
    for key, array in arrays.items():
        write_idx(array, raw / IDX_STEMS[key])


def _read_only(monkeypatch, folder: Path) -> None:
    """A folder the process may not write to (simulated: root may write anywhere, so access() says no)."""
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(cli_options.os, "access", lambda p, mode, *a, **k: False if Path(p) == folder else real(p, mode))


CASES = [
    # sequential
    pytest.param([*SEQ, "--out-dir", "{file}"], "--out-dir {file} is a file", id="sequential-out-dir-is-a-file"),
    pytest.param([*SEQ, "--out-dir", "{readonly}/run"], "is not writable", id="sequential-out-dir-read-only"),
    pytest.param([*SEQ, "--out-dir", "{file}/run"], "cannot be created: {file} is a file", id="sequential-under-a-file"),
    pytest.param([*SEQ, "--stability-check", "raise", "--gamma", "0", "--out-dir", "{tmp}/r"],
                 "OUTSIDE its stability region", id="sequential-stability-raise"),
    pytest.param([*SEQ, "--step-size", "1e37", "--out-dir", "{tmp}/r"], "training loss became inf at epoch 1",
                 id="sequential-diverges"),
    pytest.param([*SEQ, "--hidden-size", "8", "--resume", "--out-dir", "{seq}"], "hidden_size: 4 -> 8",
                 id="sequential-resume-other-size"),
    pytest.param([*SEQ, "--model", "gated", "--resume", "--out-dir", "{seq}"], "model: 'antisymmetric' -> 'gated'",
                 id="sequential-resume-other-model"),
    pytest.param([*SEQ, "--out-dir", "{seq}"], "checkpoint.pt exists: pass resume=True (--resume)",
                 id="sequential-run-exists"),
    pytest.param([*SEQ, "--resume", "--out-dir", "{tmp}/none"], "no checkpoint at", id="sequential-resume-nothing"),
    pytest.param([*SEQ, "--device", "foo", "--out-dir", "{tmp}/r"], "unknown device 'foo'", id="sequential-device"),
    pytest.param([*SEQ, "--threads", "0", "--out-dir", "{tmp}/r"], "--threads: must be a positive integer, got 0",
                 id="sequential-threads"),
    pytest.param([*SEQ, "--out-dir", "{tmp}/r"], "sklearn.datasets is needed for this task: pip install",
                 id="sequential-sklearn-missing"),
    pytest.param([*SEQ, "--sigma-w", "nan", "--out-dir", "{tmp}/r"], "sigma_w, the scale of the recurrent weights",
                 id="sequential-sigma-w-nan"),
    pytest.param([*SEQ, "--sigma-w", "-1", "--out-dir", "{tmp}/r"], "must be a finite number >= 0 (0: zero weights), "
                 "got -1.0", id="sequential-sigma-w-negative"),
    pytest.param([*SEQ, "--task", "mnist", "--data-root", "{tmp}", "--out-dir", "{tmp}/r"],
                 "train images are 28x28 but test images are 20x20; MNIST images are 28x28", id="sequential-mnist-sizes"),
    pytest.param([*SEQ, "--rtol", "-1", "--out-dir", "{tmp}/r"], "rtol must be a positive finite number",
                 id="sequential-rtol"),
    pytest.param([*SEQ, "--solver", "dopri5", "--max-steps", "2", "--out-dir", "{tmp}/r"],
                 "adaptive solve used max_steps=2 steps", id="sequential-max-steps-reach-the-solver"),
    pytest.param([*SEQ, "--solver", "rk9", "--out-dir", "{tmp}/r"], "unknown solver 'rk9'", id="sequential-solver"),
    # sweep
    pytest.param(["sweep", "--models", "antisymmetric", "--solvers", "euler", *SEQ[5:-3], "--out-dir", "{file}"],
                 "--out-dir {file} is a file", id="sweep-out-dir-is-a-file"),
    pytest.param(["sweep", "--models", "antisymmetric", "--solvers", "rk9", "--out-dir", "{tmp}/r"],
                 "unknown solver 'rk9'", id="sweep-solver"),
    pytest.param(["sweep", "--atol", "nan", "--out-dir", "{tmp}/r"], "atol must be a positive finite number",
                 id="sweep-atol"),
    pytest.param(["sweep", "--models", "gated", "--solvers", "dopri5", *SEQ[5:-3], "--max-steps", "2", "--out-dir",
                  "{tmp}/r"], "adaptive solve used max_steps=2 steps", id="sweep-max-steps-reach-the-solver"),
    # trajectory
    pytest.param([*TRAJ, "--out-dir", "{file}"], "--out-dir {file} is a file", id="trajectory-out-dir-is-a-file"),
    pytest.param([*TRAJ, "--out-dir", "{readonly}"], "is not writable", id="trajectory-out-dir-read-only"),
    pytest.param([*TRAJ, "--threads", "0"], "--threads: must be a positive integer", id="trajectory-threads"),
    pytest.param([*TRAJ, "--max-steps", "0", "--out-dir", "{tmp}/r"], "max_steps must be a positive integer, got 0",
                 id="trajectory-max-steps"),
    pytest.param([*TRAJ, "--models", "afrnn", "--solver", "dopri5", "--max-steps", "3", "--out-dir", "{tmp}/r"],
                 "adaptive solve used max_steps=3 steps", id="trajectory-max-steps-reach-the-solver"),
    pytest.param([*TRAJ, "--hidden-size", "8", "--resume", "--out-dir", "{traj}"], "hidden_size: 4 -> 8",
                 id="trajectory-resume-other-size"),
    pytest.param([*TRAJ, "--device", "foo", "--out-dir", "{tmp}/r"], "unknown device 'foo'", id="trajectory-device"),
    pytest.param([*TRAJ, "--stability-check", "raise", "--models", "antisymmetric", "--gamma", "0",
                  "--step-size", "1", "--out-dir", "{tmp}/r"], "OUTSIDE its stability region",
                 id="trajectory-stability-raise"),
    pytest.param(["trajectory", "make-data", "--n", "4", "--out", "{file}/x.npz"], "cannot be written: {file} is a file",
                 id="trajectory-make-data-under-a-file"),
    # per-model sizes, the split order, the energy study
    pytest.param([*TRAJ, "--size", "gru=4", "--out-dir", "{tmp}/r"], "--size gru=4 names a model that is not trained",
                 id="trajectory-size-of-an-untrained-model"),
    pytest.param([*TRAJ, "--size", "lstm=four", "--out-dir", "{tmp}/r"], "--size takes MODEL=WIDTH or MODEL=WIDTHxLAYERS",
                 id="trajectory-size-syntax"),
    pytest.param([*TRAJ, "--models", "antisymmetric", "--size", "antisymmetric=4x2", "--out-dir", "{tmp}/r"],
                 "layers apply to", id="trajectory-size-layers-of-a-single-layer-model"),
    pytest.param([*TRAJ, "--split-seed", "first", "--out-dir", "{tmp}/r"], "--split-seed takes an integer or none",
                 id="trajectory-split-seed"),
    pytest.param(["trajectory", "energy", "--out-dir", "{readonly}"], "is not writable", id="energy-read-only"),
    pytest.param(["trajectory", "energy", "--system", "van-der-pol", "--out-dir", "{tmp}/e"],
                 "defines no conserved energy", id="energy-of-a-system-without-one"),
    pytest.param(["trajectory", "energy", "--fixed-solvers", "dopri5", "--out-dir", "{tmp}/e"],
                 "--fixed-solvers takes fixed-step methods of the whole state, got 'dopri5'", id="energy-fixed-solver"),
    # stability, dynamics, solver demo, benchmark, the command itself
    pytest.param(["stability", "--out", "{file}/x.png"], "cannot be written: {file} is a file", id="stability-out"),
    pytest.param(["stability", "--rtol", "-1", "--out", "{tmp}/x.png"], "rtol must be a positive finite number",
                 id="stability-rtol"),
    pytest.param(["stability", "--sigma-w", "nan", "--out", "{tmp}/x.png"], "sigma_w, the scale", id="stability-sigma-w"),
    pytest.param(["stability", "--solver", "dopri5", "--max-steps", "1", "--out", "{tmp}/x.png"],
                 "adaptive solve used max_steps=1 steps", id="stability-max-steps-reach-the-solver"),
    pytest.param(["dynamics", "--out-dir", "{file}"], "--out-dir {file} is a file", id="dynamics-out-dir-is-a-file"),
    pytest.param(["dynamics", "--threads", "0", "--out-dir", "{tmp}/d"], "--threads: must be a positive integer",
                 id="dynamics-threads"),
    pytest.param(["dynamics", "--max-steps", "0", "--out-dir", "{tmp}/d"], "max_steps must be a positive integer",
                 id="dynamics-max-steps"),
    pytest.param(["dynamics", "--only", "fig1", "--solver", "dopri5", "--max-steps", "1", "--no-progress",
                  "--out-dir", "{tmp}/d"], "max_steps=1", id="dynamics-max-steps-reach-the-solver"),
    pytest.param(["solver-demo", "--dim", "0"], "--dim must be >= 2", id="solver-demo-dim"),
    pytest.param(["solver-demo", "--outputs", "1"], "--outputs must be >= 2", id="solver-demo-outputs"),
    pytest.param(["benchmark", "--T", "0"], "--T must be >= 1", id="benchmark-T"),
    pytest.param(["transformer"], "invalid choice: 'transformer'", id="unknown-command"),
]


# failures of a run under way (it has written its settings, or trained a model before this one)
FAIL_WHILE_RUNNING = {"sequential-diverges", "trajectory-stability-raise", *(case.id for case in CASES if "reach" in case.id)}


@pytest.mark.parametrize("argv, expected", CASES)
def test_failure_is_one_line_and_exit_status_2(argv, expected, request, tmp_path, monkeypatch, capsys):
    places = {"tmp": tmp_path, "file": tmp_path / "a_file", "readonly": tmp_path / "readonly"}
    places["file"].write_text("not a folder")
    name = request.node.callspec.id
    if "{seq}" in " ".join(argv) or "{traj}" in " ".join(argv):
        places.update(request.getfixturevalue("finished"))
    if "read-only" in name:
        _read_only(monkeypatch, places["readonly"])
    if name == "sequential-sklearn-missing":
        monkeypatch.setitem(sys.modules, "sklearn", None)
        monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    if name == "sequential-mnist-sizes":
        _mnist_of_two_sizes(tmp_path)
    fill = lambda text: text.format(**{k: str(v) for k, v in places.items()})  # noqa: E731
    before = sorted(p.name for p in tmp_path.iterdir())

    status = main([fill(a) for a in argv])

    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and fill(expected) in lines[0], lines[0]
    if "{tmp}/r" in argv and name not in FAIL_WHILE_RUNNING:  # a refused run writes nothing
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_real_process_exits_2_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "experiments", "sequential", "--task", "digits", "--model", "gated",
                           "--device", "cuda:7" if not torch.cuda.is_available() else "foo", "--out-dir",
                           str(tmp_path / "r")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "device" in done.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_states_are_refused_with_the_reason(dtype):
    from odernn import build_rnn

    rnn = build_rnn("antisymmetric", 1, 4, solver="euler").to(dtype)
    with pytest.raises(ValueError, match=f"x is {dtype}, which ODERNN refuses: .* float32 or float64"):
        rnn(torch.randn(2, 5, 1, dtype=dtype))
    with pytest.raises(ValueError, match="the field's parameters are torch.float16"):
        build_rnn("antisymmetric", 1, 4).half()(torch.randn(2, 5, 1))
