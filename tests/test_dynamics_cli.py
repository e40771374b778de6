"""``python -m experiments dynamics`` and ``... stability``: every PNG and JSON is written."""
import json

import pytest

from experiments.__main__ import main

STEMS = ("antisymmetric_fig1", "antisymmetric_appD_fig2", "antisymmetric_appD_fig3", "antisymmetric_appD_fig4",
         "afrnn_trajectories", "afrnn_jacobian")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_dynamics_quick_writes_every_figure_and_table(tmp_path, capsys):
    assert main(["dynamics", "--quick", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    for stem in STEMS:
        assert (tmp_path / f"{stem}.png").read_bytes()[:8] == PNG_MAGIC
        assert json.loads((tmp_path / f"{stem}.json").read_text())
    table = json.loads((tmp_path / "radius_table.json").read_text())
    assert {r["method"] for r in table["rows"]} >= {"euler", "midpoint", "heun", "rk3", "rk4", "dopri5"}
    assert (tmp_path / "radius_table.md").read_text() in capsys.readouterr().out
    fig1 = json.loads((tmp_path / "antisymmetric_fig1.json").read_text())
    assert fig1["solver"] == "euler" and len(fig1["panels"]) == 8


@pytest.mark.parametrize("solver", ["rk4", "dopri5", "partitioned_euler"])
def test_dynamics_runs_under_other_solvers(tmp_path, solver):
    args = ["dynamics", "--quick", "--solver", solver, "--only", "fig1", "afrnn_jacobian", "--afrnn-steps", "30",
            "--out-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    assert json.loads((tmp_path / "antisymmetric_fig1.json").read_text())["solver"] == solver
    assert json.loads((tmp_path / "afrnn_jacobian.json").read_text())["solver"] == solver


def test_dynamics_rejects_unknown_solvers(tmp_path, capsys):
    assert main(["dynamics", "--solver", "nope", "--out-dir", str(tmp_path)]) == 2
    assert "known methods" in capsys.readouterr().err


def test_stability_command_draws_the_cloud_and_reports(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["stability", "--model", "antisymmetric", "--solver", "euler", "--gamma", "0.0", "--hidden", "8",
                 "--steps", "10", "--batch", "2", "--methods", "euler", "rk4", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    report = json.loads((tmp_path / "x.json").read_text())
    assert report["stable"] is False and report["fraction_outside"] > 0.5
    assert "OUTSIDE" in capsys.readouterr().out


def test_stability_command_under_partitioned_euler_draws_its_amplification_matrices(tmp_path, capsys):
    out = tmp_path / "pe.png"
    assert main(["stability", "--model", "afrnn", "--solver", "partitioned_euler", "--hidden", "4", "--steps", "8",
                 "--batch", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "amplification matrix" in json.loads((tmp_path / "pe.json").read_text())["criterion"]
