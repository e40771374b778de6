"""Learning curves: the table adds up epoch times, the plot is written, a folder without metrics is refused."""
import argparse
import json

import pytest

from experiments import curves


def write_run(folder, accuracies):
    folder.mkdir()
    rows = [{"epoch": i + 1, "val_accuracy": a, "test_accuracy": a - 0.01, "epoch_time_s": 1800.0}
            for i, a in enumerate(accuracies)]
    (folder / "metrics.json").write_text(json.dumps(rows))


def test_table_and_plot(tmp_path, capsys):
    write_run(tmp_path / "a", [0.5, 0.6])
    parser = argparse.ArgumentParser()
    curves.add_arguments(parser)
    assert curves.run(parser.parse_args([str(tmp_path / "a"), "--plot", str(tmp_path / "c.png")])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "| a | 2 | 1.00 | 60.0 | 59.0 |" and (tmp_path / "c.png").stat().st_size > 1000
    assert curves.run(parser.parse_args([str(tmp_path)])) == 2
    assert "has no metrics.json" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ('{"epoch": 1', "metrics.json is not valid JSON (Expecting"),
    ('"just a string"', "metrics.json is not a learning curve"),
    ('[{"epoch": 1}]', "metrics.json is not a learning curve"),
])
def test_malformed_metrics_are_named(tmp_path, capsys, content, message):
    from experiments.__main__ import main
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(content)
    assert main(["curves", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "string indices" not in err
