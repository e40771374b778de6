"""``python -m experiments trajectory`` end to end: the run folder's files, determinism, learning, presets,
make-data + --data (CSV, irregular times), resumption and its errors."""
import json

import numpy as np
import pytest
import torch

from experiments.__main__ import main
from experiments.trajectory.data import load_trajectories

PLOTTED = ["--n", "24", "--steps", "6", "--hidden-size", "4", "--epochs", "2", "--batch-size", "8",
           "--no-progress", "--stability-check", "off"]
TINY = [*PLOTTED, "--no-plots"]  # figures take a second a run; the tests that look at them use PLOTTED


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def history(path):
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in json.loads(path.read_text())]


def test_run_folder_holds_results_table_and_plots(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["trajectory", "--system", "damped-oscillator", "--models", "antisymmetric", "lstm",
                 "--context", "2", "--out-dir", str(out), *PLOTTED]) == 0
    printed = capsys.readouterr().out
    assert "| mean predictor |" in printed and "| persistence (last context state) |" in printed
    result = json.loads((out / "result.json").read_text())
    assert set(result["test_mse"]) == {"antisymmetric", "lstm"}
    assert result["mean_predictor_mse"] > 0 and result["persistence_mse"] > 0
    assert result["horizon"]["index"] == [2, 3, 4, 5] and len(result["horizon"]["lstm"]) == 4
    assert len(result["horizon"]["mean_predictor"]) == len(result["horizon"]["persistence"]) == 4
    for model in ("antisymmetric", "lstm"):
        row = json.loads((out / model / "result.json").read_text())
        assert {"test_mse", "mean_predictor_mse", "persistence_mse", "horizon"} <= set(row)
        assert np.isclose(np.mean(row["horizon"]["mse"]), row["test_mse"], rtol=1e-4)  # equal weights per index
        assert (out / model / "metrics.json").is_file() and (out / model / "best.pt").is_file()
    table = (out / "table.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:6]] == [
        "antisymmetric", "lstm", "mean predictor", "persistence (last context state)"]
    for name in ("rollouts.png", "phase.png", "horizon.png", "training_curves.png", "table.json", "config.json"):
        assert (out / name).stat().st_size > 0
    assert load_trajectories(out / "trajectories.npz").states.shape == (24, 6, 2)


def test_same_settings_same_numbers(tmp_path):
    args = ["trajectory", "--system", "pendulum", "--models", "gated", *TINY]
    assert main([*args, "--out-dir", str(tmp_path / "a")]) == 0
    assert main([*args, "--out-dir", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in "ab")
    assert a["test_mse"] == b["test_mse"] and a["horizon"] == b["horizon"]
    assert history(tmp_path / "a" / "gated" / "metrics.json") == history(tmp_path / "b" / "gated" / "metrics.json")
    assert (tmp_path / "a" / "table.md").is_file() and not list((tmp_path / "a").rglob("*.png"))  # --no-plots


def test_an_ode_model_learns_far_below_the_mean_predictor(tmp_path):
    out = tmp_path / "learn"
    assert main(["trajectory", "--system", "damped-oscillator", "--n", "120", "--steps", "11", "--models",
                 "antisymmetric", "--hidden-size", "16", "--epochs", "8", "--batch-size", "16", "--no-progress",
                 "--stability-check", "off", "--out-dir", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["test_mse"]["antisymmetric"] < 0.5 * result["mean_predictor_mse"]


def test_preset_values_and_flags_override_them(tmp_path):
    out = tmp_path / "preset"
    assert main(["trajectory", "--preset", "demo", "--models", "lstm", "--out-dir", str(out), *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "demo" and config["data"]["system"] == "pendulum"  # from the preset
    assert config["data"]["n"] == 24 and config["settings"]["epochs"] == 2  # from the flags
    assert config["settings"]["lr"] == 1e-2 and config["settings"]["h0"] == "state"


def test_make_data_then_train_on_the_file_with_irregular_times(tmp_path, capsys):
    data = tmp_path / "vdp.csv"
    assert main(["trajectory", "make-data", "--system", "van-der-pol", "--irregular", "--n", "20", "--steps", "6",
                 "--out", str(data), "--check", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "irregular times" in printed and "scipy DOP853" in printed
    traj = load_trajectories(data)
    assert traj.states.shape == (20, 6, 2) and not np.allclose(traj.times[0], traj.times[1])
    out = tmp_path / "run"
    assert main(["trajectory", "--data", str(data), "--models", "lstm", "--hidden-size", "4", "--epochs", "1",
                 "--no-progress", "--out-dir", str(out)]) == 0
    row = json.loads((out / "lstm" / "result.json").read_text())
    assert row["interval_feature"] and not row["times_passed_to_model"]
    assert "irregular times" in (out / "table.md").read_text()


def test_make_data_refuses_an_unknown_format_before_solving(tmp_path, capsys):
    assert main(["trajectory", "make-data", "--out", str(tmp_path / "x.json"), "--no-progress"]) == 2
    assert "x.json: unknown format '.json'; use one of .npz, .csv" in capsys.readouterr().err


@pytest.mark.slow
def test_an_existing_run_needs_resume_and_resume_needs_a_run(tmp_path, capsys):
    args = ["trajectory", "--system", "damped-oscillator", "--models", "lstm", "--out-dir", str(tmp_path / "r"), *TINY]
    assert main([*args, "--resume"]) == 2
    assert "--resume given but" in capsys.readouterr().err
    assert main(args) == 0
    assert main(args) == 2
    assert "holds a run (config.json); pass --resume to continue it" in capsys.readouterr().err
    first = json.loads((tmp_path / "r" / "result.json").read_text())
    assert main([*args, "--resume"]) == 0  # a finished run: reloads the best epoch, same test result
    assert json.loads((tmp_path / "r" / "result.json").read_text())["test_mse"] == first["test_mse"]
    assert main([*args, "--resume", "--lr", "0.5"]) == 2
    assert "it was made with other settings: lr: 0.01 -> 0.5. --resume continues" in capsys.readouterr().err
    assert main([*args, "--resume", "--data-seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "data_identity.fingerprint: '" in err and "simulation.data_seed: 0 -> 1" in err


@pytest.mark.parametrize("argv,match", [
    (["--system", "nope"], "invalid choice: 'nope'"),
    (["--models", "lstm", "--context", "6", "--n", "10", "--steps", "6"], "context 6 leaves nothing to predict"),
    (["--param", "mu=1"], "unknown parameter"),
    (["--solver", "rk9"], "unknown solver 'rk9'"),
])
def test_bad_flags_fail_before_anything_is_written(tmp_path, capsys, argv, match):
    out = tmp_path / "bad"
    try:
        status = main(["trajectory", *argv, "--out-dir", str(out), "--no-progress"])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2 and match in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_a_run_killed_before_a_models_first_checkpoint_continues(tmp_path):
    """Two models; the second never reached its first checkpoint (its folder is gone, as after kill -9 right
    after the first model): --resume continues the first and starts the second afresh, with the same numbers
    as the uninterrupted run (training is seeded)."""
    import shutil

    args = ["trajectory", "--system", "damped-oscillator", "--models", "lstm", "gru", "--out-dir",
            str(tmp_path / "r"), *TINY]
    assert main(args) == 0
    first = {row["model"]: row["test_mse"] for row in json.loads((tmp_path / "r" / "table.json").read_text())["rows"]}
    shutil.rmtree(tmp_path / "r" / "gru")
    assert main([*args, "--resume"]) == 0
    again = {row["model"]: row["test_mse"] for row in json.loads((tmp_path / "r" / "table.json").read_text())["rows"]}
    assert again == first and (tmp_path / "r" / "gru" / "checkpoint.pt").is_file()
