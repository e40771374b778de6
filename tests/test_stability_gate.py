"""The pre-training stability gate the experiments run (``--stability-check warn|raise|off``)."""
import numpy as np
import pytest
import torch

from experiments.stability_gate import find_odernn, pre_training_check
from odernn import SequenceClassifier, build_rnn
from odernn.stability import StabilityWarning, UnstableDiscretisationError


def _classifier(solver: str) -> SequenceClassifier:
    torch.manual_seed(0)
    return SequenceClassifier(build_rnn("antisymmetric", 1, 16, solver=solver, step_size=0.5, gamma=0.0), 10)


def test_euler_without_diffusion_warns_or_raises_and_rk4_passes():
    x = torch.randn(4, 12, 1)
    with pytest.warns(StabilityWarning):
        report = pre_training_check(_classifier("euler"), x, "warn")
    assert not report.stable and report.fraction_outside > 0.5
    with pytest.raises(UnstableDiscretisationError):
        pre_training_check(_classifier("euler"), x, "raise")
    assert pre_training_check(_classifier("rk4"), x, "raise").stable  # |z| <= 0.5 |lambda| well inside 2.83
    assert pre_training_check(_classifier("euler"), x, "off") is None


def test_models_without_an_odernn_are_skipped_and_bad_actions_rejected():
    lstm = SequenceClassifier(build_rnn("lstm", 1, 8), 10)
    assert find_odernn(lstm) is None and pre_training_check(lstm, torch.randn(2, 5, 1), "raise") is None
    with pytest.raises(ValueError, match="unknown stability check action 'loud'; known: warn, raise, off"):
        pre_training_check(lstm, torch.randn(2, 5, 1), "loud")


def test_the_check_of_a_long_afrnn_run_solves_a_bounded_number_of_eigenvalue_problems(monkeypatch, capsys):
    """AFRNN-MNIST's check (784 steps, 2 layers of 128, partitioned Euler) held one eigenvalue problem of size
    256 per step for J and one for partitioned Euler's one-step matrix: 1,568, 13 minutes on 2 cores. Now at
    most 64 evenly spaced steps of as many sequences as 64 problems of size 256 allow: one sequence here."""
    problems = []

    def counting(matrices):  # counts the problems; the numbers do not matter here
        problems.append(matrices.reshape(-1, *matrices.shape[-2:]).shape[0])
        return torch.zeros(matrices.shape[:-1], dtype=torch.complex128)

    monkeypatch.setattr(torch.linalg, "eigvals", counting)
    torch.manual_seed(0)
    model = SequenceClassifier(build_rnn("afrnn", 1, 128, solver="partitioned_euler", step_size=0.01,
                                         gamma=0.001), 10)
    report = pre_training_check(model, torch.rand(8, 784, 1), "warn")
    assert sum(problems) == 2 * 64
    assert report.n_states == 64 and report.steps_total == 784 and report.z.shape == (1, 64, 256)
    assert "(64 evenly spaced of the 784 steps of each sequence)" in capsys.readouterr().out


def test_short_sequences_are_checked_at_every_step_and_steps_are_spread_evenly():
    from odernn.stability import evenly_spaced_steps

    steps = evenly_spaced_steps(784, 64)
    assert len(steps) == 64 and steps[0] == 0 and steps[-1] == 783 and np.all(np.diff(steps) >= 12)
    assert evenly_spaced_steps(12, 64).tolist() == list(range(12))
    report = pre_training_check(_classifier("rk4"), torch.randn(4, 12, 1), "warn", steps=64)
    assert report.n_states == 48 and report.steps_total is None
    few = pre_training_check(_classifier("rk4"), torch.randn(4, 12, 1), "warn", steps=3)
    assert few.n_states == 12 and few.steps_total == 12 and few.worst_step in (0, 6, 11)
