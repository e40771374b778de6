"""The double-pendulum task and training: inputs/targets, determinism, exact resumption, learning for every
model, and clear errors without partial files."""
import argparse
import json

import numpy as np
import pytest
import torch

import odernn

import experiments.double_pendulum.train as tr
from experiments.double_pendulum import cli
from experiments.double_pendulum.generate import generate, save
from experiments.double_pendulum.task import make_dataset, make_inputs, paper_units, split

SMALL = dict(split=(32, 16, 8), hidden_scale=0.1, seed=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train fastest (and least disturbed by a busy machine) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def truth():
    return generate(n=56, seed=11, method="rk4", step_size=1e-2, progress=False)


def history(run_dir):
    rows = json.loads((run_dir / "metrics.json").read_text())
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def test_inputs_targets_and_units():
    states = torch.randn(5, 30, 4)
    x = make_inputs(states)
    assert torch.equal(x[:, 0], states[:, 0]) and torch.all(x[:, 1:] == 1)
    data = make_dataset(states)
    assert data.tensors[1].shape == (5, 29, 4) and torch.equal(data.tensors[1], states[:, 1:])
    assert paper_units(1.0) == 928.0  # 29 steps x 4 variables x batch of 8
    a, b, c = split(np.arange(12)[:, None], (6, 3, 2))
    assert (len(a), len(b), len(c)) == (6, 3, 2) and b[0, 0] == 6
    with pytest.raises(ValueError, match="needs 12 trajectories"):
        split(np.zeros((10, 30, 4)), (8, 2, 2))


def test_paper_sizes_and_initial_state():
    """Table 3's parameter counts where our parameterisation matches the authors' (AFRNN, FRNN, LSTM)."""
    counts = {m: odernn.count_parameters(tr.build_model(tr.Settings(m, epochs=1))) for m in ("afrnn", "frnn", "lstm")}
    assert counts == {"afrnn": 31004, "frnn": 41004, "lstm": 123604}
    model = tr.build_model(tr.Settings("afrnn", epochs=1, hidden_scale=0.1))
    x = make_inputs(torch.randn(2, 30, 4))
    assert model(x).shape == (2, 29, 4)
    zeros = tr.build_model(tr.Settings("afrnn", epochs=1, hidden_scale=0.1, h0="zeros"))
    assert not torch.allclose(model(x), zeros(x))  # same weights (same seed), different h0


def test_same_seed_same_training_curve(truth, tmp_path):
    s = tr.Settings("afrnn", epochs=2, **SMALL)
    a = tr.train_model(truth, s, tmp_path / "a", progress=False)
    b = tr.train_model(truth, s, tmp_path / "b", progress=False)
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert a["test_mse"] == b["test_mse"]


def test_killed_run_resumes_to_the_same_losses(truth, tmp_path, monkeypatch):
    s = tr.Settings("lstm", epochs=3, **SMALL)
    tr.train_model(truth, s, tmp_path / "full", progress=False)
    calls = {"n": 0}

    def dying_mse(out, y):  # 4 train batches + 2 validation batches per epoch: dies in epoch 2
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt("killed")
        return torch.nn.functional.mse_loss(out, y)

    monkeypatch.setattr(tr, "mse", dying_mse)
    with pytest.raises(KeyboardInterrupt):
        tr.train_model(truth, s, tmp_path / "killed", progress=False)
    assert len(history(tmp_path / "killed")) == 1
    monkeypatch.undo()
    tr.train_model(truth, s, tmp_path / "killed", resume=True, progress=False)
    assert history(tmp_path / "killed") == history(tmp_path / "full")


FACTOR = 2.0


@pytest.fixture(scope="module")
def short_truth():
    """0.5 s trajectories (6 points): a task small enough to learn in ten short epochs."""
    return generate(n=56, seed=11, method="rk4", step_size=1e-2, times=np.arange(6) * 0.1, progress=False)


@pytest.mark.parametrize("model", list(tr.HIDDEN))
def test_short_training_lowers_validation_loss(short_truth, tmp_path, model):
    """Every model, 20% of its paper width, eps = 1, h0 = 0, lr 1e-2, 10 epochs of 32 trajectories: the
    best validation MSE is at least FACTOR times below the untrained model's."""
    s = tr.Settings(model, epochs=10, split=(32, 16, 8), hidden_scale=0.2, step_size=1.0, h0="zeros", lr=1e-2)
    val = make_dataset(split(short_truth.states, s.split)[1])
    initial = tr.evaluate(tr.build_model(s), tr.mse, val, 8)["loss"]
    tr.train_model(short_truth, s, tmp_path / model, progress=False)
    best = min(r["val_loss"] for r in history(tmp_path / model))
    assert best < initial / FACTOR, f"{model}: validation MSE {initial:.3f} -> {best:.3f}"


@pytest.mark.parametrize("kw, match", [
    (dict(model="gru"), "unknown model"), (dict(solver="rk5"), "unknown method"),
    (dict(epochs=0), "epochs must be a positive"), (dict(step_size=0.0), "step size must be"),
    (dict(step_size=-0.1), "step size must be"), (dict(discretisation="implicit"), "unknown discretisation"),
    (dict(model="lstm", discretisation="partitioned"), "not to the LSTM")])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        tr.Settings(**{"model": "afrnn", "epochs": 1, **kw})


def run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


@pytest.mark.parametrize("extra, match", [
    (["--models", "afrnn", "gru"], "unknown model 'gru'"), (["--solver", "rk5"], "unknown method 'rk5'"),
    (["--epochs", "0"], "epochs must be a positive"), (["--step-size", "-1"], "step size must be"),
    (["--resume"], "no checkpoint at")])
def test_cli_errors_leave_no_files(truth, tmp_path, capsys, extra, match):
    data = save(truth, tmp_path / "data.npz")
    out = tmp_path / "runs"
    assert run_cli(["train", "--data", str(data), "--out", str(out), "--no-progress", *extra]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_cli_missing_or_malformed_data_and_bad_generate(tmp_path, capsys):
    out = tmp_path / "runs"
    assert run_cli(["train", "--data", str(tmp_path / "none.npz"), "--out", str(out)]) == 2
    assert "no double-pendulum data at" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    assert run_cli(["train", "--data", str(bad), "--out", str(out)]) == 2
    assert "not a readable" in capsys.readouterr().err
    assert not out.exists()
    assert run_cli(["generate", "--n", "4", "--solver", "rk5", "--out", str(tmp_path / "g.npz")]) == 2
    assert "unknown method 'rk5'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


def test_cli_train_writes_table_and_plots(truth, tmp_path, capsys):
    data = save(truth, tmp_path / "data.npz")
    out = tmp_path / "runs"
    argv = ["train", "--data", str(data), "--out", str(out), "--models", "afrnn", "lstm", "--epochs", "1",
            "--split", "32", "16", "8", "--no-progress"]
    assert run_cli(argv) == 0
    table = json.loads((out / "table.json").read_text())
    assert [r["model"] for r in table["ours"]] == ["afrnn", "lstm"]
    assert table["paper_table3"]["afrnn"]["loss"] == 19.4
    row = table["ours"][0]
    assert row["test_paper_units"] == pytest.approx(928 * row["test_mse"])
    assert "| AFRNN |" in (out / "table.md").read_text()
    for png in ("trajectories.png", "training_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert run_cli(argv) == 2  # rerun without --resume refuses to overwrite the runs
    assert "--resume" in capsys.readouterr().err


def test_another_model_on_other_ground_truth_is_refused_in_a_folder(tmp_path, capsys):
    """Two models in one folder share its table and plots: a model that a folder's other runs did not train
    with on this ground truth is refused there before anything is written."""
    import json

    from experiments.__main__ import main

    assert main(["double-pendulum", "generate", "--n", "12", "--out", str(tmp_path / "a.npz"), "--no-progress"]) == 0
    (tmp_path / "run" / "lstm").mkdir(parents=True)  # a run on other ground truth, as its record says
    (tmp_path / "run" / "lstm" / "config.json").write_text(json.dumps({"settings": {}, "data": {"other": 1}}))
    assert main(["double-pendulum", "train", "--models", "afrnn", "--data", str(tmp_path / "a.npz"), "--split", "6",
                 "3", "3", "--epochs", "1", "--no-progress", "--stability-check", "off", "--out",
                 str(tmp_path / "run")]) == 2
    assert "holds lstm trained on other ground truth" in capsys.readouterr().err
    assert not (tmp_path / "run" / "afrnn").exists()
