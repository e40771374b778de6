"""Integrator objects: resolution, jumps owned by the solver, implicit methods on every field, large steps."""
from __future__ import annotations

import math

import pytest
import torch

import solvers
from odernn import (ODERNN, AFRNNField, AntisymmetricField, FRNNField, GatedAntisymmetricField,
                    StackedAntisymmetricField, UnstructuredField)
from odernn.integrators import AdaptiveSolve, FusedGaussSeidelScan, FusedImplicitScan, FusedRKScan, SteppedScan

pytestmark = pytest.mark.usefixtures("float64")

FIELDS = {
    "antisymmetric": lambda: AntisymmetricField(2, 3, gamma=0.1),
    "gated": lambda: GatedAntisymmetricField(2, 3, gamma=0.1),
    "ablation": lambda: UnstructuredField(2, 3, gated=True),
    "afrnn": lambda: AFRNNField(2, [2, 1], gamma=0.1),
    "afrnn-dense": lambda: AFRNNField(2, [1, 1, 1], gamma=0.1, coupling="dense"),
    "arnn2": lambda: StackedAntisymmetricField(2, [2, 1], gamma=0.1),
    "frnn": lambda: FRNNField(2, [1, 2], gamma=0.1),
}


def step_input(t, y):
    """y' = u(t) with u = 1 on [0, 0.35], -2 after: exact y(1) = y0 + 0.35 - 1.3."""
    return torch.where(t <= 0.35, 1.0, -2.0) * torch.ones_like(y)


@pytest.mark.parametrize("method", ["rk4", "midpoint", "dopri5", "bosh3", "implicit_midpoint"])
def test_a_declared_jump_is_never_straddled(method):
    y0, t = torch.zeros(2), torch.tensor([0.0, 1.0])
    options = dict(step_size=0.1, rtol=1e-9, atol=1e-12)
    exact = 0.35 - 2.0 * 0.65
    with_jump = solvers.odeint(step_input, y0, t, method=method, jumps=[0.35], **options)[-1]
    assert torch.allclose(with_jump, torch.full((2,), exact), atol=1e-12, rtol=0), with_jump
    if solvers.get_method(method).kind != "adaptive":  # a fixed grid without the jump smears it
        without = solvers.odeint(step_input, y0, t, method=method, **options)[-1]
        assert float((without - exact).abs().max()) > 1e-3


def test_a_stage_at_a_jump_sees_the_side_of_its_step():
    """u jumps at 0.5 from 1 to 3, t <= 0.5 belongs to the left piece: an Euler step starting at the jump must
    see 3, the end stage of heun's step that ends there must see 1."""
    seen = []

    def f(t, y):
        seen.append(float(t))
        return torch.where(t <= 0.5, 1.0, 3.0) * torch.ones_like(y)

    y = solvers.odeint(f, torch.zeros(1), torch.tensor([0.0, 1.0]), method="heun", step_size=0.5, jumps=[0.5])
    assert torch.allclose(y[-1], torch.tensor([0.5 + 1.5]), atol=1e-14)
    assert min(seen) == 0.0 and max(seen) == 1.0
    assert any(0.5 < s < 0.5 + 1e-15 for s in seen) and any(0.5 - 1e-15 < s <= 0.5 for s in seen)


def test_jumps_outside_the_span_are_ignored_and_bad_jumps_refused():
    y0, t = torch.zeros(1), torch.tensor([0.0, 1.0])
    a = solvers.odeint(step_input, y0, t, method="rk4", step_size=0.25, jumps=[-1.0, 2.0])
    assert torch.equal(a, solvers.odeint(step_input, y0, t, method="rk4", step_size=0.25))
    with pytest.raises(ValueError, match="jumps contains NaN"):
        solvers.odeint(step_input, y0, t, jumps=[math.nan])


@pytest.mark.parametrize("solver,interpolation,kind", [
    ("euler", "hold", FusedRKScan), ("rk4", "linear", SteppedScan), ("euler", "linear", FusedRKScan),
    ("implicit_midpoint", "hold", FusedImplicitScan), ("implicit_midpoint", "linear", SteppedScan),
    ("dopri5", "hold", AdaptiveSolve),
])
def test_the_integrator_is_resolved_once_from_method_field_and_settings(solver, interpolation, kind):
    model = ODERNN(AntisymmetricField(2, 3), solver, interpolation=interpolation)
    assert type(model.integrator) is kind
    model.fast_path = False
    assert type(model.integrator) is (SteppedScan if kind in (FusedRKScan, FusedImplicitScan) else kind)


def test_partitioned_euler_on_a_layered_field_takes_the_fused_gauss_seidel_scan():
    model = ODERNN(AFRNNField(2, [2, 3]), "partitioned_euler")
    assert type(model.integrator) is FusedGaussSeidelScan
    model.substeps = 3  # settings changes re-resolve and keep their validation
    assert model.substeps == 3 and type(model.integrator) is FusedGaussSeidelScan
    with pytest.raises(ValueError, match="substeps must be an integer >= 1"):
        model.substeps = 0
    assert model.substeps == 3


def test_a_field_without_a_tanh_form_runs_every_method_through_the_generic_integrators():
    class Damped(AntisymmetricField):
        def tanh_form(self):
            return None

    field = Damped(2, 3, gamma=0.5)
    x = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0))
    reference = ODERNN(field, "dopri5", step_size=0.2, rtol=1e-12, atol=1e-12)(x)[0]
    for name in ("rk4", "implicit_midpoint", "gauss_legendre4"):
        model = ODERNN(field, name, step_size=0.2, substeps=4)
        assert type(model.integrator) is SteppedScan
        assert float((model(x)[0] - reference).detach().abs().max()) < 1e-4, name


@pytest.mark.parametrize("name", list(FIELDS))
def test_implicit_midpoint_odernn_gradcheck_on_every_field(name):
    """Gradients of the states w.r.t. x, h0 and every parameter (implicit function theorem per step)."""
    torch.manual_seed(1)
    field = FIELDS[name]()
    model = ODERNN(field, "implicit_midpoint", step_size=0.5)
    names = [n for n, _ in model.named_parameters()]
    x = torch.randn(2, 3, 2, requires_grad=True)
    h0 = torch.randn(2, field.state_size, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def states(x, h0, *weights):
        return torch.func.functional_call(model, dict(zip(names, weights)), (x, h0))[0]

    assert torch.autograd.gradcheck(states, (x, h0, *weights))


@pytest.mark.parametrize("name", ["antisymmetric", "afrnn", "gated"])
@pytest.mark.parametrize("solver", ["backward_euler", "trapezoidal", "gauss_legendre4"])
def test_implicit_methods_converge_to_the_adaptive_solution_on_every_field(name, solver):
    torch.manual_seed(2)
    field = FIELDS[name]()
    x = torch.randn(2, 3, 2)
    reference = ODERNN(field, "dopri5", step_size=0.4, rtol=1e-12, atol=1e-13)(x)[0]
    order = solvers.get_tableau(solver).order
    errors = []
    for substeps in (4, 8):
        model = ODERNN(field, solver, step_size=0.4, substeps=substeps)
        errors.append(float((model(x)[0] - reference).detach().abs().max()))
        assert model.last_stats.stage_iterations >= model.last_stats.n_steps > 0
    assert math.log2(errors[0] / errors[1]) > order - 0.3, errors


def test_large_steps_rk4_diverges_and_implicit_midpoint_stays_bounded():
    """gamma 0, sigma_w 4, eps 3: eps * lambda lies far outside rk4's region on the imaginary axis
    (|Im z| up to ~ 3 * 8 > 2.83), while implicit midpoint's region is the closed left half-plane."""
    torch.manual_seed(0)
    field = AntisymmetricField(1, 16, gamma=0.0, sigma_w=4.0)
    x = torch.zeros(4, 60, 1)
    h0 = 0.01 * torch.randn(4, 16)
    lam = torch.linalg.eigvals(field.coupling_matrix().detach()).abs().max()
    assert 3.0 * float(lam) > solvers.imaginary_axis_limit("rk4")
    start = h0.norm(dim=-1)
    rk4 = ODERNN(field, "rk4", step_size=3.0, check_finite=False)(x, h0)[0].detach().norm(dim=-1)
    assert bool((rk4[:, -1] > 100 * start).all())  # amplified until tanh saturates, then still growing
    assert bool((rk4[:, -1] > rk4[:, 10]).all())
    midpoint = ODERNN(field, "implicit_midpoint", step_size=3.0)(x, h0)[0].detach().norm(dim=-1)
    assert torch.allclose(midpoint, start.unsqueeze(-1).expand_as(midpoint), rtol=0.01, atol=0)


def test_implicit_midpoint_preserves_the_norm_of_a_linear_antisymmetric_recurrence():
    """Near the origin tanh is the identity: W0 with no input and gamma 0 keeps ||h|| to rounding."""
    torch.manual_seed(3)
    field = AntisymmetricField(1, 6, gamma=0.0, sigma_w=1.0)
    h0 = 1e-6 * torch.randn(3, 6)
    states = ODERNN(field, "implicit_midpoint", step_size=1.0)(torch.zeros(3, 50, 1), h0)[0]
    ratio = states.norm(dim=-1) / h0.norm(dim=-1, keepdim=True)
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-10)


def test_newton_failure_names_the_step_and_the_time():
    field = AntisymmetricField(1, 4, gamma=0.0, sigma_w=4.0)
    model = ODERNN(field, "backward_euler", step_size=50.0, newton=solvers.NewtonOptions(max_iters=1))
    with pytest.raises(solvers.NewtonError, match=r"step 1 of 3: .*t=0"):
        model(torch.ones(1, 3, 1), torch.ones(1, 4))
