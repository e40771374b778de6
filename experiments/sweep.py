"""``python -m experiments sweep``: one task across solvers and models.

Every (model, solver) pair is trained with the same settings through :func:`experiments.sequential.train_and_test`
(its own run folder ``<out-dir>/<model>-<solver>/``, so ``--resume`` continues an interrupted sweep), then
measured on a batch of test sequences: function evaluations of the vector field per sequence (the solver's
``SolveStats.nfe`` for one forward pass; adaptive solvers step the whole batch together, so theirs depends on
the batch), Newton iterations per sequence for the implicit methods (``SolveStats.n_newton``: the rows of
the batch iterate together until all have converged, so like NFE it is a count for the batch's forward pass;
0 for explicit methods) and the stability check of :func:`odernn.stability.check_stability` (are step *
eigenvalues of the field's Jacobian along the trajectory inside the solver's stability region? max Re lambda
> 0 means the continuous field itself grows there, so no step size helps). The table (test accuracy, NFE and
Newton iterations per sequence, mean seconds per training epoch, stability verdict) is written as
``sweep.md``, ``sweep.json`` and ``sweep.csv`` and printed; ``sweep.json`` also holds the Jacobian
evaluations per sequence.
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import torch

import solvers
from experiments.data import TASKS, SequenceTask
from experiments.cli_options import ERRORS, check_output_folder, given, report_error
from experiments.io import atomic_write_json, atomic_write_text, remove_stale_temporaries
from experiments.sequential import (BASELINES, RunSettings, add_data_arguments, add_model_arguments, apply_threads,
                                    data_settings, load_task_from_args, prepare_run, train_and_test)
from odernn.stability import check_stability

DEFAULT_SOLVERS = ("euler", "midpoint", "rk4", "dopri5")
DEFAULT_MODELS = ("antisymmetric", "gated", "afrnn")
COLUMNS = ("model", "solver", "parameters", "test_accuracy", "nfe_per_sequence", "newton_per_sequence",
           "epoch_time_s", "stable", "max_amplification", "fraction_outside", "max_real_eig")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def measure(model: torch.nn.Module, task: SequenceTask, n_sequences: int, seed: int, device: str) -> dict[str, Any]:
    """NFE, Newton iterations and Jacobian evaluations per sequence (one forward pass of the first
    ``n_sequences`` test sequences together) and the stability check on them."""
    x = task.test.tensors[0][:n_sequences]
    if task.batch_transform is not None:
        x = task.batch_transform(x, torch.Generator().manual_seed(seed))
    rnn = model.rnn
    x = x.to(device)
    with torch.no_grad():
        rnn(x)
    if not hasattr(rnn, "last_stats"):  # torch baselines: no solver, no region
        return {"nfe_per_sequence": "", "newton_per_sequence": "", "jacobians_per_sequence": "", "stable": "",
                "max_amplification": "", "fraction_outside": "", "max_real_eig": ""}
    stats = rnn.last_stats
    report = check_stability(rnn, x)
    return {"nfe_per_sequence": stats.nfe, "newton_per_sequence": stats.n_newton,
            "jacobians_per_sequence": stats.n_jacobians, "stable": report.stable,
            "max_amplification": report.max_amplification, "fraction_outside": report.fraction_outside,
            "max_real_eig": report.max_real_eig}


def _solvers_where(rows: list[dict], capability: str) -> list[str]:
    """The solvers of the table's rows whose method has ``capability`` ("adaptive", "implicit"; sorted, each
    once)."""
    return sorted({row["solver"] for row in rows
                   if row["solver"] and getattr(solvers.get_method(row["solver"]), capability)})


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The sweep as a markdown table (accuracy in %, times in seconds)."""
    def cell(key: str, value: Any) -> str:
        if value == "":
            return "-"
        if key == "test_accuracy":
            return f"{100 * value:.1f}"
        if key == "stable":
            return "inside" if value else "OUTSIDE"
        if key == "max_amplification":
            return f"{value:.6f}"
        if key == "max_real_eig":
            return f"{value:.3g}"
        if key == "fraction_outside":
            return f"{100 * value:.2f}%"
        if key == "epoch_time_s":
            return f"{value:.2f}"
        return str(value)

    header = ("model", "solver", "params", "test acc. %", "NFE / sequence", "Newton / sequence", "s / epoch",
              "stability region", "max abs R(z)", "outside", "max Re lambda")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(k, row[k]) for k in COLUMNS) + " |" for row in rows]
    adaptive = _solvers_where(rows, "adaptive")
    if adaptive:
        lines += ["", f"Adaptive solvers ({', '.join(adaptive)}): NFE counts accepted and rejected steps; the "
                  "stability check uses the nominal step (one per input sample), which their controller shrinks "
                  "where the error estimate demands it."]
    implicit = _solvers_where(rows, "implicit")
    if implicit:
        lines += ["", f"Implicit solvers ({', '.join(implicit)}): Newton / sequence counts the iterations of one "
                  "forward pass (each one linear solve with the stage Jacobian; the rows of the batch iterate "
                  "together); the stability region is that of the rational R(z)."]
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    return buf.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="digits", help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--solvers", type=_names, default=DEFAULT_SOLVERS, help="comma-separated solver names")
    parser.add_argument("--models", type=_names, default=DEFAULT_MODELS, help="comma-separated model names")
    parser.add_argument("--check-sequences", type=int, default=16,
                        help="test sequences used for the NFE count and the stability check")
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--out-dir", type=Path, default=None, help="sweep folder (default runs/sweep/<task>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue runs whose folders hold a checkpoint (with the settings they were started with; "
                             "--epochs may be raised)")


def _settings(args: argparse.Namespace, model: str, solver: str) -> RunSettings:
    flags = {k: v for k, v in given(args, RunSettings).items() if k not in ("task", "model", "solver") and v is not None}
    return RunSettings(task=args.task, model=model, solver=solver, **flags)


def run(args: argparse.Namespace) -> int:
    try:
        if args.check_sequences < 1:
            raise ValueError(f"--check-sequences must be positive, got {args.check_sequences}")
        pairs = [(m, s) for m in args.models for s in (("",) if m in BASELINES else args.solvers)]
        plans = {(m, s): _settings(args, m, s or "euler") for m, s in pairs}  # validates every name first
        out_dir = args.out_dir or Path("runs") / "sweep" / args.task
        check_output_folder(out_dir)
        apply_threads(args)
        task = load_task_from_args(args, args.task)
        data = data_settings(args)
        prepared = {}
        for (model_name, solver), settings in plans.items():  # every run's checks before anything is written
            run_dir = out_dir / (f"{model_name}-{solver}" if solver else model_name)
            resume = args.resume and (run_dir / "checkpoint.pt").is_file()
            prepared[model_name, solver] = prepare_run(settings, task, run_dir, resume=resume,
                                                       progress=not args.no_progress, data=data)
        rows = []
        for (model_name, solver), settings in plans.items():
            run = prepared[model_name, solver]
            result, model, _ = train_and_test(settings, task, run.out_dir, prepared=run, progress=not args.no_progress)
            row = {"model": model_name, "solver": solver, "parameters": result["parameters"],
                   "test_accuracy": result["test_accuracy"], "epoch_time_s": result["mean_epoch_time_s"],
                   **measure(model, task, args.check_sequences, settings.seed, settings.device)}
            rows.append(row)
            print(markdown_table(rows[-1:]).splitlines()[2], flush=True)  # the row, not the notes under it
    except ERRORS as exc:
        return report_error(exc)
    table = markdown_table(rows)
    remove_stale_temporaries(out_dir)
    atomic_write_text(table, out_dir / "sweep.md")
    atomic_write_json({"task": args.task, "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
                       "rows": rows}, out_dir / "sweep.json")
    atomic_write_text(_csv(rows), out_dir / "sweep.csv")
    print(table)
    return 0
