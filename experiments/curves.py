"""``python -m experiments curves RUN_DIR ...``: learning curves of finished or running training runs.

Reads each run folder's ``metrics.json`` (one row per epoch, written by the shared training loop; runs made
with ``--test-every-epoch`` also carry the test accuracy of every epoch) and prints a markdown table of
validation and test accuracy per epoch with the cumulative training time, and with ``--plot FILE`` draws
accuracy against epoch and against hours of training.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli_options import ERRORS, check_output_file, report_error
from experiments.io import read_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with metrics.json)")
    parser.add_argument("--labels", nargs="+", default=None, help="one label per run (default: folder names)")
    parser.add_argument("--plot", type=Path, default=None, help="write the curves to this PNG")


REQUIRED = ("epoch", "val_accuracy", "epoch_time_s")


def load(run: Path) -> list[dict]:
    path = run / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{run} has no metrics.json (not a training run folder, or no epoch finished yet)")
    history = read_json(path)
    if (not isinstance(history, list) or not history
            or not all(isinstance(row, dict) and all(key in row for key in REQUIRED) for row in history)):
        raise ValueError(f"{path} is not a learning curve: expected a non-empty list of epoch rows with "
                         f"{', '.join(REQUIRED)} (a classification run's metrics.json)")
    return history


def table(histories: dict[str, list[dict]]) -> str:
    lines = ["| run | epoch | hours | val acc. % | test acc. % |", "|---|---|---|---|---|"]
    for label, history in histories.items():
        hours = 0.0
        for row in history:
            hours += row["epoch_time_s"] / 3600
            test = f"{100 * row['test_accuracy']:.1f}" if "test_accuracy" in row else "-"
            lines.append(f"| {label} | {row['epoch']} | {hours:.2f} | {100 * row['val_accuracy']:.1f} | {test} |")
    return "\n".join(lines)


def plot(histories: dict[str, list[dict]], path: Path) -> None:
    from matplotlib.figure import Figure

    from experiments.io import atomic_path

    figure = Figure(figsize=(10, 4))
    by_epoch, by_time = figure.subplots(1, 2)
    for label, history in histories.items():
        key = "test_accuracy" if "test_accuracy" in history[0] else "val_accuracy"
        accuracy = [100 * row[key] for row in history]
        hours, total = [], 0.0
        for row in history:
            total += row["epoch_time_s"] / 3600
            hours.append(total)
        by_epoch.plot([row["epoch"] for row in history], accuracy, marker="o", ms=3, label=f"{label} ({key[:-9]})")
        by_time.plot(hours, accuracy, marker="o", ms=3, label=label)
    by_epoch.set(xlabel="epoch", ylabel="accuracy (%)", title="learning curves")
    by_time.set(xlabel="hours of training (2 shared cores)", ylabel="accuracy (%)", title="same budget")
    for ax in (by_epoch, by_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def run(args: argparse.Namespace) -> int:
    try:
        labels = args.labels or [run.name for run in args.runs]
        if len(labels) != len(args.runs):
            raise ValueError(f"{len(labels)} labels for {len(args.runs)} runs; give one label per run")
        if args.plot:
            check_output_file(args.plot, "--plot")
        histories = {label: load(run) for label, run in zip(labels, args.runs)}
        print(table(histories))
        if args.plot:
            plot(histories, args.plot)
    except ERRORS as exc:
        return report_error(exc)
    return 0
