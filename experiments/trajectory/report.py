"""The run's summary: ``table.md`` / ``table.json`` (every model, then the mean-predictor and persistence
rows, and, with ``--reference``, our test error beside a published table in its units) and the top-level
``result.json`` (test MSE of every model, both reference predictors, the error per horizon), written
atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.io import atomic_write_json, atomic_write_text
from experiments.trajectory.references import Reference


def _mse(value: float) -> str:
    """Four decimals, or three significant digits below 0.001 (one-step errors are that small)."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"


def _ratio(value: float) -> str:
    return f"{value:.3f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"


def markdown(rows: list[dict[str, Any]], description: str = "") -> str:
    """One line per model and one per reference predictor."""
    head = ("| model | parameters | test MSE | / mean predictor | MSE first / last step | best epoch / epochs "
            "| train time (s) | solver, eps, gamma |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        h = r["horizon"]["mse"]
        solver = f"{r['solver']}, {r['step_size']:g}, {r['gamma']:g}" if r["solver"] else "-"
        lines.append(f"| {r['model']} | {r['parameters']:,} | {_mse(r['test_mse'])} "
                     f"| {_ratio(r['test_over_mean_predictor'])} | {_mse(h[0])} / {_mse(h[-1])} "
                     f"| {r['best_epoch']} / {r['epochs']} | {r['train_time_s']:.1f} | {solver} |")
    ref = rows[0]
    held = "previous observation" if ref.get("settings", {}).get("objective") == "one-step" else "last context state"
    for label, key in (("mean predictor", "mean_predictor_mse"), (f"persistence ({held})", "persistence_mse")):
        h = ref["horizon"][key]
        lines.append(f"| {label} | - | {_mse(ref[key])} | {_ratio(ref[key] / ref['mean_predictor_mse'])} "
                     f"| {_mse(h[0])} / {_mse(h[-1])} | - | - | - |")
    note = f"\n{description}\n" if description else "\n"
    return "\n".join(lines) + "\n" + note


def published(rows: list[dict[str, Any]], reference: Reference, scale: int) -> list[dict[str, Any]]:
    """Our test error in the published table's units beside its loss and size, for the models it lists."""
    return [{"model": r["model"], "test_mse": r["test_mse"], "ours_in_table_units": r["test_mse"] * scale,
             "published": reference.rows[r["model"]][0], "parameters": r["parameters"],
             "published_parameters": reference.rows[r["model"]][1]}
            for r in rows if r["model"] in reference.rows]


def reference_markdown(rows: list[dict[str, Any]], reference: Reference, scale: int) -> str:
    """A second table: ours (test MSE per element, and x ``scale`` in the table's units) beside the paper's."""
    head = (f"| model | test MSE / element | ours in the table's units (x{scale}) | {reference.title} "
            f"| parameters (published) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in published(rows, reference, scale):
        lines.append(f"| {c['model']} | {c['test_mse']:.4f} | {c['ours_in_table_units']:.1f} | {c['published']:.1f} "
                     f"| {c['parameters']:,} ({c['published_parameters']:,}) |")
    return "\n".join(lines) + f"\n\n{reference.note}\n"


def write(rows: list[dict[str, Any]], out_dir: str | Path, info: dict[str, Any], description: str = "",
          reference: Reference | None = None, scale: int = 1) -> list[Path]:
    """``table.md``, ``table.json`` and ``result.json`` in ``out_dir`` (with ``reference``: our errors x
    ``scale`` beside the published table's)."""
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
    text = markdown(rows, description)
    if reference is not None:
        summary["published"] = {"title": reference.title, "scale": scale, "rows": published(rows, reference, scale)}
        text += "\n" + reference_markdown(rows, reference, scale)
    paths = [out_dir / "table.md", out_dir / "table.json", out_dir / "result.json"]
    atomic_write_text(text, paths[0])
    atomic_write_json({"rows": rows, "data": info.get("data", {})}, paths[1])
    atomic_write_json(summary, paths[2])
    return paths
