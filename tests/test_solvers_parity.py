"""Drop-in parity with torchdiffeq: tuple states, events, the adjoint's arguments and gradients, step callbacks."""
import math

import pytest
import torch
import torchdiffeq
from torch import nn
from torch.autograd import gradcheck

import solvers
from solvers import odeint, odeint_event

F64 = torch.float64


# --- tuple states ---------------------------------------------------------------------------------------------

def oscillator(t, state):
    """x (2,) and v (2, 1): x' = v, v' = -x + sin(t) (shapes differ on purpose)."""
    x, v = state
    return v.reshape(2), (-x + torch.sin(t)).reshape(2, 1)


X0, V0 = torch.tensor([1.0, 0.5], dtype=F64), torch.tensor([[0.0], [0.2]], dtype=F64)
T = torch.linspace(0.0, 2.0, 5, dtype=F64)


@pytest.mark.parametrize("method, options, tol", [
    ("dopri5", dict(rtol=1e-10, atol=1e-12), 1e-8), ("bosh3", dict(rtol=1e-9, atol=1e-12), 1e-7),
    ("rk4", dict(step_size=0.01), 1e-8), ("gauss_legendre4", dict(step_size=0.1), 1e-5),
    ("partitioned_euler", dict(step_size=1e-3, partition=(2, 2)), 5e-3),
])
def test_tuple_state_matches_torchdiffeq(method, options, tol):
    xs, vs = odeint(oscillator, (X0, V0), T, method=method, **options)
    assert xs.shape == (5, 2) and vs.shape == (5, 2, 1)
    ref_x, ref_v = torchdiffeq.odeint(oscillator, (X0, V0), T, method="dopri5", rtol=1e-11, atol=1e-12)
    assert (xs - ref_x).abs().max() < tol and (vs - ref_v).abs().max() < tol


def test_tuple_state_uses_torchdiffeqs_mixed_norm():
    """The error norm of a tuple state is torchdiffeq's: the largest RMS over the components. With one component
    1000 times larger, the RMS of the whole vector would let the small one be solved less accurately."""
    big = (X0 * 1000.0, V0)
    flat0 = torch.cat([big[0], big[1].reshape(-1)])

    def flat_oscillator(t, y):
        dx, dv = oscillator(t, (y[:2], y[2:].reshape(2, 1)))
        return torch.cat([dx, dv.reshape(-1)])

    def rms(x):
        return x.pow(2).mean().sqrt()

    options = dict(method="dopri5", rtol=1e-6, atol=1e-9)
    xs, vs = odeint(oscillator, big, T, **options)
    mixed = odeint(flat_oscillator, flat0, T, norm=lambda y: torch.maximum(rms(y[:2]), rms(y[2:])), **options)
    plain = odeint(flat_oscillator, flat0, T, **options)
    assert torch.equal(torch.cat([xs, vs.reshape(5, 2)], dim=1), mixed)
    assert not torch.equal(mixed, plain)
    ref_x, ref_v = torchdiffeq.odeint(oscillator, big, T, **options)
    assert (xs - ref_x).abs().max() < 1e-6 * 1000 and (vs - ref_v).abs().max() < 1e-6 * 1000


def test_tuple_state_through_torchdiffeq_backend_and_adjoint():
    class Spring(nn.Module):
        def __init__(self):
            super().__init__()
            self.k = nn.Parameter(torch.tensor(1.3, dtype=F64))

        def forward(self, t, state):
            x, v = state
            return v.reshape(2), (-self.k * x).reshape(2, 1)

    spring = Spring()
    xs, vs = odeint(spring, (X0, V0), T, method="dopri5", backend="torchdiffeq")
    assert xs.shape == (5, 2) and vs.shape == (5, 2, 1)
    grads = []
    for solve in (lambda: odeint(spring, (X0, V0), T, method="dopri5", adjoint=True),
                  lambda: torchdiffeq.odeint_adjoint(spring, (X0, V0), T, method="dopri5")):
        xs, vs = solve()
        grads.append(torch.autograd.grad(xs.sum() + vs.sum(), spring.k)[0])
    assert torch.equal(grads[0], grads[1])


def test_tuple_state_gradients_reach_every_component():
    def solve(x0, v0):
        return odeint(oscillator, (x0, v0), T[:3], method="rk4", step_size=0.1)

    assert gradcheck(solve, (X0.clone().requires_grad_(), V0.clone().requires_grad_()))


@pytest.mark.parametrize("f, match", [
    (lambda t, s: s[0], r"f\(t, y\) at t=0 must be a tuple of 2 tensors like y0, got Tensor"),
    (lambda t, s: (s[0], s[1], s[1]), r"must be a tuple of 2 tensors like y0, got tuple of length 3"),
    (lambda t, s: (s[0], s[1].reshape(2)),
     r"f\(t, y\) at t=0: component 1 must be a tensor of shape \(2, 1\) like y0\[1\], got \(2,\)"),
])
def test_tuple_state_with_a_wrong_derivative_names_the_component(f, match):
    with pytest.raises(ValueError, match=match):
        odeint(f, (X0, V0), T, method="rk4")


def test_tuple_state_validation():
    with pytest.raises(ValueError, match=r"share one dtype and device.*y0\[1\] is torch.float32"):
        odeint(oscillator, (X0, V0.float()), T)
    with pytest.raises(ValueError, match=r"y0\[1\] must be a tensor, got list"):
        odeint(oscillator, (X0, [0.0]), T)
    with pytest.raises(ValueError, match="non-empty tuple"):
        odeint(oscillator, (), T)
    with pytest.raises(ValueError, match=r"batch_rows=True needs y0 as one tensor.*got a tuple"):
        odeint(oscillator, (X0, V0), T, method="backward_euler", batch_rows=True)


# --- events ---------------------------------------------------------------------------------------------------

G = 9.81


def falling(t, state):
    height, velocity = state
    return velocity, torch.full_like(velocity, -G)


def ground(t, state):
    return state[0].sum()


@pytest.mark.parametrize("method, options, tol", [
    ("dopri5", {}, 1e-12), ("bosh3", {}, 1e-12), ("adaptive_heun", dict(rtol=1e-6), 1e-12),
    ("rk4", dict(step_size=0.1), 1e-12), ("euler", dict(step_size=1e-2), 5e-2),
    ("backward_euler", dict(step_size=1e-2), 5e-2),
])
def test_falling_ball_hits_the_ground_at_sqrt_2h_over_g(method, options, tol):
    h = torch.tensor([10.0], dtype=F64, requires_grad=True)
    t_hit, (heights, velocities) = odeint_event(falling, (h, torch.zeros(1, dtype=F64)), 0.0, ground,
                                                method=method, **options)
    exact = math.sqrt(2 * 10.0 / G)
    assert abs(t_hit.item() - exact) < tol, t_hit.item() - exact
    assert heights.shape == (2, 1) and abs(heights[-1].item()) < 1e-9
    (dt_dh,) = torch.autograd.grad(t_hit, h)  # d sqrt(2h/g)/dh = 1/sqrt(2 g h)
    assert abs(dt_dh.item() - 1.0 / math.sqrt(2 * G * 10.0)) < 10 * tol


@pytest.mark.parametrize("method, options", [
    ("dopri5", {}), ("rk4", dict(step_size=0.1)),
    ("implicit_midpoint", dict(step_size=0.1)),
])
def test_gradcheck_event_time_and_state(method, options):
    """The event time and the state there, differentiated by the implicit function theorem, w.r.t. the
    initial height, velocity and time (a drag term makes the state's dependence non-trivial)."""
    def dragged(t, state):
        height, velocity = state
        return velocity, -G - 0.1 * velocity * velocity.abs() + 0.0 * t

    def solve(h, v, t0):
        t_hit, (heights, velocities) = odeint_event(dragged, (h, v), t0, ground, method=method, **options)
        return t_hit, velocities[-1]

    inputs = (torch.tensor([10.0], dtype=F64, requires_grad=True), torch.tensor([1.5], dtype=F64, requires_grad=True),
              torch.tensor(0.3, dtype=F64, requires_grad=True))
    assert gradcheck(solve, inputs)


def test_event_matches_torchdiffeq_and_its_backend():
    y0 = (torch.tensor([10.0], dtype=F64), torch.tensor([2.0], dtype=F64))
    t0 = torch.tensor(0.0, dtype=F64)
    ref_t, ref_y = torchdiffeq.odeint_event(falling, y0, t0, event_fn=ground, rtol=1e-10, atol=1e-12)
    ours_t, ours_y = odeint_event(falling, y0, t0, ground, rtol=1e-10, atol=1e-12)
    backend_t, _ = odeint_event(falling, y0, t0, ground, backend="torchdiffeq", method="dopri5", rtol=1e-10, atol=1e-12)
    assert abs(ours_t.item() - ref_t.item()) < 1e-9 and torch.equal(backend_t, ref_t)
    assert all((a - b).abs().max() < 1e-8 for a, b in zip(ours_y, ref_y))
    via_odeint = odeint(falling, y0, torch.tensor([0.0, 1.0], dtype=F64), method="dopri5", event_fn=ground,
                        rtol=1e-10, atol=1e-12)  # torchdiffeq's odeint(event_fn=) form
    assert torch.equal(via_odeint[0], ours_t)


def test_event_backwards_in_time_several_event_functions_and_an_event_at_the_start():
    def decay(t, y):
        return -y

    # y = exp(-t) from y(0) = 1 backwards: reaches 2 at t = -ln 2 before 3 at t = -ln 3
    t_hit, ys = odeint_event(decay, torch.ones(1, dtype=F64), 0.0,
                             lambda t, y: torch.cat([y - 3.0, y - 2.0]), reverse_time=True, rtol=1e-10, atol=1e-12)
    assert abs(t_hit.item() + math.log(2.0)) < 1e-10 and abs(ys[-1].item() - 2.0) < 1e-9
    t_hit, ys = odeint_event(decay, torch.ones(1, dtype=F64), 0.5, lambda t, y: y.sum() - 1.0)
    assert t_hit.item() == 0.5 and torch.equal(ys[0], ys[1])


def test_event_errors():
    y0 = torch.ones(1, dtype=F64)
    with pytest.raises(ValueError, match=r"fixed-step method 'rk4' needs step_size"):
        odeint_event(lambda t, y: -y, y0, 0.0, lambda t, y: y.sum() - 0.5, method="rk4")
    with pytest.raises(RuntimeError, match=r"event_fn kept its sign up to t=.*where the step size has grown to .*: "
                                           r"no event ahead"):
        odeint_event(lambda t, y: torch.ones_like(y), y0, 0.0, lambda t, y: y.sum() + 1.0)
    with pytest.raises(solvers.StiffnessError, match="looks stiff"):  # a decayed solution: steps at the stability limit
        odeint_event(lambda t, y: -y, y0, 0.0, lambda t, y: y.sum() + 1.0)
    with pytest.raises(RuntimeError, match=r"max_steps=100 steps and reached only t=.*: no event yet"):
        odeint_event(lambda t, y: -y, y0, 0.0, lambda t, y: y.sum() + 1.0, max_steps=100)
    with pytest.raises(RuntimeError, match=r"no event in max_steps=50 steps of 0.1"):
        odeint_event(lambda t, y: -y, y0, 0.0, lambda t, y: y.sum() + 1.0, method="rk4", step_size=0.1, max_steps=50)
    with pytest.raises(ValueError, match=r"event_fn\(t, y\) must return a tensor.*got float"):
        odeint_event(lambda t, y: -y, y0, 0.0, lambda t, y: 1.0)
    with pytest.raises(ValueError, match=r"odeint with event_fn needs t with 2 entries"):
        odeint(lambda t, y: -y, y0, [0.0, 1.0, 2.0], method="dopri5", event_fn=lambda t, y: y.sum())


# --- adjoint --------------------------------------------------------------------------------------------------

class Forced(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.5, -1.0], dtype=F64))

    def forward(self, t, y):
        return torch.sin(3.0 * t) * self.w * y - y ** 3


@pytest.mark.parametrize("times", [(0.1, 0.4, 0.9), (0.9, 0.4, 0.1)])
def test_adjoint_time_and_parameter_gradients_are_torchdiffeqs(times):
    """Our adjoint=True is torchdiffeq's odeint_adjoint: the same t- and parameter gradients, to the bit. (They
    differ from the gradients of the forward solve by the adjoint ODE's own discretisation error.)"""
    f = Forced()
    y0 = torch.tensor([0.7, -0.3], dtype=F64)
    grads = []
    for solve in (lambda t: odeint(f, y0, t, method="dopri5", adjoint=True, rtol=1e-10, atol=1e-10),
                  lambda t: torchdiffeq.odeint_adjoint(f, y0, t, method="dopri5", rtol=1e-10, atol=1e-10),
                  lambda t: odeint(f, y0, t, method="dopri5", rtol=1e-10, atol=1e-10)):
        t = torch.tensor(times, dtype=F64, requires_grad=True)
        grads.append(torch.autograd.grad(solve(t).pow(2).sum(), (t, f.w)))
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1]))
    assert all((a - b).abs().max() < 1e-7 for a, b in zip(grads[0], grads[2]))


def test_gradcheck_adjoint_with_respect_to_the_output_times():
    f = Forced()
    y0 = torch.tensor([0.7, -0.3], dtype=F64)
    t = torch.tensor((0.1, 0.4, 0.9), dtype=F64, requires_grad=True)
    assert gradcheck(lambda t: odeint(f, y0, t, method="dopri5", adjoint=True, rtol=1e-10, atol=1e-10), (t,))


def test_adjoint_params_options_and_method_are_passed_to_torchdiffeq():
    w = torch.tensor([0.5, -1.0], dtype=F64, requires_grad=True)
    y0 = torch.tensor([0.7, -0.3], dtype=F64)
    t = torch.tensor((0.0, 0.5), dtype=F64)
    f = Forced()
    with torch.no_grad():
        f.w.copy_(w)
    closure = lambda t, y: torch.sin(3.0 * t) * w * y - y ** 3  # noqa: E731 (no module: adjoint_params names w)
    ys = odeint(closure, y0, t, method="dopri5", adjoint=True, adjoint_params=(w,), rtol=1e-10, atol=1e-10,
                adjoint_options=dict(norm="seminorm"), adjoint_method="bosh3", adjoint_rtol=1e-9, adjoint_atol=1e-9)
    (ours,) = torch.autograd.grad(ys.sum(), w)
    ref = torchdiffeq.odeint_adjoint(f, y0, t, method="dopri5", rtol=1e-10, atol=1e-10,
                                     adjoint_options=dict(norm="seminorm"), adjoint_method="bosh3",
                                     adjoint_rtol=1e-9, adjoint_atol=1e-9)
    (theirs,) = torch.autograd.grad(ref.sum(), f.w)
    assert torch.equal(ours, theirs)


# --- step callbacks -------------------------------------------------------------------------------------------

class Recorder:
    """y' = -50 (y - cos t) with torchdiffeq's three step callbacks, recording what they see."""

    def __init__(self):
        self.calls = []

    def __call__(self, t, y):
        return -50.0 * (y - torch.cos(t))

    def callback_step(self, t0, y0, dt):
        self.calls.append(("step", float(t0), float(dt), tuple(y0.shape)))

    def callback_accept_step(self, t0, y0, dt):
        self.calls.append(("accept", float(t0), float(dt), tuple(y0.shape)))

    def callback_reject_step(self, t0, y0, dt):
        self.calls.append(("reject", float(t0), float(dt), tuple(y0.shape)))


def kinds(calls):
    return [c[0] for c in calls]


def test_adaptive_solve_calls_every_callback_like_torchdiffeq():
    f = Recorder()
    _, stats = odeint(f, torch.zeros(1, dtype=F64), T, method="bosh3", first_step=1.0, return_stats=True)
    assert kinds(f.calls).count("step") == stats.n_steps
    assert kinds(f.calls).count("accept") == stats.n_accepted and kinds(f.calls).count("reject") == stats.n_rejected > 0
    steps = [c for c in f.calls if c[0] == "step"]
    assert steps[0][1:3] == (0.0, 0.5)  # first_step 1.0, clipped to land on t[1] = 0.5
    reference = Recorder()
    torchdiffeq.odeint(reference, torch.zeros(1, dtype=F64), T, method="bosh3", options=dict(first_step=1.0))
    assert {"step", "accept", "reject"} == set(kinds(reference.calls)) == set(kinds(f.calls))


def test_fixed_solve_calls_step_and_accept_around_every_step_and_tuple_states_see_tuples():
    seen = []

    class TupleRecorder:
        def __call__(self, t, s):
            return oscillator(t, s)

        def callback_step(self, t0, y0, dt):
            seen.append((float(t0), float(dt), tuple(tuple(c.shape) for c in y0)))

    odeint(TupleRecorder(), (X0, V0), T[:3], method="rk4", step_size=0.25)
    assert seen == [(0.0, 0.25, ((2,), (2, 1))), (0.25, 0.25, ((2,), (2, 1))), (0.5, 0.25, ((2,), (2, 1))),
                    (0.75, 0.25, ((2,), (2, 1)))]
    f = Recorder()
    odeint(f, torch.zeros(1, dtype=F64), T[:2], method="rk4", step_size=0.25)
    assert kinds(f.calls) == ["step", "accept"] * 2


def test_torchdiffeq_backend_calls_the_callbacks_it_supports_and_refuses_the_others():
    f = Recorder()
    odeint(f, torch.zeros(1, dtype=F64), T, method="dopri5", backend="torchdiffeq")
    assert {"step", "accept"} <= set(kinds(f.calls))
    with pytest.raises(ValueError, match=r"f defines \['callback_accept_step', 'callback_reject_step'\], which "
                                         r"torchdiffeq's 'euler' never calls"):
        odeint(Recorder(), torch.zeros(1, dtype=F64), T, method="euler", backend="torchdiffeq")


def test_torchdiffeq_option_names_are_accepted():
    y0 = torch.ones(2, dtype=F64)
    ours = odeint(lambda t, y: -y, y0, T, method="dopri5", options=dict(ifactor=5.0, dfactor=0.3, max_num_steps=500))
    same = odeint(lambda t, y: -y, y0, T, method="dopri5", max_factor=5.0, min_factor=0.3, max_steps=500)
    assert torch.equal(ours, same)
    norm = odeint(lambda t, y: -y, y0, T, method="dopri5", options=dict(norm=lambda y: y.abs().max()))
    assert (norm[-1] - math.exp(-2.0)).abs().max() < 1e-7
    jumped = odeint(lambda t, y: -y, y0, T, method="dopri5", options=dict(jump_t=torch.tensor([0.3], dtype=F64)))
    assert (jumped - odeint(lambda t, y: -y, y0, T, method="dopri5", jumps=[0.3])).abs().max() == 0
    stepped = odeint(lambda t, y: -y, y0, T, method="rk4", options=dict(step_size=0.1))
    assert torch.equal(stepped, odeint(lambda t, y: -y, y0, T, method="rk4", step_size=0.1))
    assert solvers.available("adaptive")  # the names above map onto our adaptive methods' controller


def test_adjoint_callbacks_are_forwarded_to_torchdiffeqs_backward_pass():
    calls = []

    class WithAdjointCallback(Forced):
        def callback_step_adjoint(self, t0, y0, dt):
            calls.append(float(t0))

    f = WithAdjointCallback()
    ys = odeint(f, torch.tensor([0.7, -0.3], dtype=F64), T[:2], method="dopri5", adjoint=True)
    assert calls == []
    ys.sum().backward()
    assert len(calls) > 0 and f.w.grad is not None


@pytest.mark.parametrize("method", ["rk4", "dopri5", "bosh3", "implicit_midpoint"])
def test_tuple_states_with_0d_leaves(method):
    """A tuple state whose leaves include a 0-d tensor, under every kind of method, as torchdiffeq takes it."""

    y0 = (torch.tensor(1.0, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    f = lambda t, y: (-y[0], -2.0 * y[1])  # noqa: E731
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    step = {"step_size": 0.01} if method in ("rk4", "implicit_midpoint") else {}
    ours = solvers.odeint(f, y0, t, method=method, rtol=1e-10, atol=1e-12, **step)
    exact = (torch.exp(-t), torch.exp(-2.0 * t)[:, None] * y0[1])
    assert [o.shape for o in ours] == [(3,), (3, 2)]
    for o, e in zip(ours, exact):
        assert torch.allclose(o, e, atol=1e-4 if method == "implicit_midpoint" else 1e-7)
    reference = torchdiffeq.odeint(f, y0, t, method="dopri5", rtol=1e-10, atol=1e-12)
    assert [r.shape for r in reference] == [o.shape for o in ours]


def test_a_callback_the_method_never_calls_is_warned_about_as_torchdiffeq_does():
    class F(nn.Module):
        def forward(self, t, y):
            return -y

        def callback_reject_step(self, t0, y0, dt):
            pass

    y0, t = torch.ones(2, dtype=torch.float64), torch.linspace(0, 1, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"Solver 'rk4' does not support callbacks \{'callback_reject_step'\}"):
        odeint(F(), y0, t, method="rk4", step_size=0.1)
    with pytest.warns(UserWarning, match=r"Solver 'rk4' does not support callbacks \{'callback_reject_step'\}"):
        torchdiffeq.odeint(F(), y0, t, method="rk4", options={"step_size": 0.1})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        odeint(F(), y0, t, method="dopri5")  # adaptive solves do call it


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
@pytest.mark.parametrize("bounds", [dict(min_step=0.25), dict(max_step=0.01), dict(min_step=0.05, max_step=0.1)])
def test_min_step_and_max_step_as_torchdiffeq(method, bounds):
    """torchdiffeq's step bounds: every step within [min_step, max_step], a step at min_step accepted whatever
    its error (here far above rtol = 1e-12): the same values as torchdiffeq's, and the bounds hold."""
    f = lambda t, y: torch.stack([y[1], -torch.sin(y[0])])  # noqa: E731 (a pendulum)
    y0, t = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.linspace(0, 2, 3, dtype=torch.float64)
    steps = []
    f.callback_accept_step = lambda t0, y, dt: steps.append(abs(float(dt)))
    ours = odeint(f, y0, t, method=method, rtol=1e-12, atol=1e-12, options=bounds)
    del f.callback_accept_step
    theirs = torchdiffeq.odeint(f, y0, t, method=method, rtol=1e-12, atol=1e-12, options=bounds)
    landing = 1e-12  # the last step of an interval may be shorter, to land on the output time
    assert min(steps[:-1]) >= bounds.get("min_step", 0.0) - landing and max(steps) <= bounds.get("max_step", 9) + landing
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6)  # the controllers differ in detail below the bounds
    with pytest.raises(ValueError, match="need 0 <= min_step <= max_step"):
        odeint(f, y0, t, method=method, options=dict(min_step=0.2, max_step=0.1))


# torchdiffeq's fixed-grid solvers under the same names: our rk38 is its rk4 (the 3/8 rule)
FIXED_PAIRS = [("euler", "euler"), ("midpoint", "midpoint"), ("rk38", "rk4")]


@pytest.mark.parametrize("ours, theirs", FIXED_PAIRS)
def test_perturb_evaluates_each_step_from_its_own_side_as_torchdiffeq(ours, theirs):
    """f jumps at every grid point (a held sample, floor(10 t)): with perturb=True every step sees its own
    sample at both ends, as in torchdiffeq (equal to rounding); without it the end stage sees the next one."""
    f = lambda t, y: torch.sin(torch.floor(10.0 * t)) - 0.3 * y  # noqa: E731
    y0 = torch.tensor([0.4, -0.2], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    ys = odeint(f, y0, t, method=ours, perturb=True)
    reference = torchdiffeq.odeint(f, y0, t, method=theirs, options=dict(perturb=True))
    assert torch.allclose(ys, reference, rtol=0, atol=1e-13)
    if ours == "rk38":  # euler and midpoint have no stage at a step's end
        assert not torch.allclose(odeint(f, y0, t, method=ours), reference, atol=1e-6)


@pytest.mark.parametrize("ours, theirs", FIXED_PAIRS)
def test_grid_constructor_steps_on_its_grid_and_interpolates_as_torchdiffeq(ours, theirs):
    """A non-uniform grid that misses most output times, forwards and backwards in time: values and
    gradients equal torchdiffeq's (linear interpolation inside a grid step)."""
    def grid(f, y0, t):
        s = torch.linspace(0.0, 1.0, 8, dtype=t.dtype) ** 1.5
        return t[0] + (t[-1] - t[0]) * s

    for t in (torch.tensor([0.0, 0.1, 0.35, 0.6, 1.0, 1.3], dtype=torch.float64),
              torch.tensor([1.3, 0.9, 0.2, 0.0], dtype=torch.float64)):
        w = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        f = lambda t, y: torch.tanh(w * y) + torch.cos(t)  # noqa: E731
        y0 = torch.tensor([0.5, -1.0], dtype=torch.float64)
        ys, stats = odeint(f, y0, t, method=ours, grid_constructor=grid, return_stats=True)
        reference = torchdiffeq.odeint(f, y0, t, method=theirs, options=dict(grid_constructor=grid))
        assert torch.allclose(ys, reference, rtol=0, atol=1e-13) and stats.n_steps == 7
        assert torch.allclose(torch.autograd.grad(ys.sum(), w)[0], torch.autograd.grad(reference.sum(), w)[0],
                              atol=1e-12)
