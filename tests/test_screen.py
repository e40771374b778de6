"""The screen: one run per grid point, best first; a rerun reads points back and refuses other settings."""
import argparse
import json

from experiments import screen


def args_for(out, *extra):
    parser = argparse.ArgumentParser()
    screen.add_arguments(parser)
    return parser.parse_args(["--task", "digits", "--hidden-size", "4", "--step-size", "0.1", "--gamma", "0.01",
                              "--sigma-w", "1,16", "--lr", "0.1", "--train-subset", "300", "--threads", "1",
                              "--no-progress", "--out-dir", str(out), *extra])


def test_screen_ranks_points_and_resumes_only_with_the_same_settings(tmp_path, capsys):
    assert screen.run(args_for(tmp_path / "s")) == 0
    assert "[2/2]" in capsys.readouterr().out
    record = json.loads((tmp_path / "s" / "screen.json").read_text())
    rows = record["rows"]
    assert len(rows) == 2 and rows[0]["val_accuracy"] >= rows[1]["val_accuracy"]
    assert screen.run(args_for(tmp_path / "s")) == 0  # read back, nothing retrained
    assert "[1/2]" not in capsys.readouterr().out
    assert screen.run(args_for(tmp_path / "s", "--epochs", "2")) == 2
    assert "epochs: 1 -> 2" in capsys.readouterr().err
    assert screen.run(args_for(tmp_path / "s", "--permutation-seed", "3")) == 2  # another permuted task
    assert "permutation_seed: 0 -> 3" in capsys.readouterr().err


def test_an_interrupted_screen_keeps_its_identity(tmp_path, capsys, monkeypatch):
    """screen.json holds the settings before the first point trains, so a screen stopped midway cannot be
    continued under other settings (its finished points would be read back as theirs)."""
    calls = []

    def stop_after_one(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(screen, "train_and_test", stop_after_one)
    try:
        screen.run(args_for(tmp_path / "s"))
    except KeyboardInterrupt:
        pass
    assert calls and json.loads((tmp_path / "s" / "screen.json").read_text())["rows"] == []
    monkeypatch.undo()
    assert screen.run(args_for(tmp_path / "s", "--split-seed", "5")) == 2
    assert "split_seed: 0 -> 5" in capsys.readouterr().err
