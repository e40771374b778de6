"""Trajectory files: .npz and .csv round trips, and every rule a file can break gives one line naming the
file and the problem, exit status 2 (no traceback) from the command line."""
import numpy as np
import pytest

from experiments.__main__ import main
from experiments.trajectory.data import DataError, Trajectories, load_trajectories, save_trajectories


def example(n=4, length=5, d=2, shared=False, seed=0):
    rng = np.random.default_rng(seed)
    times = np.arange(length) * 0.1 if shared else np.cumsum(rng.uniform(0.05, 0.2, (n, length)), axis=1)
    return rng.normal(size=(n, length, d)), times


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def write_csv(path, rows, header="trajectory_id,time,x,v"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("shared", [False, True], ids=["times (N, T)", "times (T,)"])
def test_npz_round_trip(tmp_path, shared):
    states, times = example(shared=shared)
    traj = load_trajectories(write_npz(tmp_path / "a.npz", states=states, times=times))
    assert traj.states.shape == (4, 5, 2) and traj.times.shape == (4, 5)
    assert np.array_equal(traj.states, states) and np.array_equal(traj.times, np.broadcast_to(times, (4, 5)))
    assert traj.state_names == ("y0", "y1")
    save_trajectories(Trajectories(states, times, ("x", "v"), {"k": 1}), tmp_path / "b.npz")
    again = load_trajectories(tmp_path / "b.npz")
    assert again.state_names == ("x", "v") and again.metadata["k"] == 1 and np.array_equal(again.states, states)


def test_csv_round_trip_and_interleaved_rows(tmp_path):
    states, times = example(n=3, length=4)
    path = save_trajectories(Trajectories(states, times, ("x", "v")), tmp_path / "a.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "trajectory_id,time,x,v" and len(lines) == 1 + 3 * 4
    traj = load_trajectories(path)
    assert traj.state_names == ("x", "v") and np.array_equal(traj.states, states) and np.array_equal(traj.times, times)
    # rows of different trajectories may be interleaved; ids are text, ordered by first appearance
    rows = [(tid, t, float(tid == "b"), t) for t in (0.0, 0.5, 1.0) for tid in ("b", "a", "c")]
    traj = load_trajectories(write_csv(tmp_path / "b.csv", rows))
    assert traj.metadata["trajectory_ids"] == ["b", "a", "c"] and traj.states.shape == (3, 3, 2)
    assert np.array_equal(traj.states[0, :, 0], [1, 1, 1]) and np.array_equal(traj.times[2], [0, 0.5, 1])


def _errors(tmp_path):
    states, times = example()
    nan = states.copy()
    nan[2, 3, 1] = np.nan
    rows = [(i, t, 0.0, 1.0) for i in range(3) for t in (0.0, 0.1, 0.2)]
    return {
        "nan-npz": (write_npz(tmp_path / "nan.npz", states=nan, times=times),
                    r"nan\.npz: states contain 1 NaN/Inf value\(s\), the first \(NaN\) at trajectory 2, observation 3"),
        "nan-csv": (write_csv(tmp_path / "nan.csv", rows[:4] + [(1, 0.1, "nan", 1.0)] + rows[5:]),
                    r"nan\.csv: states contain 1 NaN/Inf"),
        "rank": (write_npz(tmp_path / "rank.npz", states=states[..., 0], times=times),
                 r"rank\.npz: states must have rank 3, shape \(N trajectories, T observations, d state variables\); "
                 r"got rank 2"),
        "lengths-npz": (write_npz(tmp_path / "len.npz", states=states, times=times[:, :4]),
                        r"len\.npz: mismatched lengths: states \(4, 5, 2\) need times of shape \(4, 5\) or \(5,\), "
                        r"got \(4, 4\)"),
        "lengths-csv": (write_csv(tmp_path / "len.csv", rows[:-1]),
                        r"len\.csv: mismatched lengths: trajectories have different numbers of observations \(0: 3, "
                        r"1: 3, 2: 2\)"),
        "few-npz": (write_npz(tmp_path / "few.npz", states=states[:2], times=times[:2]),
                    r"few\.npz: holds 2 trajectories; at least 3 are needed"),
        "few-csv": (write_csv(tmp_path / "few.csv", rows[:6]), r"few\.csv: holds 2 trajectories; at least 3"),
        "times-npz": (write_npz(tmp_path / "t.npz", states=states, times=np.array([0, 0.1, 0.3, 0.3, 0.4])),
                      r"t\.npz: times do not increase: trajectory 0 has t\[2\] = 0.3 then t\[3\] = 0.3"),
        "times-csv": (write_csv(tmp_path / "t.csv", [(i, t, 0.0, 1.0) for i in range(3) for t in (0.0, 0.2, 0.1)]),
                      r"t\.csv: times do not increase: trajectory 0 has t\[1\] = 0.2 then t\[2\] = 0.1"),
        "header-csv": (write_csv(tmp_path / "h.csv", rows, header="id,t,x"),
                       r"h\.csv: the header must be 'trajectory_id,time' followed by one or more state columns"),
        "text-csv": (write_csv(tmp_path / "s.csv", rows[:2] + [(2, 0.2, "abc", 1.0)]),
                     r"s\.csv: line 4 has a value that is not a number"),
        "missing-npz": (write_npz(tmp_path / "m.npz", states=states), r"m\.npz: lacks the array\(s\) times"),
        "format": (write_csv(tmp_path / "x.txt", rows), r"x\.txt: unknown format '\.txt'; use one of \.npz, \.csv"),
        "absent": (tmp_path / "absent.npz", r"absent\.npz: no such file"),
    }


@pytest.mark.parametrize("case", ["nan-npz", "nan-csv", "rank", "lengths-npz", "lengths-csv", "few-npz", "few-csv",
                                  "times-npz", "times-csv", "header-csv", "text-csv", "missing-npz", "format", "absent"])
def test_each_broken_file_is_named_with_its_problem(tmp_path, case):
    path, match = _errors(tmp_path)[case]
    with pytest.raises(DataError, match=match):
        load_trajectories(path)


@pytest.mark.parametrize("case", ["nan-csv", "rank", "lengths-npz", "few-csv", "times-npz"])
def test_command_line_reports_one_line_and_exit_status_2(tmp_path, case, capsys):
    path, match = _errors(tmp_path)[case]
    out_dir = tmp_path / "run"
    assert main(["trajectory", "--data", str(path), "--out-dir", str(out_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err
    assert str(path) in err
    assert not out_dir.exists()  # nothing written


def test_generated_flags_do_not_apply_to_a_data_file(tmp_path, capsys):
    states, times = example()
    path = write_npz(tmp_path / "ok.npz", states=states, times=times)
    assert main(["trajectory", "--data", str(path), "--system", "pendulum", "--n", "9"]) == 2
    assert "--system, --n describe generated trajectories and do not apply to --data" in capsys.readouterr().err


def test_complex_states_are_refused_not_truncated(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, states=np.ones((2, 3, 2), dtype=np.complex128) * (1 + 2j), times=np.arange(3.0))
    with pytest.raises(DataError, match=r"'states' is complex \(complex128\); trajectories must be real"):
        load_trajectories(path)
