"""The pre-training stability gate the experiments run (``--stability-check warn|raise|off``)."""
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
