"""Ground truth: one batched solve for all trajectories, agreement with scipy's DOP853, energy drift,
the .npz file format and its errors."""
import json

import numpy as np
import pytest

import experiments.double_pendulum.generate as gen
from experiments.double_pendulum.physics import DoublePendulum
from experiments.double_pendulum.reference import solve_scipy


def scipy_reference(truth: gen.GroundTruth, indices) -> np.ndarray:
    return solve_scipy(truth.pendulum, truth.initial_conditions[list(indices)], truth.times)


@pytest.fixture(scope="module")
def thousand():
    """1000 trajectories at the default settings, with the odeint calls recorded."""
    calls = []
    original = gen.odeint

    def recording(f, y0, t, **kw):
        calls.append((tuple(y0.shape), tuple(t.shape), kw["method"]))
        return original(f, y0, t, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(gen, "odeint", recording)
    try:
        truth = gen.generate(n=1000, seed=0, progress=False)
    finally:
        mp.undo()
    return truth, calls


def test_thousand_trajectories_in_one_batched_solve(thousand):
    truth, calls = thousand
    assert calls == [((1000, 4), (30,), "dopri5")]
    assert truth.states.shape == (1000, 30, 4)
    np.testing.assert_array_equal(truth.states[:, 0], truth.initial_conditions)
    assert truth.metadata["solver"] == "dopri5" and truth.metadata["rtol"] == 1e-12
    assert truth.metadata["solve_seconds"] > 0 and truth.metadata["nfe"] > 0


def test_default_ground_truth_matches_scipy_dop853(thousand):
    truth, _ = thousand
    idx = [0, 1, 2, 3, 999]
    err = np.abs(truth.states[idx] - scipy_reference(truth, idx)).max()
    assert err < 1e-7, f"max |ours - DOP853| = {err:.2e}"


def test_default_ground_truth_conserves_energy(thousand):
    truth, _ = thousand
    drift = gen.relative_energy_drift(truth)
    assert drift.shape == (1000,)
    assert drift.max() < 1e-7, f"max relative energy drift {drift.max():.2e}"


def test_fixed_step_method_is_selectable_and_converges():
    """rk4 at h = 2e-3 is close to DOP853; at h = 4e-3 it is ~16x further (4th order)."""
    errs = []
    for h in (4e-3, 2e-3):
        truth = gen.generate(n=4, seed=5, method="rk4", step_size=h, progress=False)
        errs.append(np.abs(truth.states - scipy_reference(truth, range(4))).max())
        assert truth.metadata["step_size"] == h and truth.metadata["rtol"] is None
    assert errs[1] < 1e-7
    assert 10 < errs[0] / errs[1] < 24


def test_same_seed_same_data_and_other_parameters_change_it():
    fast = dict(method="rk4", step_size=1e-2, progress=False)
    a = gen.generate(n=3, seed=7, **fast)
    b = gen.generate(n=3, seed=7, **fast)
    np.testing.assert_array_equal(a.states, b.states)
    heavy = gen.generate(n=3, seed=7, pendulum=DoublePendulum(m2=2.0), **fast)
    np.testing.assert_array_equal(heavy.initial_conditions, a.initial_conditions)
    assert np.abs(heavy.states - a.states).max() > 1e-2
    assert heavy.metadata["parameters"]["m2"] == 2.0


def test_save_load_round_trip(tmp_path):
    truth = gen.generate(n=3, seed=1, method="rk4", step_size=1e-2, progress=False)
    path = gen.save(truth, tmp_path / "pendulum.npz")
    back = gen.load(path)
    np.testing.assert_array_equal(back.states, truth.states)
    np.testing.assert_array_equal(back.times, truth.times)
    assert back.metadata == json.loads(json.dumps(truth.metadata))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pendulum.npz"]  # no temporary file left


@pytest.mark.parametrize("kw, match", [(dict(method="rk5"), "unknown method"),
                                       (dict(method="rk4", step_size=0.0), "step_size"),
                                       (dict(rtol=-1.0), "rtol"), (dict(n=0), "positive integer")])
def test_bad_generation_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        gen.generate(**{"n": 2, "progress": False, **kw})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ValueError, match="no double-pendulum data at"):
        gen.load(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        gen.load(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, states=np.zeros((2, 30, 4)), times=np.arange(30.0))
    with pytest.raises(ValueError, match="lacks"):
        gen.load(partial)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, states=np.zeros((2, 30, 3)), times=np.arange(30.0), initial_conditions=np.zeros((2, 4)),
             metadata=np.array("{}"))
    with pytest.raises(ValueError, match="expected states"):
        gen.load(wrong)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(wrong.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable"):
        gen.load(truncated)
