"""The trajectory task: split, inputs, model time, targets, reference predictors, and the predictor module
(h0, observation times, the guard for an ODERNN without ``times``)."""
import numpy as np
import pytest
import torch

import odernn
from odernn import LAYERED_MODELS
from experiments.trajectory.data import Trajectories
from experiments.trajectory.model import TrajectoryPredictor, accepts_times, build_predictor
from experiments.trajectory.settings import TaskSettings
from experiments.trajectory.task import is_uniform_grid, pack_inputs, prepare, split_indices


def trajectories(n=20, length=6, d=2, irregular=False, seed=0, offset=False):
    rng = np.random.default_rng(seed)
    if irregular:
        times = np.cumsum(rng.uniform(0.05, 0.15, (n, length)), axis=1)
    else:
        times = np.broadcast_to(np.arange(length) * 0.1, (n, length)) + (rng.uniform(0, 5, (n, 1)) if offset else 0)
    return Trajectories(rng.normal(size=(n, length, d)), times)


def test_split_is_seeded_disjoint_and_complete():
    a = split_indices(100, (0.7, 0.15, 0.15), 0)
    assert [len(p) for p in a] == [70, 15, 15]
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert all(np.array_equal(x, y) for x, y in zip(a, split_indices(100, (0.7, 0.15, 0.15), 0)))
    assert not np.array_equal(a[0], split_indices(100, (0.7, 0.15, 0.15), 1)[0])
    assert [len(p) for p in split_indices(3, (0.7, 0.15, 0.15), 0)] == [1, 1, 1]
    assert [len(p) for p in split_indices(4, (0.01, 0.5, 0.5), 0)] == [1, 2, 1]


def test_inputs_targets_and_model_time():
    traj = trajectories(n=6, length=5, d=3)
    packed = pack_inputs(traj.states, traj.times, context=2, step_size=0.3, spacing=0.1)
    assert packed.shape == (6, 4, 3 + 2)
    x = packed.double().numpy()
    assert np.allclose(x[:, :2, :3], traj.states[:, :2]) and np.all(x[:, 2:, :3] == 1.0)
    assert np.allclose(x[:, :, 3], 1.0)  # interval / eps
    assert np.allclose(x[:, :, 4], 0.3 * np.arange(1, 5))  # s_j = j eps on a uniform grid
    irr = trajectories(n=4, length=5, irregular=True)
    x = pack_inputs(irr.states, irr.times, 1, 0.5, 0.1).double().numpy()
    s = (irr.times - irr.times[:, :1]) * 5.0
    assert np.allclose(x[:, :, -1], s[:, 1:], atol=1e-6) and np.allclose(x[:, :, -2], np.diff(s, axis=1) / 0.5, atol=1e-5)


def test_prepare_normalises_with_training_statistics_and_builds_targets():
    traj = trajectories(n=40, length=6, d=2)
    traj.states *= [1.0, 10.0]
    task = prepare(traj, context=2, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0)
    train = traj.states[task.indices["train"]].reshape(-1, 2)
    assert np.allclose(task.normalizer.mean, train.mean(0)) and np.allclose(task.normalizer.std, train.std(0))
    x, y = task.datasets["test"].tensors
    assert y.shape == (10, 4, 2) and np.allclose(y.numpy(), task.targets("test"), atol=1e-6)
    assert task.horizon == 4 and task.uniform
    with pytest.raises(ValueError, match="context 6 leaves nothing to predict.*between 1 and 5"):
        prepare(traj, context=6, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0)


def test_data_the_task_cannot_use_is_refused_with_its_reason():
    huge = trajectories(n=12, length=5, d=2)
    huge.states *= 1e300  # finite, but its variance overflows float64
    with pytest.raises(ValueError, match="too large to standardise.*rescale the data"):
        prepare(huge, context=1, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0)
    big = trajectories(n=12, length=5, d=2)
    big.states *= 1e39  # beyond float32 without standardisation
    with pytest.raises(ValueError, match="exceed float32's range"):
        prepare(big, context=1, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0, normalize=False)
    same = trajectories(n=12, length=5, d=2)
    same.states[:] = same.states[:1]
    with pytest.raises(ValueError, match="training trajectories are all the same"):
        prepare(same, context=1, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0)


def test_uniform_grid_detection():
    assert is_uniform_grid(trajectories().times)
    assert is_uniform_grid(trajectories(offset=True).times)  # shifted starts: still one grid
    assert not is_uniform_grid(trajectories(irregular=True).times)


def test_reference_predictors():
    traj = trajectories(n=30, length=5)
    task = prepare(traj, context=2, step_size=0.1, split=(0.6, 0.2, 0.2), split_seed=1)
    train = task.normalized("train")
    assert np.allclose(task.mean_predictor("test"), np.broadcast_to(train.mean(0)[2:], (6, 3, 2)))
    test = task.normalized("test")
    assert np.allclose(task.persistence("test"), np.repeat(test[:, 1:2], 3, axis=1))
    # irregular: mean over training trajectories of their (interpolated) state at the same time after start;
    # with states linear in time the interpolation is exact
    irr = trajectories(n=30, length=5, irregular=True)
    rel = irr.times - irr.times[:, :1]
    a, b = np.random.default_rng(2).normal(size=(2, 30, 1, 2))
    irr.states = a + b * rel[..., None]
    task = prepare(irr, context=1, step_size=0.1, split=(0.6, 0.2, 0.2), split_seed=1, normalize=False)
    tr, te = task.indices["train"], task.indices["test"]
    inside = rel[te][:, 1:] <= rel[tr][:, -1].min()
    expected = a[tr].mean(0) + b[tr].mean(0) * rel[te][:, 1:, None]
    assert not task.uniform and inside.mean() > 0.5
    assert np.allclose(task.mean_predictor("test")[inside], expected[inside])


@pytest.mark.parametrize("model", ["antisymmetric", "afrnn", "lstm", "gru"])
@pytest.mark.parametrize("h0", ["state", "encoder", "zeros", "ones"])
def test_predictor_shapes_and_initial_state(model, h0):
    traj = trajectories(n=12, length=7, d=3)
    task = prepare(traj, context=3, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0)
    layers = {"num_layers": 2} if model in LAYERED_MODELS else {}  # refused for single-layer models
    settings = TaskSettings(models=(model,), hidden_size=5, h0=h0, context=3, **layers)
    net = build_predictor(settings, model, 3, 3, task.uniform)
    x = task.datasets["train"].tensors[0]
    assert net(x).shape == (6, 4, 3)
    if h0 in ("state", "encoder"):  # h0 is a function of the context: changing it in h0 alone changes the output
        context = x[:, :3, :3]
        base = net.regressor(net.rnn_inputs(x), net.initial_state(context))
        for k in (0, 2) if h0 == "encoder" else (0,):  # the encoder reads every context observation
            moved = context.clone()
            moved[:, k] += 1.0
            assert not torch.allclose(base, net.regressor(net.rnn_inputs(x), net.initial_state(moved)))
        if h0 == "state":  # the affine map reads the first one only
            later = context.clone()
            later[:, 2] += 1.0
            assert torch.equal(base, net.regressor(net.rnn_inputs(x), net.initial_state(later)))


@pytest.mark.parametrize("solver", ["euler", "rk4", "dopri5"])
def test_explicit_times_on_a_uniform_grid_equal_the_default_grid(solver):
    """The model-time mapping: on uniform data s_j = j eps, so passing the times changes nothing (eps = 0.25
    keeps the float32 times exact, so a fixed-step solver takes the same steps)."""
    traj = trajectories(n=12, length=6, offset=True)
    task = prepare(traj, context=1, step_size=0.25, split=(0.5, 0.25, 0.25), split_seed=0)
    settings = TaskSettings(models=("antisymmetric",), hidden_size=6, solver=solver, step_size=0.25)
    default = build_predictor(settings, "antisymmetric", 2, 1, uniform=True)
    if not accepts_times(default.rnn):
        pytest.skip("this odernn's ODERNN.forward has no times argument yet")
    timed = build_predictor(settings, "antisymmetric", 2, 1, uniform=False)
    assert timed.pass_times and not default.pass_times
    x = task.datasets["train"].tensors[0]
    with torch.no_grad():
        assert torch.allclose(default(x), timed(x), atol=1e-5)


def test_irregular_times_reach_the_model_and_discrete_models_read_the_interval():
    traj = trajectories(n=12, length=6, irregular=True)
    task = prepare(traj, context=1, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0)
    settings = TaskSettings(models=("lstm",), hidden_size=4)
    lstm = build_predictor(settings, "lstm", 2, 1, task.uniform)
    assert lstm.interval_feature and not lstm.pass_times and lstm.rnn.core.input_size == 3

    seen = {}

    class Recorder(odernn.GRUBaseline):
        def forward(self, x, h0=None, times=None):
            seen["times"] = times
            return super().forward(x, h0)

    net = TrajectoryPredictor(Recorder(2, 4), 2, 1, "zeros", pass_times=True)
    x = task.datasets["train"].tensors[0]
    net(x)
    assert torch.equal(seen["times"], x[..., -1])  # per sample
    same = x.clone()
    same[..., -1] = x[:1, :, -1]
    net(same)
    assert torch.equal(seen["times"], x[0, :, -1])  # shared by the batch: (T,)


def test_an_rnn_without_times_is_refused_clearly():
    with pytest.raises(ValueError, match="not a uniform grid, and GRUBaseline.forward has no `times` argument"):
        TrajectoryPredictor(odernn.GRUBaseline(2, 4), 2, 1, pass_times=True)


@pytest.mark.parametrize("kwargs,match", [
    (dict(models=("lstm", "nope")), "unknown model.*nope.*known models: antisymmetric"),
    (dict(models=("lstm", "lstm")), "lists a model twice"),
    (dict(solver="rk9"), "unknown solver 'rk9'; known solvers:"),
    (dict(context=0), "context must be a positive integer"),
    (dict(h0="random"), "unknown initial hidden state 'random'; known: state, encoder, zeros, ones"),
    (dict(split=(0.7, 0.3, 0.0)), "split must be three positive fractions"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(step_size=-0.1), "step_size must be a positive finite number"),
])
def test_bad_task_settings_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TaskSettings(**kwargs)


def test_one_step_prediction_reads_every_observation_and_predicts_the_next():
    """The LEM authors' FitzHugh-Nagumo protocol: input y_0..y_{T-2}, targets y_1..y_{T-1}, causal."""
    traj = trajectories(n=12, length=7, d=3)
    task = prepare(traj, context=1, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0, normalize=False,
                   objective="one-step", observed=("y2", "y0"))
    assert task.state_dim == 2 and task.first_target == 1 and task.horizon == 6
    x, y = task.datasets["test"].tensors
    states = traj.states[task.indices["test"]][..., [2, 0]]
    np.testing.assert_allclose(x[..., :2].numpy(), states[:, :-1], rtol=1e-6)  # every observation but the last
    np.testing.assert_allclose(y.numpy(), states[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(task.persistence("test"), states[:, :-1])  # the previous observation
    net = build_predictor(TaskSettings(models=("antisymmetric",), hidden_size=4, objective="one-step"),
                          "antisymmetric", 2, task.first_target, task.uniform)
    out = net(x)
    assert out.shape == y.shape
    later = x.clone()
    later[:, 4:, :2] += 1.0  # observations from y_4 on change no prediction of y_1..y_4
    changed = (net(later) - out).abs().amax(dim=(0, 2))
    assert bool((changed[:4] == 0).all()) and bool((changed[4:] > 0).all())


def test_one_step_and_observed_settings_are_checked():
    with pytest.raises(ValueError, match="--context 3 has no effect in one-step prediction"):
        TaskSettings(objective="one-step", context=3)
    with pytest.raises(ValueError, match="needs --alignment previous"):
        TaskSettings(objective="one-step", alignment="current")
    with pytest.raises(ValueError, match="names a variable twice"):
        TaskSettings(observed=("v", "v"))
    with pytest.raises(ValueError, match="--observed q: not a state variable of these trajectories"):
        prepare(trajectories(), context=1, step_size=0.1, split=(0.5, 0.25, 0.25), split_seed=0, observed=("q",))


def test_three_trajectories_split_one_each_and_one_step_refuses_current_alignment():
    task = prepare(trajectories(n=3, length=5), context=1, step_size=0.1, split=(0.7, 0.15, 0.15), split_seed=0)
    assert task.describe()["split_sizes"] == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(ValueError, match="needs --alignment previous"):
        prepare(trajectories(), 1, 0.1, (0.7, 0.15, 0.15), 0, objective="one-step", alignment="current")


def test_a_size_flag_overrides_the_presets_size_of_its_model_only():
    from experiments.trajectory.cli import _merge
    from experiments.trajectory.settings import PRESETS
    merged = _merge(PRESETS["table3"]["task"], {"sizes": (("lstm", 50, 2),)})
    assert merged["sizes"] == (("lstm", 50, 2), ("arnn", 200, None))
    assert _merge(PRESETS["table3"]["task"], {"models": ("afrnn",)})["sizes"] == ()


def test_report_prints_small_errors_with_significant_digits_and_names_the_one_step_persistence():
    from experiments.trajectory import report
    row = {"model": "lem", "parameters": 10, "test_mse": 1.18e-5, "test_over_mean_predictor": 1.2e-5,
           "horizon": {"mse": [0.0069, 1.6e-7], "mean_predictor_mse": [0.5, 0.2], "persistence_mse": [0.09, 0.02]},
           "best_epoch": 4, "epochs": 4, "train_time_s": 1.0, "solver": "euler", "step_size": 1.0, "gamma": 0.0,
           "mean_predictor_mse": 0.9675, "persistence_mse": 0.0062, "settings": {"objective": "one-step"}}
    table = report.markdown([row])
    assert "| lem | 10 | 1.18e-05 | 1.20e-05 | 0.0069 / 1.60e-07 |" in table
    assert "| persistence (previous observation) | - | 0.0062 |" in table
    assert "last context state" in report.markdown([{**row, "settings": {"objective": "rollout"}}])
