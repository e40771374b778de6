"""Atomic file output: a file is either absent or complete, never half-written.

Every writer puts the bytes into a temporary file in the destination's folder, flushes it to disk and then
renames it over the destination (``os.replace`` is atomic on POSIX and Windows), so a run killed at any
moment leaves the previous version or the new one, never a partial file. A writer killed between creating
its temporary file and the rename leaves that temporary behind: it is named ``.NAME.<pid>-<random>.tmp``
beside the destination, nothing ever reads it, and :func:`remove_stale_temporaries` (called by the training
loop and by every command before it writes into its output folder) deletes it at the next start, unless the
process named in it is still running.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)

_TEMPORARY = re.compile(r"^\..+\.\d+-[a-z0-9_]{8}\.tmp$")
"""The names ``atomic_path`` gives its temporaries (mkstemp's 8 random characters after ``<pid>-``): the sweep
removes only these, never a user's own ``.draft.tmp``."""
_PID = re.compile(r"\.(\d+)-[^.]*\.tmp$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the finished file gets the usual permissions
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


LOCK = ".lock"
"""The lock file of a run folder being written: the writer's process id."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s lock while writing into it: one writer per folder.

    A lock held by another live process refuses at once (ValueError naming its pid); a lock left by a process
    that no longer runs (killed) is taken over; the same process may take it again (a command's training
    loop inside the command). Created with O_EXCL, so two processes starting together cannot both get it. A
    folder the lock created is removed again if it is still empty when the lock is released (a refused run)."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder == os.getpid():
                yield  # already ours: the outer holder releases it
                return
            if holder and _alive(holder):
                raise ValueError(f"{folder} is being written by another process (pid {holder}); wait for it to "
                                 f"finish or use another --out-dir (a lock left by a killed process is taken over "
                                 f"by the next run)") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if created:  # a run refused after taking the lock leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but belongs to someone else
        return True
    return True


def _writer_alive(name: str) -> bool:
    """True when the temporary's name carries the id of another process that is still running."""
    match = _PID.search(name)
    if match is None:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():  # ours: nothing of ours is being written when a command starts
        return False
    return _alive(pid)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries (``.NAME.*.tmp``) that killed writers left in ``folder`` (not recursive).

    A temporary whose name carries the process id of a live process other than this one is kept (that
    writer may still rename it). Returns the removed paths; a missing folder is not an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if _TEMPORARY.match(entry.name) and entry.is_file() and not _writer_alive(entry.name):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partial file behind."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; a missing, unreadable or malformed file is a ValueError that names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); it "
                         f"may be corrupted or cut short") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint written by :func:`atomic_save` with ``weights_only=True`` (no code runs on load)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: expected a file at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path} is not a readable odernn checkpoint ({type(exc).__name__}: {exc})") from exc
