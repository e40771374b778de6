"""Clear errors for bad input to ODERNN (shapes, dtypes, non-finite values, tolerances), the heads,
field_jacobian and the command line."""
import math

import pytest
import torch
from torch import nn

import solvers
from experiments.__main__ import main
from odernn import ODERNN, AntisymmetricField, SequenceClassifier, TrajectoryRegressor
from odernn.stability import field_jacobian


def _rnn(**kw) -> ODERNN:
    return ODERNN(AntisymmetricField(2, 4), **kw)


def test_odernn_rejects_mismatched_or_non_finite_inputs_and_bad_tolerances():
    rnn = _rnn()
    with pytest.raises(ValueError, match="x has dtype torch.float64, the field's parameters are torch.float32"):
        rnn(torch.ones(1, 3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="x has dtype torch.int64"):
        rnn(torch.ones(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="h0 .* must match x"):
        rnn(torch.ones(1, 3, 2), torch.zeros(1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="h0 contains NaN or Inf"):
        rnn(torch.ones(1, 3, 2), torch.full((1, 4), math.nan))
    with pytest.raises(ValueError, match="rtol must be finite and >= 0"):
        _rnn(solver="dopri5", rtol=-1.0)
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        _rnn(solver="dopri5", max_steps=0)


@pytest.mark.parametrize("solver", ["euler", "dopri5", "implicit_midpoint", "kvaerno3", "reversible_heun"])
def test_empty_batches_and_states_are_refused_at_the_entry(solver):
    """Not an internal reduction error or a NaN blamed on f: one ValueError naming the empty input."""
    with pytest.raises(ValueError, match=r"x holds an empty batch \(shape \(0, 5, 2\)"):
        _rnn(solver=solver)(torch.zeros(0, 5, 2))
    with pytest.raises(ValueError, match=r"y0 is empty \(shape \(0, 2\)\)"):
        solvers.odeint(lambda t, y: -y, torch.zeros(0, 2), torch.linspace(0, 1, 3), method=solver, step_size=0.1)


def test_adaptive_step_budget_is_an_odernn_option():
    rnn = _rnn(solver="dopri5", step_size=0.5, rtol=1e-12, atol=1e-12, max_steps=5)
    with pytest.raises(RuntimeError, match="max_steps=5"):
        rnn(torch.randn(1, 4, 2))


def test_fused_scan_names_its_once_differentiable_limit_and_the_generic_path_goes_further():
    x = torch.randn(2, 5, 2, requires_grad=True)
    for fast_path in (True, False):
        _, h = _rnn(solver="rk4", fast_path=fast_path)(x)
        (g,) = torch.autograd.grad(h.pow(2).sum(), x, create_graph=True)
        if fast_path:
            with pytest.raises(RuntimeError, match="once_differentiable"):
                g.sum().backward()
        else:
            g.sum().backward()
            assert x.grad is not None and torch.isfinite(x.grad).all()


def test_heads_and_field_jacobian_check_their_arguments():
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        SequenceClassifier(_rnn(), 0)
    with pytest.raises(ValueError, match="needs a sequence module with a readout_slice .* got Linear"):
        TrajectoryRegressor(nn.Linear(2, 3), 3)
    with pytest.raises(ValueError, match="state_size 4 and input_proj_size 4; got h \\(1, 7\\)"):
        field_jacobian(AntisymmetricField(2, 4), torch.zeros(1, 7), torch.zeros(1, 4))


@pytest.mark.parametrize("argv, match", [
    (["stability", "--solver", "foo"], "'foo'; known methods: euler"),
    (["stability", "--batch", "0"], "--batch must be >= 1"),
    (["benchmark", "--T", "0"], "--T must be >= 1, got 0"),
    (["benchmark", "--T", "1"], "--T must be >= 10 for the scan table"),
    (["trajectory", "--models", "antisymmetric", "afrnn", "--num-layers", "3"],
     "--num-layers 3 has no effect on the single-layer model(s) antisymmetric"),
    (["solver-demo", "--rtol", "-1"], "rtol"),
])
def test_cli_bad_settings_end_in_one_error_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err and match in err


@pytest.mark.parametrize("argv, match", [
    (["sequential", "--task", "digits", "--model", "gated", "--seed", "99999999999999999999999"],
     "seed must be an integer from 0 to 2^63 - 1, got 99999999999999999999999"),
    (["sequential", "--task", "digits", "--model", "gated", "--split-seed", "-3"],
     "split_seed must be an integer from 0 to 2^63 - 1, got -3"),
])
def test_seeds_out_of_range_are_refused_by_name(argv, match, capsys, tmp_path):
    assert main([*argv, "--out-dir", str(tmp_path / "r")]) == 2
    assert match in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, match", [
    (["dynamics", "--eps", "inf"], "--eps must be a finite number > 0, got inf"),
    (["dynamics", "--eps", "nan"], "--eps must be a finite number > 0, got nan"),
    (["dynamics", "--afrnn-steps", "0"], "--afrnn-steps must be >= 1, got 0"),
    (["dynamics", "--traj-hidden", "0"], "--traj-hidden must be >= 1, got 0"),
    (["dynamics", "--seed", "-1"], "--seed must be an integer from 0 to 2^63 - 1, got -1"),
])
def test_dynamics_flags_are_checked_by_name_before_any_figure(argv, match, capsys, tmp_path):
    assert main([*argv, "--quick", "--no-progress", "--out-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert match in err and "Error;" not in err and not (tmp_path / "d").exists()
