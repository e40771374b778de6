"""The double pendulum under implicit methods: ground truth with Gauss-Legendre 4 (Newton per trajectory)
and the long-horizon energy command."""
import json

import numpy as np
import pytest
import torch

import experiments.double_pendulum.energy as en
import experiments.double_pendulum.generate as gen
from experiments.__main__ import main
from experiments.double_pendulum.physics import DoublePendulum
from experiments.double_pendulum.reference import solve_scipy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHORT = np.arange(6) * 0.1  # 0 .. 0.5 s


def test_gauss_legendre4_ground_truth_solves_newton_per_trajectory(monkeypatch):
    calls = []
    original = gen.odeint

    def recording(f, y0, t, **kw):
        calls.append(kw)
        return original(f, y0, t, **kw)

    monkeypatch.setattr(gen, "odeint", recording)
    errs = []
    for h in (0.025, 0.0125):
        truth = gen.generate(n=4, seed=2, method="gauss_legendre4", step_size=h, times=SHORT, progress=False)
        ref = solve_scipy(truth.pendulum, truth.initial_conditions, truth.times)
        errs.append(np.abs(truth.states - ref).max())
        assert truth.metadata["solver_kind"] == "implicit" and truth.metadata["n_newton"] + truth.metadata["n_functional"] >= 0.5 / h
    assert [kw["batch_rows"] for kw in calls] == [True, True]
    assert errs[1] < 1e-5 and 10 < errs[0] / errs[1] < 24  # 4th order
    assert gen.relative_energy_drift(truth).max() < 1e-6


def test_generate_command_takes_gauss_legendre4(tmp_path, capsys):
    out = tmp_path / "gl4.npz"
    assert main(["double-pendulum", "generate", "--solver", "gauss_legendre4", "--step-size", "0.05", "--n", "3",
                 "--check", "0", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "gauss_legendre4 (step 0.05 s)" in printed and "functional and" in printed and "Newton iterations" in printed
    truth = gen.load(out)
    assert truth.states.shape == (3, 30, 4) and truth.metadata["step_size"] == 0.05


def test_energy_study_reports_bounded_and_drifting_errors():
    times, runs = en.energy_study(n=3, seed=0, t_end=3.0, sample_every=0.1, fixed=("gauss_legendre4", "rk4"),
                                  step_size=0.05, adaptive=("dopri5",), tolerances=(1e-5,), checkpoints=(1.0, 3.0))
    assert times.shape == (31,) and times[-1] == 3.0
    by = {r.label: r for r in runs}
    assert list(by) == ["gauss_legendre4, h = 0.05 s", "rk4, h = 0.05 s", "dopri5, tol = 1e-05"]
    gl4, rk4 = by["gauss_legendre4, h = 0.05 s"], by["rk4, h = 0.05 s"]
    assert gl4.error.shape == (31, 3) and (gl4.error[0] == 0).all()
    assert gl4.n_stage > 0 and rk4.n_stage == 0 and gl4.n_steps == rk4.n_steps == 60
    assert rk4.nfe == 4 * 60
    # same step, same order: the symplectic GL4 keeps the energy ~10x better than rk4 already over 3 s
    assert gl4.max_error_until(times, 3.0) < 0.2 * rk4.max_error_until(times, 3.0)
    assert gl4.max_error_until(times, 1.0) <= gl4.max_error_until(times, 3.0)
    table = en.markdown(times, runs, (1.0, 3.0, 100.0))  # checkpoints past the horizon are left out
    assert "t <= 1 s" in table and "t <= 3 s" in table and "100 s" not in table
    assert table.splitlines()[3].split(" | ")[-2] == "-"  # no Newton iterations for rk4


def test_energy_command_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "energy"
    assert main(["double-pendulum", "energy", "--n", "2", "--t-end", "0.5", "--step-size", "0.05",
                 "--tolerances", "1e-6", "--checkpoints", "0.2", "0.5", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| gauss_legendre4, h = 0.05 s |" in printed and "| dopri5, tol = 1e-06 |" in printed
    assert (out / "energy.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / "energy.md").read_text().count("\n|") == 2 + 3
    data = json.loads((out / "energy.json").read_text())
    assert [r["label"] for r in data["runs"]] == ["gauss_legendre4, h = 0.05 s", "rk4, h = 0.05 s",
                                                 "dopri5, tol = 1e-06"]
    assert len(data["times"]) == len(data["runs"][0]["max_error_per_time"]) == 6
    assert data["runs"][0]["stage_iterations"] > 0 and set(data["runs"][0]["max_error_until"]) == {"0.2", "0.5"}


@pytest.mark.parametrize("argv, message", [
    (["--fixed-solvers", "dopri5"], "--fixed-solvers takes fixed-step methods of the whole state, got 'dopri5'"),
    (["--adaptive-solvers", "rk4"], "--adaptive-solvers takes adaptive methods, got 'rk4'"),
    (["--fixed-solvers", "gauss_legendre6"], "unknown method 'gauss_legendre6'"),
    (["--step-size", "0"], "--step-size must be a positive finite number"),
    (["--tolerances", "0"], "--tolerances must be a positive finite number"),
    (["--t-end", "0.25", "--sample-every", "0.1"], "whole number of --sample-every"),
    (["--fixed-solvers", "--adaptive-solvers"], "nothing to run"),
])
def test_energy_command_bad_settings(tmp_path, capsys, argv, message):
    assert main(["double-pendulum", "energy", *argv, "--out", str(tmp_path / "e"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_relative_energy_error_uses_the_ground_truth_scale():
    p = DoublePendulum()
    truth = gen.generate(n=2, seed=1, method="rk4", step_size=0.05, times=SHORT, progress=False)
    err = en.relative_energy_error(p, torch.as_tensor(truth.states).transpose(0, 1))
    np.testing.assert_allclose(err.max(axis=0), gen.relative_energy_drift(truth), rtol=1e-12)
