"""The adding problem: the data as the coRNN and LEM authors' code draws it, the settings' checks, the
command (its files, the resume rules) and a model that learns it."""
import json

import pytest
import torch

from experiments.__main__ import main
from experiments.adding import BASELINE_MSE, PRESETS, AddingProblem, AddingSettings, mse, train
from experiments.training import evaluate
from odernn import count_parameters

QUIET = ["--no-progress", "--stability-check", "off", "--threads", "1"]


def test_sequences_follow_the_authors_protocol():
    data = AddingProblem(length=31, size=400, seed=3)
    xs, ys = zip(*(data[i] for i in range(len(data))))
    x, y = torch.stack(xs), torch.stack(ys)
    assert x.shape == (400, 31, 2) and y.shape == (400, 1)
    values, markers = x[..., 0], x[..., 1]
    assert bool(((values >= 0) & (values < 1)).all())
    assert bool((markers.sum(1) == 2).all()) and set(markers.unique().tolist()) == {0.0, 1.0}
    first, second = markers[:, :15].argmax(1), markers[:, 15:].argmax(1) + 15  # one marker in each half
    assert bool((markers[:, :15].sum(1) == 1).all()) and bool((markers[:, 15:].sum(1) == 1).all())
    rows = torch.arange(400)
    torch.testing.assert_close(y[:, 0], values[rows, first] + values[rows, second])
    assert first.unique().numel() == 15 and second.unique().numel() == 16  # every position is drawn
    # the variance of the sum is 1/6: always predicting 1 scores BASELINE_MSE
    assert float(((y - 1) ** 2).mean()) == pytest.approx(BASELINE_MSE, rel=0.15)
    again = data[7]
    assert torch.equal(again[0], x[7]) and torch.equal(again[1], y[7])
    other = AddingProblem(31, 400, 3, stream=1)[7][0]
    assert not torch.equal(other, x[7])
    with pytest.raises(IndexError):
        data[400]


@pytest.mark.parametrize("kw, match", [
    (dict(length=1), "length must be an integer >= 2"), (dict(solver="rk5"), "unknown solver 'rk5'"),
    (dict(model="lstm", gamma=1.0), "--gamma has no effect on lstm"),
    (dict(model="lstm", epsilon=1.0), "apply to the ODE models, not to lstm"),
    (dict(model="antisymmetric", epsilon=1.0), "epsilon"), (dict(train_size=0), "train_size must be"),
    (dict(model="lem", gamma=1.0), "--gamma has no effect on lem"),
    (dict(epochs=0), "epochs must be a positive")])
def test_bad_settings_fail_clearly(kw, match):
    with pytest.raises(ValueError, match=match):
        AddingSettings(**kw)


def test_presets_build_the_authors_models():
    counts = {name: count_parameters(AddingSettings(**preset).build()) for name, preset in PRESETS.items()}
    # coRNN: one Linear(2 + 2n -> n) and the readout; LEM: Linear(2 -> 4n), Linear(n -> 3n), Linear(n -> n), readout
    assert counts["cornn"] == (2 + 256 + 1) * 128 + 129
    assert counts["lem"] == 3 * 512 + 129 * 384 + 129 * 128 + 129
    assert counts["antisymmetric"] < counts["cornn"] < counts["lem"]


def test_an_lstm_learns_a_short_adding_problem(tmp_path):
    settings = AddingSettings(model="lstm", length=6, hidden_size=16, train_size=1000, val_size=100,
                              test_size=200, epochs=6, batch_size=20, lr=0.02)
    row = train(settings, tmp_path / "run", progress=False, stability_check="off")
    untrained = evaluate(settings.build(), mse, settings.datasets()["test"], 50)["loss"]
    assert row["test_mse"] < 0.3 * BASELINE_MSE < untrained
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test_mse"] == row["test_mse"]


def test_command_files_and_resume_rules(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["adding", "--preset", "antisymmetric", "--length", "12", "--hidden-size", "8", "--train-size", "100",
            "--val-size", "20", "--test-size", "20", "--epochs", "1", *QUIET, "--out-dir", str(out)]
    assert main(argv) == 0
    assert "test MSE" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["model"] == "antisymmetric" and config["settings"]["step_size"] == 0.1
    assert main(argv) == 2 and "holds a run" in capsys.readouterr().err  # never overwritten
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main([*argv, "--resume", "--lr", "0.1"]) == 2
    assert "lr: 0.005 -> 0.1" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main([*argv, "--resume", "--epochs", "2"]) == 0
    assert json.loads((out / "result.json").read_text())["epochs"] == 2
    assert main([*argv[:-1], str(tmp_path / "new"), "--resume"]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_a_training_set_smaller_than_the_stability_sample(tmp_path):
    settings = AddingSettings(model="antisymmetric", length=4, hidden_size=2, train_size=3, val_size=2, test_size=2,
                              epochs=1, batch_size=2)
    assert train(settings, tmp_path / "run", progress=False)["epochs"] == 1
