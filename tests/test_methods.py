"""Methods as objects (solvers.methods): each class owns its stepper, options, properties and one-step
amplification; nothing outside the method classes compares kind strings; reversible Heun's stability verdict
comes from its own one-step map."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import solvers
from odernn import build_rnn
from odernn.stability import check_stability

ROOT = Path(__file__).resolve().parents[1]
KIND_TEST = re.compile(r"""((?<!\bp)\.kind\s*(==|!=|\bin\b|\bnot in\b))|(\bkind\s*(==|!=)\s*["'](fixed|adaptive|implicit|"""
                       r"""partitioned|reversible)["'])|(["'](fixed|adaptive|implicit|partitioned|reversible)["']\s*"""
                       r"""(==|!=)\s*\w*\.?kind\b)""")


def test_no_kind_string_is_compared_outside_the_method_classes():
    """A method's behaviour lives in its class: the library asks for capabilities (adaptive, implicit,
    partitioned, reversible, explicit_tableau, options), never compares kind labels."""
    offenders = []
    for package in ("solvers", "odernn", "experiments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.parent.name == "methods":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if KIND_TEST.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_pattern_catches_what_it_is_for():
    for line in ('if method.kind == "adaptive":', "x = m.kind in ('fixed',)", 'if kind != "implicit":',
                 'ok = "partitioned" == spec.kind'):
        assert KIND_TEST.search(line), line
    for line in ('label = method.kind', 'if p.kind == p.VAR_KEYWORD:', 'if kind == "lstm":'):
        assert not KIND_TEST.search(line), line


@pytest.mark.parametrize("name,cls", [("rk4", solvers.ExplicitRK), ("dopri5", solvers.EmbeddedRK),
                                      ("gauss_legendre4", solvers.ImplicitRK),
                                      ("partitioned_euler", solvers.PartitionedEuler),
                                      ("reversible_heun", solvers.ReversibleHeun)])
def test_registry_gives_one_object_per_kind(name, cls):
    method = solvers.get_method(name)
    assert type(method) is cls and name in solvers.available(cls.kind)
    assert (method.explicit_tableau is not None) == (cls is solvers.ExplicitRK)
    assert method.adaptive == (cls is solvers.EmbeddedRK) and method.implicit == (cls is solvers.ImplicitRK)
    assert method.partitioned == method.needs_jacobian == (cls is solvers.PartitionedEuler)
    assert method.reversible == (cls is solvers.ReversibleHeun)


def test_select_keeps_a_methods_own_options_and_check_names_the_others():
    options = dict(partition=(1, 1), newton=solvers.NewtonOptions(), batch_rows=True)
    assert solvers.get_method("rk4").select(**options) == {}
    assert solvers.get_method("partitioned_euler").select(**options) == {"partition": (1, 1)}
    assert set(solvers.get_method("implicit_midpoint").select(**options)) == {"newton", "batch_rows"}
    with pytest.raises(ValueError, match=r"newton is only used by methods 'backward_euler', .*not by 'rk4'"):
        solvers.get_method("rk4").stepper(newton=solvers.NewtonOptions())

    class Looped(solvers.Method):  # a method with a loop of its own and no fixed step
        kind = "looped"

    with pytest.raises(ValueError, match="'looped' is looped: it has its own loop, not a fixed step"):
        Looped("looped", 1).stepper()


def test_properties_from_the_tableau():
    assert solvers.get_method("gauss_legendre4").properties == ("A-stable", "symplectic")
    assert solvers.get_method("implicit_midpoint").properties == ("A-stable", "symplectic")
    assert solvers.get_method("backward_euler").properties == ("A-stable",)
    assert solvers.get_method("reversible_heun").properties == ("reversible",)
    assert solvers.get_method("rk4").properties == ()


def test_reversible_heun_amplification_is_its_one_step_matrix():
    """On y' = lambda y the step maps the pair (y, z) by a 2 x 2 matrix; the method's amplification is the
    largest modulus of its eigenvalues, z +- sqrt(z^2 + 1), measured here from the solver's own step."""
    method = solvers.get_method("reversible_heun")
    for z in (0.5j, 0.99j, 1.2j, -0.1 + 0.5j, 0.3, -2.0 + 1.0j):
        lam = torch.tensor(z, dtype=torch.complex128)
        f = lambda t, y: lam * y  # noqa: E731
        columns = []
        for y, w in ((1.0, 0.0), (0.0, 1.0)):
            y1, w1, _ = solvers.reversible_heun_step(
                f, 0.0, torch.tensor([y], dtype=torch.complex128), torch.tensor([w], dtype=torch.complex128), 1.0)
            columns.append(torch.cat([y1, w1]))
        M = torch.stack(columns, dim=1).numpy()
        measured = np.abs(np.linalg.eigvals(M)).max()
        assert method.amplification(np.array([z]))[0] == pytest.approx(measured, rel=1e-12)
    inside = method.outside(np.array([0.0, 0.5j, 1.0j, 1.01j, -0.01 + 0.5j]))
    assert inside.tolist() == [False, False, False, True, True]  # only the segment [-i, i] is stable


def test_reversible_heun_gets_its_own_verdict_on_a_damped_field():
    """gamma = 1 damps every mode: reversible Heun is outside (one growth factor exceeds 1 off the imaginary
    axis), where partitioned Euler's criterion, formerly applied to it, reported it stable."""
    torch.manual_seed(0)
    rnn = build_rnn("antisymmetric", 1, 8, solver="reversible_heun", step_size=0.5, gamma=1.0)
    report = check_stability(rnn, torch.randn(2, 10, 1))
    assert not report.stable and report.fraction_outside > 0.5 and report.kind == "reversible"
    assert "z +- sqrt(z^2 + 1)" in report.criterion and report.mu is None
    z = report.z.ravel()
    assert report.max_amplification == pytest.approx(float(np.abs(
        np.stack([z + np.sqrt(z * z + 1), z - np.sqrt(z * z + 1)])).max()))


def test_build_rnn_accepts_every_odernn_setting():
    """The keywords build_rnn passes to ODERNN are derived from ODERNN's signature: max_steps and newton
    included."""
    rnn = build_rnn("antisymmetric", 1, 4, solver="implicit_midpoint", max_steps=10,
                    newton=solvers.NewtonOptions(tol=1e-8, simplified=True))
    assert rnn.max_steps == 10 and rnn.newton == solvers.NewtonOptions(tol=1e-8, simplified=True)
    with pytest.raises(ValueError, match="unknown option"):
        build_rnn("antisymmetric", 1, 4, max_step=10)


def test_solver_defaults_are_declared_once():
    """Every entry point of solvers takes its tolerances from solvers.controller; the CLI takes the model
    solves' pair from ODERNN's settings."""
    import argparse
    import inspect

    from experiments.cli_options import SolverOptions
    from odernn.integrators import Settings
    from solvers.controller import DEFAULT_ATOL, DEFAULT_MAX_STEPS, DEFAULT_RTOL, StepController
    from solvers.demo import add_arguments

    for entry in (solvers.odeint, solvers.odeint_event):
        parameters = inspect.signature(entry).parameters
        assert (parameters["rtol"].default, parameters["atol"].default) == (DEFAULT_RTOL, DEFAULT_ATOL)
    assert (StepController().rtol, StepController().atol, StepController().max_steps) == \
        (DEFAULT_RTOL, DEFAULT_ATOL, DEFAULT_MAX_STEPS)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    demo = parser.parse_args([])
    assert (demo.rtol, demo.atol) == (DEFAULT_RTOL, DEFAULT_ATOL)
    cli, model = SolverOptions(), Settings(step_size=0.1)
    assert (cli.rtol, cli.atol, cli.max_steps) == (model.rtol, model.atol, model.max_steps)
