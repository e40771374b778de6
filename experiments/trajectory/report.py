"""The run's summary: ``table.md`` / ``table.json`` (every model, then the mean-predictor and persistence
rows) and the top-level ``result.json`` (test MSE of every model, both reference predictors, the error per
horizon), written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.io import atomic_write_json, atomic_write_text


def markdown(rows: list[dict[str, Any]], description: str = "") -> str:
    """One line per model and one per reference predictor."""
    head = ("| model | parameters | test MSE | / mean predictor | MSE first / last step | best epoch / epochs "
            "| train time (s) | solver, eps, gamma |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        h = r["horizon"]["mse"]
        solver = f"{r['solver']}, {r['step_size']:g}, {r['gamma']:g}" if r["solver"] else "-"
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['test_mse']:.4f} | {r['test_over_mean_predictor']:.3f} "
                     f"| {h[0]:.4f} / {h[-1]:.4f} | {r['best_epoch']} / {r['epochs']} | {r['train_time_s']:.1f} "
                     f"| {solver} |")
    ref = rows[0]
    for label, key in (("mean predictor", "mean_predictor_mse"), ("persistence (last context state)", "persistence_mse")):
        h = ref["horizon"][key]
        lines.append(f"| {label} | - | {ref[key]:.4f} | {ref[key] / ref['mean_predictor_mse']:.3f} "
                     f"| {h[0]:.4f} / {h[-1]:.4f} | - | - | - |")
    note = f"\n{description}\n" if description else "\n"
    return "\n".join(lines) + "\n" + note


def write(rows: list[dict[str, Any]], out_dir: str | Path, info: dict[str, Any], description: str = "") -> list[Path]:
    """``table.md``, ``table.json`` and ``result.json`` in ``out_dir``."""
    out_dir = Path(out_dir)
    ref = rows[0]
    summary = {
        "test_mse": {r["model"]: r["test_mse"] for r in rows},
        "mean_predictor_mse": ref["mean_predictor_mse"], "persistence_mse": ref["persistence_mse"],
        "test_over_mean_predictor": {r["model"]: r["test_over_mean_predictor"] for r in rows},
        "horizon": {"index": ref["horizon"]["index"], "mean_time_after_context": ref["horizon"]["mean_time_after_context"],
                    **{r["model"]: r["horizon"]["mse"] for r in rows},
                    "mean_predictor": ref["horizon"]["mean_predictor_mse"],
                    "persistence": ref["horizon"]["persistence_mse"]},
        "units": ref["units"], **info,
    }
    paths = [out_dir / "table.md", out_dir / "table.json", out_dir / "result.json"]
    atomic_write_text(markdown(rows, description), paths[0])
    atomic_write_json({"rows": rows, "data": info.get("data", {})}, paths[1])
    atomic_write_json(summary, paths[2])
    return paths
