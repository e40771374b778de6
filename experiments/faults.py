"""``python -m experiments faults``: the fault-injection suite, run as a user meets faults.

Every case does something a user might and classifies what happened:

- ``ok``: the expected end: a refusal as one line on stderr with exit status 2 and every byte of the run
  folder as it was (sha256 of each file before and after), or a correct result;
- ``hang``: no end within the case's time limit;
- ``lost``: a refused run changed or deleted a file it found, or an interrupted run could not be continued;
- ``wrong``: a silent wrong result: a run accepted what it should have refused, or finished without the
  expected error;
- ``internal``: refused, but through the catch-all (an internal exception's message, not a check naming the
  user's input).

Groups: corrupted and foreign files for every file of a run folder (``sequential`` and ``trajectory``), a
finished run (no checkpoint) or a folder holding only a stale lock given ``--resume``, every writing command
refused while pointed at a folder holding a run (its bytes unchanged),
flags at their boundaries (``sequential``, ``trajectory``, ``benchmark``, ``stability``), non-finite values
appearing mid-solve (``odeint`` fixed and adaptive in float32 and float64, ``odeint_event``, ODERNN), empty
data, and, with ``--full`` (separate processes, slower), kill -9 during training followed by ``--resume``
and two runs started at once on one folder. The quick groups run in-process (``tests/test_faults.py`` runs
them in CI); ``--full`` adds the process groups. Prints one table (cases and outcomes per group) and, with
``--verbose``, one line per case.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

OUTCOMES = ("ok", "hang", "lost", "wrong", "internal")
CATCH_ALL = "ODERNN_TRACEBACK=1 shows the traceback"
QUIET = ["--no-progress", "--stability-check", "off"]
SEQUENTIAL = ["sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "4", "--batch-size",
              "32", "--train-subset", "40", "--test-subset", "20", "--threads", "1", *QUIET]
TRAJECTORY = ["trajectory", "--system", "damped-oscillator", "--models", "lstm", "--n", "24", "--steps", "6",
              "--hidden-size", "4", "--batch-size", "8", *QUIET]


@dataclass(frozen=True)
class Case:
    """One fault: ``run(folder)`` returns (outcome, detail) in a fresh temporary folder."""

    group: str
    name: str
    run: Callable[[Path], tuple[str, str]]
    seconds: float = 60.0


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` of the code under test hides it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (the run lock excluded: it is the lock, not the run)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def command(argv: list[str]) -> tuple[int, str]:
    """``python -m experiments`` in this process: (exit status, stderr); threads restored afterwards."""
    from experiments.__main__ import main

    threads, err = torch.get_num_threads(), io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            status = main(argv)
    finally:
        torch.set_num_threads(threads)
    return status, err.getvalue()


def refusal(status: int, err: str, before: dict[str, str], after: dict[str, str]) -> tuple[str, str]:
    """The outcome of a run that should be refused."""
    lines = [line for line in err.splitlines() if line.strip()]
    if status == 0:
        return "wrong", "accepted"
    if before != after:
        changed = sorted(set(before) ^ set(after) | {k for k in before if after.get(k) != before[k]})
        return "lost", f"refused but changed {', '.join(changed[:3])}"
    if status != 2 or len(lines) != 1:
        return "wrong", f"exit {status}, {len(lines)} lines on stderr"
    if CATCH_ALL in lines[0]:
        return "internal", lines[0][:160]
    return "ok", lines[0][:160]


def refused(argv: list[str], folder: Path) -> tuple[str, str]:
    before = hashes(folder)
    status, err = command(argv)
    return refusal(status, err, before, hashes(folder))


# ---------------------------------------------------------------------------------------- corrupted files
def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(max(64, len(data) // 4)))
    elif how == "foreign":  # a well-formed file of the same kind holding something else
        if path.suffix == ".pt":
            torch.save({"weights": torch.zeros(3), "note": "not a run"}, path)
        else:
            path.write_text(json.dumps([1, 2, 3]))
    else:
        raise ValueError(how)


CORRUPTIONS = ("truncated", "empty", "garbage", "foreign")
DERIVED = ("metrics.json",)
"""Files a resume rebuilds from the checkpoint (the history it holds): corrupting one is repaired, not refused."""


def rebuilt(argv: list[str], path: Path) -> tuple[str, str]:
    """A run whose derived file was corrupted continues and writes it anew, whole."""
    status, err = command(argv)
    if status != 0:
        return "wrong", f"refused although {path.name} is rebuilt from the checkpoint: {err.strip()[:160]}"
    rows = json.loads(path.read_text())
    whole = isinstance(rows, list) and [row.get("epoch") for row in rows] == list(range(1, len(rows) + 1))
    return ("ok", f"{path.name} rebuilt with {len(rows)} epochs") if whole and rows else ("lost", "not rebuilt")


def _finished(kind: str, cache: dict[str, Path]) -> Path:
    """A finished tiny run of ``kind`` (made once per process, copied per case)."""
    if kind not in cache:
        folder = Path(tempfile.mkdtemp(prefix=f"odernn-faults-{kind}-")) / "run"
        argv = (SEQUENTIAL + ["--epochs", "1"]) if kind == "sequential" else (TRAJECTORY + ["--epochs", "1"])
        status, err = command([*argv, "--out-dir", str(folder)])
        if status != 0:
            raise RuntimeError(f"the {kind} run the fault cases start from failed: {err.strip()}")
        cache[kind] = folder
    return cache[kind]


def prepare(cache: dict[str, Path]) -> None:
    """Before any time limit runs: the finished runs the file cases copy, and torch's lazily imported optimiser
    machinery (an alarm inside an import would leave the module half-initialised for every later case)."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    for kind in ("sequential", "trajectory"):
        _finished(kind, cache)


def file_cases(cache: dict[str, Path]) -> list[Case]:
    cases = []
    for kind, files, base in (("sequential", ("checkpoint.pt", "best.pt", "config.json", "metrics.json"),
                               SEQUENTIAL),
                              ("trajectory", ("config.json", "lstm/checkpoint.pt", "lstm/best.pt"), TRAJECTORY)):
        for name in files:
            for how in CORRUPTIONS:
                def run(tmp: Path, kind=kind, name=name, how=how, base=base) -> tuple[str, str]:
                    folder = tmp / "run"
                    shutil.copytree(_finished(kind, cache), folder)
                    corrupt(folder / name, how)
                    argv = [*base, "--epochs", "2", "--resume", "--out-dir", str(folder)]
                    if name in DERIVED:
                        return rebuilt(argv, folder / name)
                    return refused(argv, folder)
                cases.append(Case(f"{kind} files", f"{name} {how}, --resume", run))
    return cases


def finished_cases(cache: dict[str, Path]) -> list[Case]:
    """A finished run keeps no checkpoint (results/ folders): --resume must refuse it, not train it again."""
    def run(tmp: Path) -> tuple[str, str]:
        folder = tmp / "run"
        shutil.copytree(_finished("sequential", cache), folder)
        (folder / "checkpoint.pt").unlink()
        return refused([*SEQUENTIAL, "--epochs", "2", "--resume", "--out-dir", str(folder)], folder)

    def locked(tmp: Path) -> tuple[str, str]:  # killed between taking the lock and writing config.json
        folder = tmp / "run"
        folder.mkdir()
        (folder / ".lock").write_text(str(2 ** 22 + 1))  # above Linux's largest pid: no live holder
        status, err = command([*SEQUENTIAL, "--epochs", "1", "--resume", "--out-dir", str(folder)])
        return ("ok", "started afresh") if status == 0 else ("lost", err.strip()[:160])

    return [Case("finished runs", "sequential run without its checkpoint, --resume", run),
            Case("finished runs", "only a stale lock in the folder, --resume", locked)]


WRITERS = {
    "sequential": ([*SEQUENTIAL, "--epochs", "0"], "--out-dir"),
    "sweep": (["sweep", "--task", "digits", "--models", "antisymmetric", "--solvers", "euler", "--epochs", "0",
               "--no-progress"], "--out-dir"),
    "screen": (["screen", "--task", "digits", "--epochs", "0", "--no-progress"], "--out-dir"),
    "trajectory": ([*TRAJECTORY, "--epochs", "0"], "--out-dir"),
    "trajectory energy": (["trajectory", "energy", "--n", "0"], "--out-dir"),
    "trajectory make-data": (["trajectory", "make-data", "--system", "pendulum", "--n", "0", "--no-progress"],
                             "--out"),
    "trajectory compare": (["trajectory", "compare", "--grids", "hourly", "--no-progress"], "--out-dir"),
    "adding": (["adding", "--length", "1", "--no-progress"], "--out-dir"),
    "dynamics": (["dynamics", "--solver", "rk5"], "--out-dir"),
    "stability": (["stability", "--solver", "rk5"], "--out"),
    "curves --plot": (["curves", "no-such-run-folder"], "--plot"),
}
"""Every command that writes (a run folder, a data file or a figure), with a value it must refuse, and the flag
naming where it writes."""


def writer_cases(cache: dict[str, Path]) -> list[Case]:
    """A refused command pointed at a folder holding another run leaves every byte of it as it was."""
    cases = []
    for name, (argv, where) in WRITERS.items():
        def run(tmp: Path, argv=argv, where=where) -> tuple[str, str]:
            folder = tmp / "run"
            shutil.copytree(_finished("sequential", cache), folder)
            (folder / "notes.txt").write_text("the user's own file")
            return refused([*argv, where, str(folder)], folder)
        cases.append(Case("refused writers", f"{name} into a folder holding a run", run))
    return cases


# ------------------------------------------------------------------------------------- flags at boundaries
FLAG_CASES = {
    "sequential": (SEQUENTIAL, [("--epochs", "0"), ("--batch-size", "0"), ("--lr", "0"), ("--lr", "nan"),
                                ("--lr", "-1"), ("--step-size", "0"), ("--step-size", "inf"), ("--hidden-size", "0"),
                                ("--substeps", "0"), ("--seed", "-1"), ("--train-subset", "0"),
                                ("--val-fraction", "1.5"), ("--val-fraction", "0"), ("--threads", "0"),
                                ("--grad-clip", "-1"), ("--lr-decay-epoch", "0"), ("--solver", "rk5"),
                                ("--task", "svhn"), ("--epsilon", "1"), ("--momentum", "1")]),
    "trajectory": (TRAJECTORY, [("--epochs", "0"), ("--n", "0"), ("--steps", "0"), ("--hidden-size", "0"),
                                ("--batch-size", "0"), ("--system", "lorenz-96"), ("--models", "transformer"),
                                ("--lr", "-1")]),
    "benchmark": (["benchmark", "--no-progress", "--repeats", "1", "--warmup", "0"],
                  [("--T", "5"), ("--batch", "0"), ("--hidden", "0"), ("--repeats", "0"), ("--threads", "-1"),
                   ("--warmup", "-1")]),
    "stability": (["stability", "--steps", "4"], [("--solver", "rk5"), ("--step-size", "0"), ("--hidden", "0"),
                                                  ("--model", "lstm"), ("--model", "cornn", "--sigma-w", "1")]),
}
"""command -> (its base arguments, the arguments each case adds: a value out of range, an unknown name, or a
setting the model does not have)."""


def flag_cases() -> list[Case]:
    cases = []
    for name, (base, flags) in FLAG_CASES.items():
        for added in flags:
            def run(tmp: Path, base=base, added=added, name=name) -> tuple[str, str]:
                out = tmp / "out"
                where = ["--out", str(out / "s.png")] if name == "stability" else (
                    [] if name == "benchmark" else ["--out-dir", str(out)])
                return refused([*base, *where, *added], out)
            cases.append(Case(f"{name} flags", " ".join(added), run))
    return cases


# ------------------------------------------------------------------------------- non-finite values mid-solve
NON_FINITE = ("non-finite", "NaN", "not finite")


def _expect_error(action: Callable[[], object], where: str = "") -> tuple[str, str]:
    """A clear error naming the non-finite value (and ``where``, e.g. the time) is the expected end."""
    try:
        action()
    except Hang:
        raise
    except (ValueError, FloatingPointError, RuntimeError) as error:
        message = str(error)
        if CATCH_ALL in message:
            return "internal", message[:160]
        named = any(word in message for word in NON_FINITE) and where in message
        return ("ok", message[:160]) if named else ("wrong", f"unexpected message: {message[:160]}")
    return "wrong", "no error"


def nonfinite_cases() -> list[Case]:
    import solvers
    from odernn import ODERNN, AntisymmetricField

    def nan_after(t0: float):
        return lambda t, y: -y + (float("nan") if float(t) > t0 else 0.0) * y

    cases = []
    for method in ("dopri5", "bosh3", "rk4", "implicit_midpoint"):
        for dtype in (torch.float32, torch.float64):
            def run(tmp: Path, method=method, dtype=dtype) -> tuple[str, str]:
                y0, t = torch.ones(3, dtype=dtype), torch.linspace(0, 1, 5, dtype=dtype)
                step = None if solvers.get_method(method).adaptive else 0.01
                return _expect_error(lambda: solvers.odeint(nan_after(0.5), y0, t, method=method, step_size=step),
                                     "t=0.5")
            cases.append(Case("non-finite mid-solve", f"odeint {method} {str(dtype)[6:]}", run, seconds=30))

    def pole(tmp: Path, dtype=torch.float32) -> tuple[str, str]:
        t = torch.linspace(0, 1, 3, dtype=dtype)
        try:  # the case's own time limit classifies a stall as a hang
            solvers.odeint(lambda t, y: y / (0.5 - t), torch.ones(2, dtype=dtype), t, method="dopri5")
        except (ValueError, FloatingPointError, RuntimeError) as error:
            return ("ok" if "t=0.5" in str(error) or "0.49" in str(error) else "wrong"), str(error)[:160]
        return "wrong", "no error"
    cases.append(Case("non-finite mid-solve", "odeint dopri5 float32 pole at t = 0.5", pole, seconds=30))

    def event(tmp: Path) -> tuple[str, str]:
        return _expect_error(lambda: solvers.odeint_event(nan_after(0.3), torch.ones(2, dtype=torch.float64),
                                                          0.0, lambda t, y: y[0] - 10.0), "t=0.")
    cases.append(Case("non-finite mid-solve", "odeint_event dopri5", event, seconds=30))

    for solver in ("euler", "rk4", "dopri5"):
        def rnn(tmp: Path, solver=solver) -> tuple[str, str]:
            x = torch.randn(2, 12, 1)
            x[1, 6, 0] = float("nan")
            return _expect_error(lambda: ODERNN(AntisymmetricField(1, 4), solver)(x), "x")
        cases.append(Case("non-finite mid-solve", f"ODERNN {solver}, NaN input at step 6", rnn, seconds=30))
    return cases


# ------------------------------------------------------------------------------------------------ empty data
def empty_cases() -> list[Case]:
    def empty_file(tmp: Path) -> tuple[str, str]:
        import numpy as np
        data = tmp / "empty.npz"
        np.savez(data, t=np.zeros((0, 5)), y=np.zeros((0, 5, 2)))
        out = tmp / "out"
        return refused(["trajectory", "--data", str(data), "--models", "lstm", *QUIET, "--out-dir", str(out)], out)

    def empty_batch(tmp: Path) -> tuple[str, str]:
        out = tmp / "out"
        return refused([*SEQUENTIAL[:SEQUENTIAL.index("--train-subset")], "--train-subset", "0", *QUIET,
                        "--out-dir", str(out)], out)

    return [Case("empty data", "trajectory data file with no trajectories", empty_file),
            Case("empty data", "sequential with no training examples", empty_batch)]


# --------------------------------------------------------------------------- separate processes (--full only)
def _process(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "experiments", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def kill_cases() -> list[Case]:
    cases = []
    for kind, base in (("sequential", SEQUENTIAL), ("trajectory", TRAJECTORY)):
        for delay in (4.0, 6.0, 8.0):
            def run(tmp: Path, base=base, delay=delay) -> tuple[str, str]:
                folder = tmp / "run"
                often = ["--checkpoint-every", "1"] if base is SEQUENTIAL else []  # trajectory: every epoch
                argv = [*base, "--epochs", "6", *often, "--out-dir", str(folder)]
                process = _process(argv)
                try:
                    time.sleep(delay)
                finally:
                    process.kill()
                    process.communicate()
                status, err = command([*argv, "--resume"]) if folder.exists() else command(argv)
                if status != 0:
                    return "lost", f"not continued after kill -9 at {delay:g} s: {err.strip()[:160]}"
                done = json.loads((folder / ("metrics.json" if base is SEQUENTIAL else "table.json")).read_text())
                return ("ok", f"continued after kill -9 at {delay:g} s") if done else ("lost", "no results")
            cases.append(Case("kill -9", f"{kind}, killed at {delay:g} s, then --resume", run, seconds=180))

    def together(tmp: Path) -> tuple[str, str]:
        folder = tmp / "run"
        argv = [*SEQUENTIAL, "--epochs", "3", "--out-dir", str(folder)]
        first, second = _process(argv), _process(argv)
        try:
            errors = "".join(process.communicate()[1] for process in (first, second)).strip()
        finally:
            for process in (first, second):
                process.kill()
        codes = sorted([first.returncode, second.returncode])
        if codes != [0, 2]:
            return "wrong", f"exit statuses {codes}"
        status, err = command([*argv, "--resume", "--epochs", "4"])
        return ("ok", errors.splitlines()[-1][:160]) if status == 0 else ("lost", err.strip()[:160])
    cases.append(Case("concurrent runs", "two sequential runs started at once on one folder", together, 180))
    return cases


# ------------------------------------------------------------------------------------------------------ run
def all_cases(full: bool, cache: dict[str, Path]) -> list[Case]:
    cases = (file_cases(cache) + finished_cases(cache) + writer_cases(cache) + flag_cases() + nonfinite_cases()
             + empty_cases())
    return cases + kill_cases() if full else cases


def run_case(case: Case) -> tuple[str, str]:
    """The case's outcome; an exception escaping it (e.g. a result file left unreadable) is a wrong end."""
    with tempfile.TemporaryDirectory(prefix="odernn-fault-") as tmp:
        try:
            with time_limit(case.seconds):
                return case.run(Path(tmp))
        except Hang:
            return "hang", f"no end within {case.seconds:g} s"
        except Exception as error:
            return "wrong", f"{type(error).__name__}: {str(error)[:160]}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true",
                        help="also kill -9 during training and concurrent runs (separate processes; minutes)")
    parser.add_argument("--verbose", action="store_true", help="one line per case")


def run(args: argparse.Namespace) -> int:
    cache: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    failures = 0
    try:
        prepare(cache)
        for case in all_cases(args.full, cache):
            outcome, detail = run_case(case)
            counts.setdefault(case.group, dict.fromkeys(OUTCOMES, 0))[outcome] += 1
            failures += outcome != "ok"
            if args.verbose or outcome != "ok":
                print(f"{outcome:8s} {case.group}: {case.name}: {detail}", flush=True)
    finally:
        for folder in cache.values():
            shutil.rmtree(folder.parent, ignore_errors=True)
    print("| group | cases | " + " | ".join(OUTCOMES) + " |")
    print("|---|---|" + "---|" * len(OUTCOMES))
    for group, row in counts.items():
        print(f"| {group} | {sum(row.values())} | " + " | ".join(str(row[o]) for o in OUTCOMES) + " |")
    total = {o: sum(row[o] for row in counts.values()) for o in OUTCOMES}
    print(f"| all | {sum(total.values())} | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    return 1 if failures else 0
