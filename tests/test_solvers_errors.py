"""Every bad input to odeint gets a ValueError naming the problem; non-finite states name the time."""
import math

import pytest
import torch
from torch import nn

from solvers import odeint

Y0 = torch.ones(3, dtype=torch.float64)
T = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)


def decay(t, y):
    return -y


@pytest.mark.parametrize("kwargs, match", [
    (dict(t=torch.zeros(2, 3)), r"t must be a non-empty 1-D tensor.*shape \(2, 3\)"),
    (dict(t=torch.tensor([])), r"t must be a non-empty 1-D tensor.*shape \(0,\)"),
    (dict(t=torch.tensor([0.0, 0.5, 0.4, 1.0])), r"strictly monotonic.*non-monotonic at t\[1\]=0.5, t\[2\]=0.4"),
    (dict(t=torch.tensor([0.0, 0.5, 0.5, 1.0])), r"strictly monotonic.*repeated at t\[1\]=0.5, t\[2\]=0.5"),
    (dict(t=torch.tensor([1.0, 0.5, 0.7])), r"strictly monotonic.*non-monotonic at t\[1\]=0.5, t\[2\]=0.7"),
    (dict(t=torch.tensor([0.0, math.nan])), r"t contains NaN or Inf"),
    (dict(step_size=0.0), r"step_size must be a finite number > 0, got 0.0"),
    (dict(step_size=-0.1), r"step_size must be a finite number > 0, got -0.1"),
    (dict(step_size=math.inf), r"step_size must be a finite number > 0, got inf"),
    (dict(step_size=math.nan), r"step_size must be a finite number > 0, got nan"),
    (dict(y0=torch.tensor([1.0, math.nan, 0.0])), r"y0 contains NaN or Inf \(1 of 3 entries\)"),
    (dict(y0=torch.tensor([math.inf, 0.0])), r"y0 contains NaN or Inf"),
    (dict(y0=torch.ones(3, dtype=torch.long)), r"y0 must be a floating-point tensor, got Tensor of dtype torch.int64"),
    (dict(f=lambda t, y: y.sum()),
     r"f\(t, y\) returned \(\) at t=0; it must return a tensor of the state's shape \(3,\)"),
    (dict(f=lambda t, y: 1.0), r"f\(t, y\) returned float"),
    (dict(method="rk5"), r"unknown method 'rk5'; known methods: euler.*partitioned_euler"),
    (dict(backend="scipy"), r"unknown backend 'scipy'; known backends: odernn, torchdiffeq"),
    (dict(backend="torchdiffeq", method="rk38"), r"unknown torchdiffeq method 'rk38'; known: dopri8"),
    (dict(method="partitioned_euler"), r"'partitioned_euler' needs partition="),
    (dict(method="partitioned_euler", partition=(1, 1)), r"partition sizes \(1, 1\) sum to 2.*last dimension is 3"),
    (dict(method="partitioned_euler", partition=(0, 3)), r"non-empty positive block sizes"),
    (dict(method="rk4", partition=(1, 2)), r"partition is only used by method 'partitioned_euler'"),
    (dict(method="rk4", safety=0.5), r"options \['safety'\] are not used by fixed-step method 'rk4'"),
    (dict(method="euler", step_size=1e-9), r"needs 1000000000 steps.*more than max_steps=1000000"),
    (dict(method="dopri5", first_step=0.0), r"first_step must be a finite number > 0, got 0.0"),
    (dict(adjoint=True), r"no method identical to 'rk4'.*euler, midpoint, heun, rk38"),
    (dict(adjoint=True, method="euler"), r"adjoint=True requires f to be a torch.nn.Module"),
])
def test_bad_input_raises_value_error(kwargs, match):
    args = dict(f=decay, y0=Y0, t=T)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        odeint(args.pop("f"), args.pop("y0"), args.pop("t"), **args)


def blow_up(t, y):
    return y * y  # y' = y^2 with y(0) = 1 blows up at t = 1


def test_non_finite_state_names_the_time_and_can_be_turned_off():
    t = torch.linspace(0.0, 2.0, 11, dtype=torch.float64)
    with pytest.raises(FloatingPointError, match=r"non-finite between t=1 and t=1.2 \(output 6 of 10\)"):
        odeint(blow_up, Y0, t, method="rk4", step_size=0.01)
    ys = odeint(blow_up, Y0, t, method="rk4", step_size=0.01, check_finite=False)
    assert not torch.isfinite(ys[-1]).any() and torch.isfinite(ys[5]).all()


def test_adaptive_blow_up_raises_with_the_time():
    with pytest.raises(FloatingPointError, match=r"attempts in a row from t=1 \(step \d+, \d+ accepted\) produced "
                                                 r"NaN/Inf.*the solution blows up"):
        odeint(blow_up, Y0, torch.tensor([0.0, 2.0], dtype=torch.float64), method="dopri5")


class Decay(nn.Module):
    def __init__(self):
        super().__init__()
        self.rate = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, y):
        return -self.rate * y


def test_torchdiffeq_backend_and_adjoint_match_our_solve():
    f = Decay()
    ours = odeint(f, Y0, T, method="dopri5", rtol=1e-9, atol=1e-12)
    theirs, stats = odeint(f, Y0, T, method="dopri5", backend="torchdiffeq", rtol=1e-9, atol=1e-12,
                           return_stats=True)
    assert (ours - theirs).abs().max().item() < 1e-9 and stats.nfe > 0 and stats.n_steps == 0
    fixed = odeint(f, Y0, T, method="rk4", backend="torchdiffeq")  # torchdiffeq's rk4 is our rk38
    assert (fixed - odeint(f, Y0, T, method="rk38")).abs().max().item() < 1e-14
    ys = odeint(f, Y0, T, method="dopri5", adjoint=True, rtol=1e-9, atol=1e-12)
    ys[-1].sum().backward()
    # d/d rate of 3 exp(-rate) at rate = 1
    assert abs(f.rate.grad.item() + 3 * math.exp(-1.0)) < 1e-6
    with pytest.raises(ValueError, match="f returned|f\\(t, y\\) returned"):
        odeint(lambda t, y: y[:2], Y0, T, backend="torchdiffeq", method="euler")
