"""Every bad input to odeint gets a ValueError naming the problem; non-finite states name the time."""
import math

import pytest
import torch
from torch import nn

import solvers
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
    (dict(method="rk4", partition=(1, 2)), r"partition is only used by methods 'partitioned_euler', 'symplectic_euler'"),
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
    """y' = y^2 blows up at t = 1: the accepted steps shrink until t + dt no longer moves t, and the solve stops
    there (within a few hundred steps, not after thousands)."""
    with pytest.raises(RuntimeError, match=r"step size underflow \(dt=.*\) at t=1 \(step (\d+), \d+ accepted\)"
                                           r".*blows up") as caught:
        odeint(blow_up, Y0, torch.tensor([0.0, 2.0], dtype=torch.float64), method="dopri5")
    assert int(str(caught.value).split("(step ")[1].split(",")[0]) < 1000


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


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="rk4", foo=1), r"unknown options \['foo'\] for fixed-step method 'rk4'; allowed: step_size, "
                                r"perturb, grid_constructor; "
                                r"odeint's arguments: method, step_size, rtol.*adjoint_method"),
    (dict(method="dopri5", options=dict(foo=1)), r"unknown options \['foo'\] for adaptive method 'dopri5'; allowed: "
                                                 r"safety, min_factor, max_factor, min_step, max_step, first_step, norm, "
                                                 r"stiffness_interval, ifactor, dfactor, max_num_steps, jump_t"),
    (dict(method="rk4", step_size=0.1, max_step=0.1), r"options \['max_step'\] are not used by fixed-step method 'rk4'"),
    (dict(method="dopri5", grid_constructor=None), r"options \['grid_constructor'\] are not used by adaptive method"),
    (dict(method="rk4", options=dict(interp="cubic")), r"torchdiffeq option 'interp'.*not supported by backend "
                                                       r"'odernn'; use backend='torchdiffeq'"),
    (dict(method="rk4", options=dict(perturb=1)), r"perturb must be True or False, got 1"),
    (dict(method="rk4", step_size=0.1, grid_constructor=lambda f, y0, t: t),
     r"step_size and grid_constructor are mutually exclusive"),
    (dict(method="rk4", grid_constructor=lambda f, y0, t: t[1:]), r"grid must run from t\[0\] = 0"),
    (dict(method="rk4", grid_constructor=lambda f, y0, t: t.flip(0)), r"grid must run from"),
    (dict(method="rk4", grid_constructor=lambda f, y0, t: [0.0, 1.0]), r"must return a 1-D float tensor"),
    (dict(method="dopri5", options=dict(safety=0.8), safety=0.8), r"options \['safety'\] given both as keyword "
                                                                  r"arguments and in options="),
    (dict(method="dopri5", ifactor=5.0, max_factor=5.0), r"option 'max_factor' given twice"),
    (dict(method="rk4", step_size=0.1, options=dict(step_size=0.1)), r"step_size given twice"),
    (dict(method="dopri5", jumps=[0.5], jump_t=[0.5]), r"jumps given twice"),
    (dict(method="dopri5", backend="torchdiffeq", foo=1), r"unknown option 'foo' for torchdiffeq's method 'dopri5'; it "
                                                         r"accepts: dfactor, dtype, first_step, ifactor, jump_t"),
    (dict(method="dopri5", backend="torchdiffeq", partition=(1, 2)),
     r"\['partition'\] are options of backend 'odernn'"),
    (dict(method="euler", adjoint=True, newton=solvers.NewtonOptions()),
     r"\['newton'\] are options of backend 'odernn'"),
    (dict(method="dopri5", adjoint_options=dict(norm="seminorm")), r"\['adjoint_options'\] configure the adjoint "
                                                                   r"solve and are only used with adjoint=True"),
    (dict(method="dopri5", adjoint_params=()), r"\['adjoint_params'\] configure the adjoint solve"),
    (dict(method="dopri5", rtol=torch.ones(3)), r"rtol must be a number \(a per-entry tensor of tolerances is not "
                                                r"supported\)"),
    (dict(method="dopri5", stiffness_interval=0), r"stiffness_interval must be an int >= 1.*or None"),
    (dict(method="dopri5", norm="rms"), r"norm must be a function of the state"),
    (dict(method="dopri5", max_steps=0), r"max_steps must be an int >= 1, got 0"),
])
def test_unsupported_or_unknown_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odeint(decay, Y0, T, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_states_are_refused_with_the_reason(dtype):
    match = rf"y0 has dtype {dtype}, which the solvers refuse: its epsilon is .*a small step rounds away.*float32"
    for method in ("dopri5", "rk4"):
        with pytest.raises(ValueError, match=match):
            odeint(decay, torch.ones(2, dtype=dtype), [0.0, 1.0], method=method)
    with pytest.raises(ValueError, match=match):
        odeint(lambda t, s: s, (torch.ones(1, dtype=dtype), torch.ones(2, dtype=dtype)), [0.0, 1.0])
    with pytest.raises(ValueError, match=match):
        solvers.odeint_event(decay, torch.ones(1, dtype=dtype), 0.0, lambda t, y: y.sum() - 0.5)


class Counted:
    """f with its evaluations counted."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, t, y):
        self.calls += 1
        return self.f(t, y)


def test_adaptive_solve_with_a_non_finite_f_at_the_start_raises_at_once():
    f = Counted(lambda t, y: y * math.nan)
    with pytest.raises(FloatingPointError, match=r"f\(t, y0\) is not finite at t=0.*cannot start"):
        odeint(f, Y0, T, method="dopri5")
    assert f.calls == 1
    f = Counted(lambda t, y: y * math.nan)
    with pytest.raises(FloatingPointError, match=r"f\(t, y\) is not finite at t=0 \(step 1, 0 accepted\)"):
        odeint(f, Y0, T, method="dopri5", first_step=0.1)
    assert f.calls == 7  # one attempt: dopri5's 7 stages


def test_adaptive_solve_that_meets_nan_mid_way_stops_promptly_naming_the_time():
    f = Counted(lambda t, y: torch.where(t > 0.5, math.nan, -1.0) * y)
    with pytest.raises(FloatingPointError, match=r"attempts in a row from t=0.5 \(step \d+, \d+ accepted\) produced "
                                                 r"NaN/Inf"):
        odeint(f, Y0, torch.tensor([0.0, 5.0], dtype=torch.float64), method="dopri5")
    assert f.calls < 1000


def stiff(t, y):
    return -1e5 * (y - torch.cos(t))


def test_a_stiff_problem_stops_early_naming_the_step_time_and_implicit_methods():
    """dopri5 needs ~3e5 steps (h*1e5 at its stability limit 3.3) for y' = -1e5 (y - cos t) over [0, 10];
    the stiffness test stops it after about a thousand."""
    f = Counted(stiff)
    with pytest.raises(solvers.StiffnessError, match=r"looks stiff for 'dopri5' at t=[0-9.e-]+, step \d+ \(\d+ "
                                                     r"accepted\).*stability region.*more steps.*implicit method.*"
                                                     r"backward_euler.*stiffness_interval=None") as info:
        odeint(f, torch.zeros(1, dtype=torch.float64), torch.tensor([0.0, 10.0], dtype=torch.float64),
               method="dopri5", rtol=1e-6)
    assert f.calls < 30_000 and 3.24 <= info.value.h_lambda and 0.0 < info.value.t < 1.0
    f = Counted(stiff)
    with pytest.raises(RuntimeError, match=r"max_steps=3000 steps and reached only t="):  # test off: no early stop
        odeint(f, torch.zeros(1, dtype=torch.float64), torch.tensor([0.0, 10.0], dtype=torch.float64),
               method="dopri5", rtol=1e-6, stiffness_interval=None, max_steps=3000)
