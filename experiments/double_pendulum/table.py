"""Results table: our test loss per model beside the AFRNN paper's Table 3, as markdown and JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments.io import atomic_write_json, atomic_write_text

MODEL_ORDER = ("afrnn", "arnn", "frnn", "arnn2", "lstm")
LABELS = {"afrnn": "AFRNN", "arnn": "ARNN", "frnn": "FRNN", "arnn2": "2-ARNN", "lstm": "LSTM"}
# AFRNN paper, Table 3: "validation loss" (a sum over 29 steps x 4 variables x batch 8), hidden units, parameters.
PAPER_TABLE3: dict[str, dict[str, float]] = {
    "afrnn": {"loss": 19.4, "hidden": 100, "parameters": 31004},
    "arnn": {"loss": 19.8, "hidden": 200, "parameters": 44000},
    "frnn": {"loss": 25.8, "hidden": 100, "parameters": 41004},
    "arnn2": {"loss": 33.5, "hidden": 100, "parameters": 31004},
    "lstm": {"loss": 50.3, "hidden": 100, "parameters": 123604},
}
RESULT_FILE = "result.json"


def collect(runs_dir: str | Path) -> list[dict[str, Any]]:
    """The ``result.json`` of every model run under ``runs_dir`` (one sub-folder per model), paper order."""
    runs_dir = Path(runs_dir)
    rows = {}
    for path in sorted(runs_dir.glob(f"*/{RESULT_FILE}")):
        row = json.loads(path.read_text(encoding="utf-8"))
        rows[row["model"]] = row
    if not rows:
        raise ValueError(f"no results under {runs_dir}: expected {runs_dir}/<model>/{RESULT_FILE} written by "
                         f"`python -m experiments double-pendulum train --out {runs_dir}`")
    return [rows[m] for m in (*MODEL_ORDER, *sorted(set(rows) - set(MODEL_ORDER))) if m in rows]


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per model: ours (test, selected on validation) and the paper's Table 3 loss and size."""
    head = ("| model | test MSE / element | test loss (paper units, x928) | paper Table 3 loss | parameters "
            "| paper parameters | best epoch / epochs | train time (s) | solver, eps, gamma, h0 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        paper = PAPER_TABLE3.get(r["model"], {})
        solver = r["solver"] + (f" ({r['discretisation']})" if r.get("discretisation") else "")
        lines.append(
            f"| {LABELS.get(r['model'], r['model'])} | {r['test_mse']:.4f} | {r['test_paper_units']:.1f} "
            f"| {paper.get('loss', float('nan')):.1f} | {r['parameters']:,} | {int(paper.get('parameters', 0)):,} "
            f"| {r['best_epoch']} / {r['epochs']} | {r['train_time_s']:.0f} "
            f"| {solver}, {r['step_size']:g}, {r['gamma']:g}, {r['h0']} |")
    note = ("\nPaper: 1000 epochs, selected on the test set, loss = sum over 29 x 4 x 8. Ours: per-element "
            "MSE on a held-out test set after selecting the epoch on a validation set; paper units = MSE x 928.\n")
    return "\n".join(lines) + "\n" + note


def write(rows: list[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``table.md`` and ``table.json`` (ours and the paper's numbers) into ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    md, js = out_dir / "table.md", out_dir / "table.json"
    atomic_write_text(markdown(rows), md)
    atomic_write_json({"ours": rows, "paper_table3": PAPER_TABLE3}, js)
    return md, js
