"""What ``--resume`` may change: the rules, derived from the settings dataclasses, and the check.

A run folder records the whole configuration that defines its run in ``config.json`` (the settings
dataclasses, field by field, and the identity of its data). ``--resume`` continues that run only with the
same configuration. Each field of a settings dataclass carries its rule in its metadata
(``experiments.cli_options.flag(..., resume=RULE)``, or :func:`rule` for a field without a flag):

- ``"same"`` (every field unless marked): must equal the recorded value;
- ``"grow"``: may be raised, never lowered (``epochs``: raising it trains on);
- ``"free"``: does not change what is computed (the device, progress bars, how often to checkpoint).

So the compared set is every field of the dataclasses, and a field added to one is compared without
anyone listing it. A mapping section (the data identity: path and content hash) is compared key by key
under "same". :func:`check_resume` raises :class:`ResumeError` (a ``ValueError``: one line, exit status 2 on
the command line) naming every difference as ``name: saved -> now``; the commands call it before they
write anything into the run folder.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

SAME, GROW, FREE = "same", "grow", "free"
RULES = (SAME, GROW, FREE)
CONFIG_FILE = "config.json"


class ResumeError(ValueError):
    """A run cannot be continued with these settings; the message lists every difference."""


def rule(kind: str) -> dict[str, str]:
    """Field metadata for a field without a flag: its rule on ``--resume``."""
    if kind not in RULES:
        raise ValueError(f"unknown resume rule {kind!r}; known: {', '.join(RULES)}")
    return {"resume": kind}


def normal(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def snapshot(section: Any) -> dict[str, Any]:
    """A dataclass instance or mapping as the JSON-ready dict that ``config.json`` records."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return normal(dataclasses.asdict(section))
    return normal(dict(section))


_NO_DEFAULT = object()


def _items(section: Any) -> list[tuple[str, str, Any, Any]]:
    """(name, rule, JSON value, JSON default or _NO_DEFAULT) of every field of a dataclass instance, or every
    key of a mapping (no defaults)."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return [(f.name, f.metadata.get("resume", SAME), normal(getattr(section, f.name)),
                 _NO_DEFAULT if f.default is dataclasses.MISSING else normal(f.default))
                for f in dataclasses.fields(section)]
    return [(key, SAME, normal(value), _NO_DEFAULT) for key, value in dict(section).items()]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _raised(before: Any, now: Any) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (before, now))
    return numbers and now >= before


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Every ``name: saved -> now`` where the configuration ``now`` breaks a rule against the ``saved`` record.

    ``now`` maps section names to dataclass instances (their fields' rules apply) or mappings (all "same");
    ``saved`` maps the same names to what :func:`snapshot` wrote. Names outside the "settings" section are
    prefixed with their section (``data.path``).
    """
    out = []
    for name, current in now.items():
        recorded = saved.get(name)
        recorded = recorded if isinstance(recorded, Mapping) else {}
        for key, kind, value, default in _items(current):
            label = key if name == "settings" else f"{name}.{key}"
            if kind == FREE:
                continue
            if key not in recorded:  # a setting added after the run was saved is fine at its default (the old
                if value != default:  # behaviour); any other value would change what the run computes
                    out.append(f"{label}: (not recorded) -> {_show(value)}")
                continue
            before = recorded[key]
            if before == value or (kind == GROW and _raised(before, value)):
                continue
            out.append(f"{label}: {_show(before)} -> {_show(value)}" + (" (may only be raised)" if kind == GROW else ""))
    return out


def grown(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The "grow" fields that ``now`` raises over ``saved`` (for a note such as "training on to 20 epochs")."""
    out = []
    for name, current in now.items():
        recorded = saved.get(name) if isinstance(saved.get(name), Mapping) else {}
        for key, kind, value, _ in _items(current):
            if kind == GROW and key in recorded and recorded[key] != value:
                out.append(f"{key}: {_show(recorded[key])} -> {_show(value)}")
    return out


def read_record(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run folder; ResumeError when it is missing or unreadable."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ResumeError(f"cannot resume {folder}: {path} is missing, so the saved run's settings cannot be "
                          f"checked; start a fresh run in another --out-dir")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResumeError(f"cannot resume {folder}: {path} is not readable JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ResumeError(f"cannot resume {folder}: {path} holds a JSON {type(record).__name__}, not a run's settings "
                          f"(an object); it is not this run's file")
    return record


def check_resume(folder: str | Path, now: Mapping[str, Any]) -> list[str]:
    """Refuse (ResumeError) to continue the run in ``folder`` with the configuration ``now`` unless every
    rule holds against its ``config.json``; returns the raised "grow" fields (e.g. ``epochs: 5 -> 10``)."""
    saved = read_record(folder)
    found = differences(saved, now)
    if found:
        raise ResumeError(
            f"cannot resume {folder}: it was made with other settings: {'; '.join(found)}. --resume continues a "
            f"run with the settings it was started with; only --epochs may change, and only upward; use another "
            f"--out-dir for new settings")
    return grown(saved, now)
