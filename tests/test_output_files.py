"""Output files: the stale-temporary sweep removes only the temporaries our writers name, never a user's
file; figures get the same permissions as every other output."""
from __future__ import annotations

import os
import stat

from matplotlib.figure import Figure

from experiments.io import atomic_path, atomic_write_text, remove_stale_temporaries
from odernn.plots import save_figure

DEAD_PID = 2 ** 22 + 12345  # above Linux's default pid_max: no such process


def test_sweep_removes_only_our_dead_writers_temporaries(tmp_path):
    ours_dead = tmp_path / f".metrics.json.{DEAD_PID}-ab_cd123.tmp"
    users = [tmp_path / ".draft.tmp", tmp_path / f".notes.{DEAD_PID}.tmp", tmp_path / "data.tmp",
             tmp_path / f".x.{DEAD_PID}-toolongname.tmp"]
    alive = tmp_path / f".config.json.{os.getppid()}-zz99yy88.tmp"  # a live writer (our parent process)
    for path in (ours_dead, *users, alive):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [ours_dead]
    assert all(path.exists() for path in (*users, alive))


def test_atomic_writers_name_their_temporaries_as_the_sweep_expects(tmp_path):
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("partial")
        name = tmp.name
    (tmp_path / name).write_text("left by a killed writer")  # as if the rename had never happened
    os.utime(tmp_path / name)
    # the name carries our own pid: a fresh start of this process treats it as stale
    assert remove_stale_temporaries(tmp_path) == [tmp_path / name]


def test_figures_get_the_permissions_of_every_other_output(tmp_path):
    umask = os.umask(0o022)
    try:
        text, figure = tmp_path / "a.txt", tmp_path / "a.png"
        atomic_write_text("x", text)
        save_figure(Figure(), figure)
        modes = {stat.S_IMODE(path.stat().st_mode) for path in (text, figure)}
    finally:
        os.umask(umask)
    assert modes == {0o644}


def test_one_writer_per_run_folder(tmp_path):
    """A folder locked by another live process is refused; a lock left by a dead one is taken over; the same
    process may take its own lock again (a command's training loop inside the command)."""
    import pytest

    from experiments.io import LOCK, folder_lock

    lock = tmp_path / LOCK
    lock.write_text(str(os.getppid()))  # a live process that is not us
    with pytest.raises(ValueError, match=rf"being written by another process \(pid {os.getppid()}\)"):
        with folder_lock(tmp_path):
            pass
    lock.write_text(str(DEAD_PID))  # stale
    with folder_lock(tmp_path):
        assert lock.read_text() == str(os.getpid())
        with folder_lock(tmp_path):  # re-entrant
            assert lock.exists()
        assert lock.exists()
    assert not lock.exists()


def test_a_second_training_into_a_locked_folder_is_refused(tmp_path, capsys):
    from experiments.__main__ import main
    from experiments.io import LOCK

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).write_text(str(os.getppid()))
    argv = ["sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "4", "--epochs", "1",
            "--train-subset", "100", "--threads", "1", "--no-progress", "--stability-check", "off",
            "--out-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "being written by another process" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK]  # nothing written
