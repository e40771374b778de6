"""Command-line flags derived from a settings dataclass: each field ``foo_bar`` becomes ``--foo-bar``.

A field's ``metadata`` may hold ``help`` and extra ``argparse`` keywords (``type``, ``nargs``, ``choices``,
``metavar``); otherwise the type comes from the default (bool fields become ``--x/--no-x``). Flags default
to ``argparse.SUPPRESS``, so :func:`given` returns only what the command line set, and a preset or the
dataclass supplies the rest.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from typing import Any


def flag(help: str, option: str | None = None, **argparse_kwargs: Any) -> dict[str, Any]:
    """Field metadata: the flag's help text, its name if not derived from the field's, argparse keywords."""
    return {"help": help, "option": option, "argparse": argparse_kwargs}


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_arguments(parser: argparse.ArgumentParser | Any, cls: type, title: str | None = None,
                            exclude: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls`` (except ``exclude``), in a group named ``title``."""
    group = parser.add_argument_group(title) if title else parser
    for f in fields(cls):
        if f.name in exclude:
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
        group.add_argument(f.metadata.get("option") or option_name(f.name), dest=f.name, default=argparse.SUPPRESS, help=help_text, **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that the command line set (lists become tuples)."""
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out
