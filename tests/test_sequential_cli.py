"""``python -m experiments sequential``: a CI-sized digits run learns; presets and bad inputs."""
from __future__ import annotations

import argparse
import json

import pytest
import torch

from experiments.__main__ import main
from experiments.presets import PRESETS, get_preset
from experiments.sequential import add_arguments, build_classifier, resolve_settings
from odernn import MODEL_NAMES

FAST = ["--threads", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_digits_antisymmetric_beats_chance_and_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "32",
               "--step-size", "0.1", "--gamma", "0.01", "--epochs", "5", "--batch-size", "64", "--lr", "0.03",
               "--seed", "0", "--out-dir", str(out), *FAST])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "890 trainable parameters" in printed  # 32*31/2 (W) + 32 (V) + 32 (b) + 33*10 (readout)
    results = json.loads((out / "results.json").read_text())
    assert results["test_accuracy"] > 0.5  # chance is 0.1
    history = json.loads((out / "metrics.json").read_text())
    assert len(history) == 5 and {"train_loss", "val_accuracy", "val_loss"} <= set(history[0])
    assert (out / "metrics.csv").read_text().startswith("epoch,")
    assert (out / "results.csv").read_text().splitlines()[0].startswith("task,model,solver,parameters")
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["n_train"] + config["data"]["n_val"] == 1438 and config["parameters"] == 890


def test_preset_gives_paper_row_and_flags_override():
    s = resolve_settings(_parse("--preset", "afrnn-mnist"))
    assert (s.task, s.model, s.hidden_size, s.step_size, s.gamma, s.optimizer, s.lr) == \
        ("mnist", "afrnn", 128, 0.01, 0.001, "adagrad", 0.01)
    assert s.solver == "partitioned_euler"
    s = resolve_settings(_parse("--preset", "gated-pmnist", "--task", "digits-permuted", "--lr", "0.2"))
    assert (s.task, s.model, s.lr, s.sigma_w, s.gamma) == ("digits-permuted", "gated", 0.2, 8.0, 0.001)  # MNIST screen
    assert get_preset("antisymmetric-mnist").epochs_for(54_000, 128) == 119  # 50,000 iterations of 422 batches
    assert all(p.model in MODEL_NAMES and 0 < p.paper_accuracy < 100 for p in PRESETS.values())


@pytest.mark.parametrize("name", ["cornn-smnist", "cornn-psmnist", "unicornn-psmnist", "lem-smnist", "lem-psmnist",
                                  "lipschitz-smnist", "lipschitz-psmnist"])
def test_family_presets_build_the_papers_models(name):
    """Each family preset resolves to its authors' settings and builds a model of the paper's size (readout
    included), under the official discretisation."""
    from types import SimpleNamespace

    from odernn import count_parameters

    preset = get_preset(name)
    s = resolve_settings(_parse("--preset", name))
    assert (s.model, s.solver, s.step_size, s.lr, s.batch_size, s.lr_decay_epoch, s.grad_clip) == (
        preset.model, preset.solver, preset.step_size, preset.lr, preset.batch_size, preset.lr_decay_epoch,
        preset.grad_clip)
    pixels = SimpleNamespace(input_size=1, num_classes=10)  # (permuted) pixel MNIST
    assert count_parameters(build_classifier(s, pixels)) == int(preset.paper_params)
    assert {k: v for k, v in s.model_kwargs().items() if k != "substeps"} == {
        k: getattr(preset, k) for k in ("epsilon", "alpha", "beta") if getattr(preset, k) is not None}


@pytest.mark.parametrize("model,gamma", [("antisymmetric", 0.01), ("afrnn", 0.01), ("cornn", 2.7),
                                         ("lipschitz", 0.001), ("lem", None), ("lstm", None)])
def test_gamma_defaults_to_the_models_own(model, gamma):
    """Without --gamma each model gets its field's default (coRNN's stiffness is not the AntisymmetricRNN
    diffusion), recorded as a number; given, it is used as is."""
    assert resolve_settings(_parse("--task", "digits", "--model", model)).gamma == gamma
    assert resolve_settings(_parse("--task", "digits", "--model", "cornn", "--gamma", "0.5")).gamma == 0.5
    from odernn.models import default_gamma
    with pytest.raises(ValueError, match="unknown model 'transformer'; known models: antisymmetric"):
        default_gamma("transformer")


def test_lr_decay_epoch_divides_the_rate_once():
    from types import SimpleNamespace

    from experiments.training import TrainConfig

    config = TrainConfig(epochs=120, batch_size=8, lr=0.002, lr_decay_epoch=100)
    assert [config.lr_at(e) for e in (0, 99, 100, 119)] == [0.002, 0.002, 0.0002, 0.0002]
    with pytest.raises(ValueError, match="lr_decay_epoch must be a positive integer"):
        TrainConfig(epochs=1, batch_size=8, lr=0.1, lr_decay_epoch=0)
    with pytest.raises(ValueError, match="--epsilon is a setting of the ODE models; lstm has none"):
        resolve_settings(_parse("--task", "digits", "--model", "lstm", "--epsilon", "1"))
    with pytest.raises(ValueError, match=r"unknown option\(s\) epsilon for model 'antisymmetric'"):
        build_classifier(resolve_settings(_parse("--task", "digits", "--model", "antisymmetric", "--epsilon", "1")),
                         SimpleNamespace(input_size=8, num_classes=10))


@pytest.mark.parametrize("argv,message", [
    (["--task", "svhn", "--model", "antisymmetric"], "unknown task 'svhn'; known tasks: digits"),
    (["--task", "digits", "--model", "transformer"], "unknown model 'transformer'; known models: antisymmetric"),
    (["--task", "digits", "--model", "gated", "--solver", "rk5"], "unknown solver 'rk5'; known solvers: euler"),
    (["--preset", "gated-svhn"], "unknown preset 'gated-svhn'; known presets: antisymmetric-mnist"),
    (["--task", "digits", "--model", "gated", "--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["--task", "digits", "--model", "gated", "--step-size", "0"], "step size must be a positive finite number"),
    (["--task", "digits", "--model", "gated", "--step-size", "-0.1"], "step size must be a positive finite number"),
    (["--task", "digits"], "--model is required unless --preset gives it"),
])
def test_bad_settings_rejected_before_any_work(argv, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings(_parse(*argv))


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["sequential", "--task", "mnist", "--model", "antisymmetric", "--out-dir", str(tmp_path), *FAST]) == 2
    assert "error: task needs MNIST files: pass --data-root" in capsys.readouterr().err
    rc = main(["sequential", "--task", "mnist", "--model", "antisymmetric", "--data-root", str(tmp_path),
               "--out-dir", str(tmp_path / "r"), *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz") in err
    assert main(["sequential", "--preset", "nope", *FAST]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    rc = main(["sequential", "--task", "digits", "--model", "lstm", "--lr", "-1", "--out-dir", str(tmp_path / "l"),
               *FAST])
    assert rc == 2 and "lr must be a positive finite number" in capsys.readouterr().err


def test_noise_padded_cifar_trains_through_the_batch_hook(tmp_path, capsys):
    import pickle

    import numpy as np
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 1]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    out = tmp_path / "run"
    assert main(["sequential", "--task", "noisy-cifar10", "--model", "antisymmetric", "--hidden-size", "4",
                 "--epochs", "1", "--batch-size", "4", "--data-root", str(tmp_path), "--val-fraction", "0.2",
                 "--out-dir", str(out), *FAST]) == 0
    assert "sequences of 1000 x 96" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["noise"] == "fresh" and config["data"]["padded_length"] == 1000
    assert config["parameters"] == 6 + 4 * 96 + 4 + 5 * 10  # 4*3/2 (W) + V + b + readout
