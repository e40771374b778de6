"""``python -m experiments screen``: a screening sweep over the AntisymmetricRNN paper's search grid.

The paper (App. C) searched eps in {0.01, 0.1, 1}, gamma in {0.001, 0.01, 0.1, 1}, sigma_w in
{0, 1, 2, 4, 8, 16} and the learning rate in {0.1, ..., 1} without saying which point won. A screen trains one
short run per grid point (any subset of the grid, as comma-separated lists) on a seeded subset of a task,
selects on validation accuracy, and writes ``screen.json`` and ``table.md`` (sorted, best first) into
``--out-dir``. Each point is its own run folder, so an interrupted screen resumes where it stopped (points
already finished are read back, not retrained).
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import fields
from pathlib import Path

from experiments.cli_options import ERRORS, check_output_folder, report_error
from experiments.io import atomic_write_json, atomic_write_text, read_json
from experiments.sequential import (DataSettings, RunSettings, add_data_arguments, apply_threads, data_settings,
                                    load_task_from_args, train_and_test)

GRID = {"step_size": (0.01, 0.1, 1.0), "gamma": (0.001, 0.01, 0.1, 1.0), "sigma_w": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0),
        "lr": (0.1, 0.2, 0.5, 1.0)}
"""The paper's grid (App. C); the learning rates are four points of its {0.1, ..., 1}."""


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="fashion")
    parser.add_argument("--model", default="antisymmetric")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--optimizer", default="adagrad")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    for name, values in GRID.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=_floats, default=values, help=f"values to screen (default {values})")
    add_data_arguments(parser)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/screen"))
    parser.add_argument("--no-progress", action="store_true")


SHARED = ("task", "model", "hidden_size", "optimizer", "batch_size", "epochs", "seed",
          *(f.name for f in fields(DataSettings) if f.name != "data_root"))
"""The settings every point of a screen shares (the data's, permutation and noise seeds included, derived from
``DataSettings``): a rerun into the same folder must repeat them, and the data's content hash, since finished
points are read back rather than retrained."""


def _check_same_screen(record: Path, identity: dict) -> None:
    """A screen resumed in its folder must have the settings it started with (points are read back)."""
    if not record.is_file():
        return
    saved = read_json(record)
    saved = saved.get("settings", {}) if isinstance(saved, dict) else {}
    changed = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in identity.items() if saved.get(k) != v]
    if changed:
        raise ValueError(f"{record.parent} holds a screen with other settings ({'; '.join(changed)}); "
                         f"use a new --out-dir")


def run(args: argparse.Namespace) -> int:
    try:
        check_output_folder(args.out_dir)
        identity = {name: getattr(args, name) for name in SHARED}
        _check_same_screen(args.out_dir / "screen.json", identity)
        apply_threads(args)
        task = load_task_from_args(args, args.task)
        identity["data_sha256"] = task.info.get("content_sha256")
        _check_same_screen(args.out_dir / "screen.json", identity)
        points = [dict(zip(GRID, values)) for values in itertools.product(*(getattr(args, name) for name in GRID))]
        planned = [RunSettings(task=args.task, model=args.model, hidden_size=args.hidden_size, optimizer=args.optimizer,
                               batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, **point)
                   for point in points]  # every point's settings checked before anything is written
        if not (args.out_dir / "screen.json").is_file():  # the identity is on disk before the first point trains
            atomic_write_json({"settings": identity, "rows": []}, args.out_dir / "screen.json")
        rows = []
        for i, (point, settings) in enumerate(zip(points, planned)):
            name = "-".join(f"{k}{v:g}" for k, v in point.items())
            run_dir = args.out_dir / name
            if (run_dir / "results.json").is_file():
                row = read_json(run_dir / "results.json")
            else:
                print(f"[{i + 1}/{len(points)}] {name}", flush=True)
                try:  # a point killed mid-training left its checkpoint: continue it
                    row, _, _ = train_and_test(settings, task, run_dir, progress=not args.no_progress,
                                               stability_check="off", resume=(run_dir / "checkpoint.pt").is_file(),
                                               data=data_settings(args))
                except FloatingPointError as exc:  # a diverging grid point is a result, not a failure
                    row = {"val_accuracy": 0.0, "test_accuracy": 0.0, "diverged": str(exc).splitlines()[0]}
                    atomic_write_json(row, run_dir / "results.json")
            rows.append({**point, "val_accuracy": row["val_accuracy"], "test_accuracy": row["test_accuracy"],
                         "diverged": row.get("diverged", "")})
        rows.sort(key=lambda r: -r["val_accuracy"])
        atomic_write_json({"settings": identity, "rows": rows}, args.out_dir / "screen.json")
        head = (f"screen of {args.model} on {args.task} ({args.train_subset or 'all'} training sequences, "
                f"{args.epochs} epoch(s), {args.optimizer}, batch {args.batch_size}); best first, selected on "
                f"validation\n\n| eps | gamma | sigma_w | lr | val acc. % | test acc. % |\n|---|---|---|---|---|---|\n")
        lines = [f"| {r['step_size']:g} | {r['gamma']:g} | {r['sigma_w']:g} | {r['lr']:g} | "
                 f"{100 * r['val_accuracy']:.1f} | {100 * r['test_accuracy']:.1f}"
                 + (" (diverged)" if r["diverged"] else "") + " |" for r in rows]
        atomic_write_text(head + "\n".join(lines) + "\n", args.out_dir / "table.md")
        print(head + "\n".join(lines[:10]))
    except ERRORS as exc:
        return report_error(exc)
    return 0
