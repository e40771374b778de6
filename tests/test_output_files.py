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
