"""Models compared over systems, time grids and seeds (``python -m experiments trajectory compare``).

Every cell (system, grid, seed) is an ordinary trajectory run in ``<out-dir>/<system>-<grid>-seed<k>/``
(resumable, with its own table and plots): the seed sets the model initialisation, the batch order and the
train/validation/test split; the trajectories of a system and grid are the same for every seed. The
summary gives, per system, grid and model, the mean and the sample standard deviation over the seeds of the
test MSE and of its ratio to the mean predictor, and the seeds on which the model had the lowest test MSE.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Sequence

GRIDS = ("regular", "irregular")
DEFAULT_SYSTEMS = ("damped-oscillator", "pendulum", "van-der-pol", "double-pendulum")


@dataclass(frozen=True)
class Cell:
    """One run of the comparison."""

    system: str
    grid: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.system}-{self.grid}-seed{self.seed}"


def cells(systems: Sequence[str], grids: Sequence[str], seeds: Sequence[int]) -> list[Cell]:
    """Every (system, grid, seed), systems outermost; refuses empty lists, repeats and unknown grids."""
    for flag, values in (("--systems", systems), ("--grids", grids), ("--seeds", seeds)):
        if not values:
            raise ValueError(f"{flag} needs at least one value")
        if len(set(values)) != len(values):
            raise ValueError(f"{flag} lists a value twice: {' '.join(map(str, values))}")
    unknown = [g for g in grids if g not in GRIDS]
    if unknown:
        raise ValueError(f"unknown grid(s) {', '.join(unknown)}; known: {', '.join(GRIDS)}")
    return [Cell(s, g, k) for s in systems for g in grids for k in seeds]


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: dict[Cell, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per system, grid and model: mean and spread over the seeds, and the seeds it won."""
    groups: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for cell, rows in results.items():
        groups.setdefault((cell.system, cell.grid), {})[cell.seed] = rows
    summary = []
    for (system, grid), by_seed in groups.items():
        winners = {seed: min(rows, key=lambda r: r["test_mse"])["model"] for seed, rows in by_seed.items()}
        models = [r["model"] for r in next(iter(by_seed.values()))]
        for model in models:
            mine = [next(r for r in rows if r["model"] == model) for rows in by_seed.values()]
            mse = [r["test_mse"] for r in mine]
            ratio = [r["test_over_mean_predictor"] for r in mine]
            summary.append({
                "system": system, "grid": grid, "model": model, "parameters": mine[0]["parameters"],
                "seeds": sorted(by_seed), "test_mse_mean": statistics.fmean(mse), "test_mse_std": _spread(mse),
                "over_mean_predictor_mean": statistics.fmean(ratio), "over_mean_predictor_std": _spread(ratio),
                "wins": sorted(seed for seed, winner in winners.items() if winner == model)})
    return summary


def markdown(summary: list[dict[str, Any]]) -> str:
    """The comparison table: mean +- sample std over seeds; the lowest mean of each system and grid in bold."""
    head = "| system | times | model | parameters | test MSE, mean +- std | / mean predictor | lowest on (seeds) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    best = {}
    for row in summary:
        key = (row["system"], row["grid"])
        best[key] = min(best.get(key, float("inf")), row["test_mse_mean"])
    for row in summary:
        mse = f"{row['test_mse_mean']:.4f} +- {row['test_mse_std']:.4f}"
        if row["test_mse_mean"] == best[(row["system"], row["grid"])]:
            mse = f"**{mse}**"
        wins = f"{len(row['wins'])} of {len(row['seeds'])}" + (
            f" ({', '.join(map(str, row['wins']))})" if row["wins"] else "")
        lines.append(f"| {row['system']} | {row['grid']} | {row['model']} | {row['parameters']:,} | {mse} "
                     f"| {row['over_mean_predictor_mean']:.4f} +- {row['over_mean_predictor_std']:.4f} | {wins} |")
    return "\n".join(lines) + "\n"
