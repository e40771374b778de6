"""Models compared over systems, grids and seeds (``trajectory compare``): the cells, the summary's means,
spreads and wins, the command (every cell an ordinary run, a rerun reads them back), and the neural-ODE
field's MLP settings in the task."""
import json
import statistics

import pytest

import odernn
from experiments.__main__ import main
from experiments.trajectory import compare as cmp
from experiments.trajectory.model import build_predictor
from experiments.trajectory.settings import TaskSettings


def test_cells_cover_every_combination_and_refuse_bad_lists():
    grid = cmp.cells(["pendulum", "lorenz63"], ["regular", "irregular"], [0, 1, 2])
    assert len(grid) == 12 and grid[0].name == "pendulum-regular-seed0" and grid[-1].name == "lorenz63-irregular-seed2"
    with pytest.raises(ValueError, match="unknown grid.*sparse"):
        cmp.cells(["pendulum"], ["sparse"], [0])
    with pytest.raises(ValueError, match="--seeds lists a value twice"):
        cmp.cells(["pendulum"], ["regular"], [1, 1])
    with pytest.raises(ValueError, match="--systems needs at least one value"):
        cmp.cells([], ["regular"], [0])


def test_summary_means_spreads_and_wins():
    mse = {("a", 0): 1.0, ("b", 0): 2.0, ("a", 1): 3.0, ("b", 1): 2.5, ("a", 2): 2.0, ("b", 2): 0.5}
    results = {cmp.Cell("pendulum", "regular", k): [
        {"model": m, "test_mse": mse[(m, k)], "test_over_mean_predictor": mse[(m, k)] / 4, "parameters": 10}
        for m in ("a", "b")] for k in range(3)}
    rows = {r["model"]: r for r in cmp.summarize(results)}
    assert rows["a"]["test_mse_mean"] == pytest.approx(2.0) and rows["b"]["test_mse_mean"] == pytest.approx(5 / 3)
    assert rows["a"]["test_mse_std"] == pytest.approx(statistics.stdev([1.0, 3.0, 2.0]))
    assert rows["b"]["over_mean_predictor_mean"] == pytest.approx(5 / 12)
    assert rows["a"]["wins"] == [0] and rows["b"]["wins"] == [1, 2]
    table = cmp.markdown(list(rows.values()))
    assert "| pendulum | regular | b | 10 | **1.6667 +- " in table and "| 2 of 3 (1, 2) |" in table


def test_mlp_settings_reach_the_neural_ode_field_and_nothing_else():
    small = TaskSettings(models=("neural-ode", "lstm"), hidden_size=8, width=12, depth=3)
    net = build_predictor(small, "neural-ode", 2, 1, uniform=True)
    field = net.rnn.field
    assert (field.width, field.depth) == (12, 3)
    assert odernn.count_parameters(build_predictor(small, "lstm", 2, 1, True)) == odernn.count_parameters(
        build_predictor(TaskSettings(models=("lstm",), hidden_size=8), "lstm", 2, 1, True))
    with pytest.raises(ValueError, match="--width has no effect on antisymmetric, lstm; it applies to neural-ode"):
        TaskSettings(models=("antisymmetric", "lstm"), width=12)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        TaskSettings(models=("neural-ode",), depth=0)


@pytest.mark.slow
def test_compare_command_runs_every_cell_and_a_rerun_reads_them_back(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["trajectory", "compare", "--systems", "pendulum", "--grids", "regular", "--seeds",
            "0", "1", "--models", "antisymmetric", "lstm", "--hidden-size", "4", "--n", "12", "--steps", "6",
            "--epochs", "1", "--batch-size", "8", "--no-progress", "--no-plots", "--stability-check", "off",
            "--out-dir", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "compare.json").read_text())
    assert summary["cells"] == ["pendulum-regular-seed0", "pendulum-regular-seed1"]
    assert [(r["system"], r["model"], r["seeds"]) for r in summary["summary"]] == [
        ("pendulum", m, [0, 1]) for m in ("antisymmetric", "lstm")]
    cell = json.loads((out / "pendulum-regular-seed1" / "config.json").read_text())
    assert cell["settings"]["seed"] == 1 and cell["settings"]["split_seed"] == 1
    assert cell["simulation"]["system"] == "pendulum" and cell["simulation"]["irregular"] is False
    metrics = (out / "pendulum-regular-seed1" / "lstm" / "metrics.json").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # the rerun reads the finished cells back: nothing trained again
    assert (out / "pendulum-regular-seed1" / "lstm" / "metrics.json").read_text() == metrics
    assert json.loads((out / "compare.json").read_text())["summary"] == summary["summary"]
    assert main([*argv[:-2], "--grids", "hourly", "--out-dir", str(tmp_path / "bad")]) == 2
    assert "unknown grid(s) hourly" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    # a setting that fits one system and not another is refused before the first cell trains
    assert main([*argv[:-2], "--systems", "damped-oscillator", "pendulum", "--observed", "x",
                 "--out-dir", str(tmp_path / "mixed")]) == 2
    assert "--observed x: not a state variable of pendulum" in capsys.readouterr().err
    assert not (tmp_path / "mixed").exists()
