"""Published tables a trajectory run can be printed beside (``--reference NAME``), in their own units.

A reference gives, per model, the published loss and parameter count, and how its loss relates to ours:
a sum of squared errors over ``horizon x state variables x batch`` where ours is the mean per element, so
``published units = our MSE x horizon x d x batch``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One published table: ``rows[model] = (loss, parameters)`` and the batch its summed loss runs over."""

    title: str
    rows: dict[str, tuple[float, int]]
    summed_batch: int
    note: str

    def scale(self, horizon: int, state_dim: int) -> int:
        """Our per-element MSE -> the table's units: the sum over horizon x state variables x batch."""
        return horizon * state_dim * self.summed_batch


REFERENCES: dict[str, Reference] = {
    # AFRNN paper (Schwabe, Glasmachers and Acosta, ACML 2022), Table 3: "validation loss" of the double
    # pendulum (29 predicted steps x 4 variables x batch 8, summed), hidden units 100 (ARNN 200).
    "afrnn-table3": Reference(
        title="AFRNN paper, Table 3",
        rows={"afrnn": (19.4, 31004), "arnn": (19.8, 44000), "frnn": (25.8, 41004), "arnn2": (33.5, 31004),
              "lstm": (50.3, 123604)},
        summed_batch=8,
        note="Paper: 1000 epochs, the epoch selected on the test set, loss = sum over 29 steps x 4 variables x "
             "batch 8. Ours: per-element MSE on a held-out test set after selecting the epoch on a validation set."),
}
