"""What every ``python -m experiments`` command shares on its command line, declared once.

- **Flags derived from settings dataclasses**: :func:`flag` (field metadata), :func:`add_dataclass_arguments`
  (one ``--foo-bar`` per field ``foo_bar``) and :func:`given` (what the command line set).
- **Solver options**: :class:`SolverOptions` (``--rtol``, ``--atol``, ``--max-steps`` of the adaptive
  solvers), passed to every :class:`odernn.ODERNN` a command builds (:meth:`SolverOptions.configure`).
- **Threads and devices**: :func:`positive_int`, :func:`add_threads_argument`, :func:`check_device`.
- **Output locations**: :func:`check_output_folder` and :func:`check_output_file` refuse a folder that is a
  file or cannot be written to, before any work.
- **Errors**: every failure a user can cause ends in one line on stderr and exit status 2
  (:data:`ERRORS`, :func:`report_error`, :class:`OneLineArgumentParser`).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odernn.integrators import Settings
from solvers import StepController, StepFailure, StiffnessError


# ---- flags derived from dataclasses ----------------------------------------------------------------------

def flag(help: str, option: str | None = None, resume: str = "same", **argparse_kwargs: Any) -> dict[str, Any]:
    """Field metadata: the flag's help text, its name if not derived from the field's, the field's rule on
    ``--resume`` (:mod:`experiments.resume`: "same", "grow" or "free"), argparse keywords."""
    return {"help": help, "option": option, "resume": resume, "argparse": argparse_kwargs}


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_arguments(parser: argparse.ArgumentParser | Any, cls: type, title: str | None = None,
                            exclude: tuple[str, ...] = (), defaults: bool = False) -> None:
    """One flag per field of ``cls`` (except ``exclude``), in a group named ``title``.

    A field's ``metadata`` may hold ``help`` and extra ``argparse`` keywords (``type``, ``nargs``, ``choices``,
    ``metavar``); otherwise the type comes from the default (bool fields become ``--x/--no-x``). Flags default
    to ``argparse.SUPPRESS``, so :func:`given` returns only what the command line set, and a preset or the
    dataclass supplies the rest; ``defaults=True`` gives every flag its field's default instead.
    """
    group = parser.add_argument_group(title) if title else parser
    for f in fields(cls):
        if f.name in exclude or "help" not in f.metadata:
            continue
        default = _default(f)
        kwargs: dict[str, Any] = dict(f.metadata.get("argparse", {}))
        help_text = f.metadata.get("help", "")
        if default not in (None, ()) and "default" not in help_text:
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            help_text = f"{help_text} (default: {shown})".strip()
        if isinstance(default, bool) and "type" not in kwargs:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif "type" not in kwargs and "action" not in kwargs and default is not None:
            kwargs["type"] = type(default[0]) if isinstance(default, tuple) and default else type(default)
        group.add_argument(f.metadata.get("option") or option_name(f.name), dest=f.name,
                           default=default if defaults else argparse.SUPPRESS, help=help_text, **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that the command line set (lists become tuples)."""
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


# ---- solver options --------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SolverOptions:
    """The adaptive solvers' options of every ODE model a command builds (fixed-step methods ignore them).

    Settings dataclasses of the training commands inherit these fields, so their flags, presets and resume
    checks include them. The defaults are ODERNN's (``odernn.integrators.Settings``).
    """

    rtol: float = field(default=Settings.rtol, metadata=flag(
        "relative tolerance of adaptive model solvers (dopri5, bosh3, adaptive_heun); fixed-step solvers ignore it"))
    atol: float = field(default=Settings.atol, metadata=flag("absolute tolerance of adaptive model solvers"))
    max_steps: int = field(default=Settings.max_steps, metadata=flag(
        "step attempts an adaptive model solve may take before it stops with an error"))

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        StepController(rtol=self.rtol, atol=self.atol, max_steps=self.max_steps)  # the controller's own rules

    @property
    def solver_options(self) -> dict[str, Any]:
        """``{"rtol", "atol", "max_steps"}`` as keywords (for ``odernn.ODERNN`` and ``ODERNN.configure``)."""
        return {f.name: getattr(self, f.name) for f in fields(SolverOptions)}

    def configure(self, model: nn.Module) -> nn.Module:
        """Set these options on every :class:`odernn.ODERNN` inside ``model``; returns ``model``."""
        from odernn import ODERNN

        for module in model.modules():
            if isinstance(module, ODERNN):
                module.configure(**self.solver_options)
        return model


def add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rtol``, ``--atol``, ``--max-steps`` (read back with ``SolverOptions(**given(args, SolverOptions))``)."""
    add_dataclass_arguments(parser, SolverOptions, "adaptive model solvers")


def solver_options(args: argparse.Namespace) -> SolverOptions:
    return SolverOptions(**given(args, SolverOptions))


# ---- threads and devices ---------------------------------------------------------------------------------

def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser, default: int | None, why: str = "") -> None:
    shown = "torch's choice" if default is None else str(default)
    parser.add_argument("--threads", type=positive_int, default=default,
                        help=f"torch intra-op threads, >= 1 (default {shown}{': ' + why if why else ''})")


def check_device(device: str) -> str:
    """``device`` if torch knows it and it is available here; ValueError naming what is allowed otherwise."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    return device


# ---- output locations ------------------------------------------------------------------------------------

def _can_create_in(folder: Path) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:  # access() says yes to root everywhere; a probe file tells the truth (read-only mounts, /proc)
        fd, probe = tempfile.mkstemp(prefix=".odernn-write-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (the folder a new file or folder would be made in)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(path: str | os.PathLike, flag_name: str = "--out-dir") -> Path:
    """Refuse an output folder that is a file, lies under a file, or cannot be written to (ValueError)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag_name} {path} is a file; give a folder (it is created if missing)")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(f"{flag_name} {path} cannot be created: {existing} is a file")
    if not _can_create_in(existing):
        raise ValueError(f"{flag_name} {path} is not writable (no new files can be made in {existing}); "
                         f"choose a folder you can write to")
    return path


def check_output_file(path: str | os.PathLike, flag_name: str = "--out") -> Path:
    """Refuse an output file that is a folder or whose folder cannot be made or written to (ValueError)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag_name} {path} is a folder; give a file name")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise ValueError(f"{flag_name} {path} cannot be written: {existing} is a file, not a folder")
    if not _can_create_in(existing):
        raise ValueError(f"{flag_name} {path} cannot be written: no new files can be made in {existing}; "
                         f"choose a folder you can write to")
    return path


# ---- errors ----------------------------------------------------------------------------------------------

def _unstable() -> type[Exception]:
    from odernn.stability import UnstableDiscretisationError

    return UnstableDiscretisationError


# Failures a user can cause (bad settings or data, a diverging or unstable run, a missing optional package, a
# file system that refuses): one line on stderr and exit status 2. ValueError covers the settings checks,
# FileNotFoundError missing data, FloatingPointError a diverging run, StepFailure / StiffnessError a solve
# that cannot go on, UnstableDiscretisationError ``--stability-check raise``.
ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError, ImportError, StepFailure,
                                           StiffnessError, _unstable())


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (whitespace runs, newlines included, become one space)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ImportError) and "pip install" not in text:
        text = (f"a package this command needs is missing ({text or type(exc).__name__}); install it (optional "
                f"data packages: pip install 'odernn[data]') and run again")
    elif isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    return text or type(exc).__name__


def report_error(exc: BaseException) -> int:
    """Print ``error: <message>`` as one line on stderr; return the exit status 2."""
    print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
    return 2


class OneLineArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line on stderr (``<prog>: error: ... (see <prog> --help)``) and exit
    status 2; its sub-parsers are of the same class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")
