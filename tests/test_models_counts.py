"""build_rnn, heads, baselines and the parameter counts of both papers' tables (docs/design.md section 5)."""
from __future__ import annotations

import pytest
import torch

from odernn import (MODEL_NAMES, ODERNN, GRUBaseline, LSTMBaseline, SequenceClassifier, TrajectoryRegressor,
                    build_rnn, count_parameters)

COUNTS = [  # (name, input m, hidden, outputs, head, extra, expected)
    ("antisymmetric", 1, 128, 10, SequenceClassifier, {}, 9_674),  # AntisymmetricRNN Table 1, "10k"
    ("gated", 1, 128, 10, SequenceClassifier, {}, 9_930),
    ("antisymmetric", 3, 256, 10, SequenceClassifier, {}, 36_234),  # Table 2, "36k" / "37k"
    ("gated", 3, 256, 10, SequenceClassifier, {}, 37_258),
    ("afrnn", 1, 128, 10, SequenceClassifier, {}, 50_826),  # AFRNN Table 1 (MNIST)
    ("arnn2", 1, 128, 10, SequenceClassifier, {}, 50_826),
    ("frnn", 1, 128, 10, SequenceClassifier, {}, 67_210),
    ("arnn", 1, 128, 10, SequenceClassifier, {}, 17_930),
    ("afrnn", 3, 128, 10, SequenceClassifier, {}, 51_082),  # AFRNN Table 2 (CIFAR-10)
    ("arnn2", 3, 128, 10, SequenceClassifier, {}, 51_082),
    ("frnn", 3, 128, 10, SequenceClassifier, {}, 67_466),
    ("arnn", 3, 128, 10, SequenceClassifier, {}, 18_186),
    ("lstm", 3, 128, 10, SequenceClassifier, {}, 69_386),
    ("afrnn", 4, 100, 4, TrajectoryRegressor, {}, 31_004),  # double pendulum (AFRNN Section 5.3)
    ("frnn", 4, 100, 4, TrajectoryRegressor, {}, 41_004),
    ("lstm", 4, 100, 4, TrajectoryRegressor, {"num_layers": 2}, 123_604),
]


@pytest.mark.parametrize("name,m,hidden,out,head,extra,expected", COUNTS)
def test_parameter_counts(name, m, hidden, out, head, extra, expected):
    assert count_parameters(head(build_rnn(name, m, hidden, **extra), out)) == expected


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_name_builds_and_runs_with_both_heads(name):
    torch.manual_seed(0)
    rnn = build_rnn(name, 2, 5, step_size=0.1, gamma=0.05)
    x = torch.randn(3, 7, 2)
    outputs, h_n = rnn(x)
    width = rnn.readout_slice.stop - rnn.readout_slice.start
    assert width == 5 and outputs.shape[:2] == (3, 7) and torch.equal(h_n, outputs[:, -1])
    assert SequenceClassifier(rnn, 4)(x).shape == (3, 4)
    assert TrajectoryRegressor(rnn, 6)(x).shape == (3, 7, 6)


def test_readout_uses_only_the_top_layer():
    torch.manual_seed(1)
    head = SequenceClassifier(build_rnn("afrnn", 2, [3, 4, 5]), 2)
    assert head.readout.in_features == 5 and head.rnn.readout_slice == slice(7, 12)
    x = torch.randn(2, 6, 2)
    _, h_n = head.rnn(x)
    assert torch.allclose(head(x), head.readout(h_n[:, 7:]))


def test_build_rnn_options_reach_field_and_solver():
    rnn = build_rnn("afrnn", 2, [3, 4, 5], solver="partitioned_euler", step_size=0.2, gamma=0.3, coupling="dense",
                    substeps=2, init="afrnn")
    assert isinstance(rnn, ODERNN) and rnn.solver == "partitioned_euler" and rnn.step_size == 0.2
    assert rnn.substeps == 2 and rnn.field.gamma == 0.3 and rnn.field.coupling == "dense" and rnn.field.init == "afrnn"
    assert build_rnn("antisymmetric", 1, 4).field.antisymmetric.parameterization == "triangular"
    assert build_rnn("arnn", 1, 4).field.antisymmetric.parameterization == "full"
    assert build_rnn("ablation", 1, 4).field.gated and not build_rnn("ablation", 1, 4, gated=False).field.gated
    assert len(build_rnn("frnn", 1, 4, num_layers=3).field.blocks) == 3


@pytest.mark.parametrize("call,match", [
    (lambda: build_rnn("transformer", 1, 4), "unknown model 'transformer'; known models: antisymmetric"),
    (lambda: build_rnn("afrnn", 1, 4, colour="red"), "unknown option.*colour"),
    (lambda: build_rnn("antisymmetric", 1, [4, 4]), "one layer"),
    (lambda: build_rnn("lstm", 1, 4, gamma_x=1), "unknown option"),
])
def test_build_rnn_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_baselines_interface_and_forget_bias():
    torch.manual_seed(2)
    lstm = LSTMBaseline(3, 6, num_layers=2)
    x = torch.randn(4, 5, 3)
    outputs, h_n = lstm(x)
    assert outputs.shape == (4, 5, 6) and torch.equal(h_n, outputs[:, -1]) and lstm.readout_slice == slice(0, 6)
    bias = lstm.core.bias_ih_l0 + lstm.core.bias_hh_l0
    assert torch.equal(bias[6:12], torch.ones(6))  # forget gate (App. C)
    gru = GRUBaseline(3, 6, batch_first=False)
    outputs, h_n = gru(x.transpose(0, 1))
    assert outputs.shape == (5, 4, 6) and torch.equal(h_n, outputs[-1])
    with pytest.raises(ValueError, match="3 features"):
        gru(torch.randn(4, 5, 2))


def test_count_parameters_counts_shared_once_and_trainable_only():
    rnn = build_rnn("gated", 1, 4)
    head = SequenceClassifier(rnn, 2)
    assert count_parameters(head) == count_parameters(rnn) + 10
    rnn.field.input.bias.requires_grad_(False)
    assert count_parameters(rnn) == 6 + 8 + 0
