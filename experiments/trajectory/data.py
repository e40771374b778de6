"""Trajectory data: a set of N trajectories of T observations of a d-dimensional state, and the two file
formats it is read from and written to.

- ``.npz``: an array ``states`` of shape (N, T, d) and an array ``times`` of shape (N, T) (each
  trajectory's own observation times) or (T,) (shared by all). Optional: ``state_names`` (d strings).
- ``.csv``: a header row, then one row per observation with the columns ``trajectory_id``, ``time`` and
  then one column per state variable (the header names them). Rows of one trajectory appear in increasing
  time; trajectories may be interleaved; ids are any text, ordered by first appearance.

Every trajectory must have the same number T >= 2 of observations at strictly increasing, finite times,
with finite states, and a file must hold at least 3 trajectories (training, validation and test each get
one or more). A file that breaks a rule raises ``DataError`` naming the file and the problem.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.io import atomic_path, atomic_write_text

MIN_TRAJECTORIES = 3
FORMATS = (".npz", ".csv")
CSV_ID, CSV_TIME = "trajectory_id", "time"


class DataError(ValueError):
    """A trajectory file or array that breaks the format's rules; the message names the file."""


@dataclass
class Trajectories:
    """``states (N, T, d)`` observed at ``times (N, T)`` (float64), with the state names and provenance."""

    states: np.ndarray
    times: np.ndarray
    state_names: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.float64)
        self.times = np.asarray(self.times, dtype=np.float64)
        if self.times.ndim == 1 and self.states.ndim == 3:
            self.times = np.broadcast_to(self.times, self.states.shape[:2]).copy()
        if not self.state_names and self.states.ndim == 3:
            self.state_names = tuple(f"y{i}" for i in range(self.states.shape[-1]))
        self.state_names = tuple(str(n) for n in self.state_names)

    @property
    def n(self) -> int:
        return self.states.shape[0]

    @property
    def length(self) -> int:
        return self.states.shape[1]

    @property
    def dim(self) -> int:
        return self.states.shape[2]

    def subset(self, idx: np.ndarray) -> "Trajectories":
        return Trajectories(self.states[idx], self.times[idx], self.state_names, dict(self.metadata))

    def validate(self, source: str = "data") -> "Trajectories":
        """Raise ``DataError`` (prefixed with ``source``) unless the rules of the module docstring hold."""
        check_arrays(self.states, self.times, source, self.state_names)
        return self


def check_arrays(states: np.ndarray, times: np.ndarray, source: str, state_names: tuple[str, ...] = ()) -> None:
    """The rules every trajectory set obeys, checked in the order a user would fix them."""
    def fail(problem: str) -> None:
        raise DataError(f"{source}: {problem}")

    if states.ndim != 3:
        fail(f"states must have rank 3, shape (N trajectories, T observations, d state variables); got rank "
             f"{states.ndim}, shape {tuple(states.shape)}")
    n, length, dim = states.shape
    if times.ndim not in (1, 2):
        fail(f"times must have shape (N, T) or (T,); got rank {times.ndim}, shape {tuple(times.shape)}")
    expected = (n, length) if times.ndim == 2 else (length,)
    if tuple(times.shape) != expected:
        fail(f"mismatched lengths: states {tuple(states.shape)} need times of shape {(n, length)} or "
             f"{(length,)}, got {tuple(times.shape)}")
    if dim < 1:
        fail("states have no state variables (d = 0)")
    if state_names and len(state_names) != dim:
        fail(f"mismatched lengths: {len(state_names)} state names for {dim} state variables")
    if n < MIN_TRAJECTORIES:
        fail(f"holds {n} trajector{'y' if n == 1 else 'ies'}; at least {MIN_TRAJECTORIES} are needed "
             f"(training, validation and test get one or more each)")
    if length < 2:
        fail(f"trajectories have {length} observation(s); at least 2 are needed (a start and something to predict)")
    for name, array in (("states", states), ("times", times)):
        bad = ~np.isfinite(array)
        if bad.any():
            where = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(array[tuple(where)]) else "Inf"
            fail(f"{name} contain {int(bad.sum())} NaN/Inf value(s), the first ({kind}) at trajectory "
                 f"{where[0] if array.ndim > 1 else 'any'}, observation {where[1] if array.ndim > 1 else where[0]}; "
                 f"every value must be finite")
    t = np.broadcast_to(times, (n, length))
    steps = np.diff(t, axis=1)
    if (steps <= 0).any():
        i, j = np.argwhere(steps <= 0)[0]
        fail(f"times do not increase: trajectory {i} has t[{j}] = {t[i, j]:g} then t[{j + 1}] = {t[i, j + 1]:g}; "
             f"each trajectory's times must be strictly increasing")


def load_trajectories(path: str | Path) -> Trajectories:
    """Read a ``.npz`` or ``.csv`` trajectory file (module docstring), validated."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; --data takes a .npz or .csv file of trajectories")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        traj = _read_npz(path)
    elif suffix == ".csv":
        traj = _read_csv(path)
    else:
        raise DataError(f"{path}: unknown format {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    traj.metadata.setdefault("source", str(path))
    return traj.validate(str(path))


def _read_npz(path: Path) -> Trajectories:
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {k: data[k] for k in data.files}
    except Exception as exc:  # zip, pickle and format errors from a foreign or truncated file
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("states", "times") if k not in contents]
    if missing:
        raise DataError(f"{path}: lacks the array(s) {', '.join(missing)}; a trajectory .npz holds 'states' "
                        f"(N, T, d) and 'times' (N, T) or (T,); found {sorted(contents) or 'nothing'}")
    arrays = {}
    for key in ("states", "times"):
        if np.iscomplexobj(contents[key]):  # float64 would drop the imaginary part without a word
            raise DataError(f"{path}: '{key}' is complex ({contents[key].dtype}); trajectories must be real: split "
                            f"real and imaginary parts into separate state components")
        try:
            arrays[key] = np.asarray(contents[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}: '{key}' must be numeric, got dtype {contents[key].dtype}") from None
    check_arrays(arrays["states"], arrays["times"], str(path))
    names = tuple(str(s) for s in contents["state_names"].reshape(-1)) if "state_names" in contents else ()
    metadata: dict[str, Any] = {}
    if "metadata" in contents:
        try:
            metadata = dict(json.loads(str(contents["metadata"])))
        except (ValueError, TypeError):
            metadata = {}
    return Trajectories(arrays["states"], arrays["times"], names, metadata)


def _read_csv(path: Path) -> Trajectories:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({type(exc).__name__})") from None
    rows = [(line, r) for line, r in enumerate(csv.reader(io.StringIO(text)), start=1)
            if any(cell.strip() for cell in r)]  # (line number, cells), blank lines skipped
    if not rows:
        raise DataError(f"{path}: empty; expected a header '{CSV_ID},{CSV_TIME},<state columns...>' and one row "
                        f"per observation")
    header = [cell.strip() for cell in rows[0][1]]
    if len(header) < 3 or header[0] != CSV_ID or header[1] != CSV_TIME:
        raise DataError(f"{path}: the header must be '{CSV_ID},{CSV_TIME}' followed by one or more state columns, "
                        f"got {','.join(header)!r}")
    names = tuple(header[2:])
    groups: dict[str, list[list[float]]] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} columns, the header has {len(header)}")
        try:
            values = [float(cell) for cell in row[1:]]
        except ValueError:
            raise DataError(f"{path}: line {line} has a value that is not a number: {','.join(row)!r}") from None
        groups.setdefault(row[0].strip(), []).append(values)
    lengths = {key: len(v) for key, v in groups.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in list(lengths.items())[:6])
        raise DataError(f"{path}: mismatched lengths: trajectories have different numbers of observations "
                        f"({shown}{', ...' if len(lengths) > 6 else ''}); every trajectory needs the same number")
    table = np.asarray(list(groups.values()), dtype=np.float64)  # (N, T, 1 + d)
    if table.ndim != 3:
        raise DataError(f"{path}: holds no observations below the header")
    check_arrays(table[..., 1:], table[..., 0], str(path), names)
    return Trajectories(table[..., 1:], table[..., 0], names, {"trajectory_ids": list(groups)})


def save_trajectories(traj: Trajectories, path: str | Path) -> Path:
    """Write ``traj`` as ``.npz`` or ``.csv`` (by the suffix of ``path``), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unknown format {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    traj.validate(str(path))
    if suffix == ".npz":
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, states=traj.states, times=traj.times, state_names=np.array(traj.state_names),
                     metadata=np.array(json.dumps(traj.metadata)))
        return path
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([CSV_ID, CSV_TIME, *traj.state_names])
    for i in range(traj.n):
        for j in range(traj.length):
            writer.writerow([i, repr(float(traj.times[i, j])), *(repr(float(v)) for v in traj.states[i, j])])
    atomic_write_text(buf.getvalue(), path)
    return path
