"""``python -m experiments benchmark --family``: each ODE-RNN family model under its paper's discretisation,
forward+backward, against a straight PyTorch transcription of its authors' cell looped over time with
autograd (``experiments.authors_cells``), as their code runs on a CPU; both read the same parameters and the
same batch, and the loss is the squared last output the readout sees. Target: <= 0.5x the
transcription. Sizes and steps are the papers' sMNIST / psMNIST settings (m = 1); ``--T`` and ``--batch`` set
the shapes. A row names the integrator ODERNN chose: a fused scan where the field offers one (coRNN's
``OscillatorForm``), else the generic stepped scan.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from torch import Tensor

from experiments import authors_cells
from odernn import build_rnn

FAMILY: dict[str, tuple[str, float, dict[str, Any], int, Callable]] = {
    # model: (paper's solver, step, field options, hidden size, the authors' cell)
    "cornn": ("symplectic_euler", 0.042, dict(gamma=2.7, epsilon=4.7), 256, authors_cells.cornn),
    "lem": ("partitioned_euler", 0.21, {}, 128, authors_cells.lem),
    "unicornn": ("symplectic_euler", 0.19, dict(alpha=30.65), 256, authors_cells.unicornn),
    "lipschitz": ("euler", 0.03, dict(beta=0.75, gamma=0.001), 128, authors_cells.lipschitz),
}


def chosen(names: Optional[str]) -> list[str]:
    """The models a comma-separated ``names`` picks from :data:`FAMILY` (all of them for None), checked."""
    if names is None:
        return list(FAMILY)
    picked = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in picked if name not in FAMILY]
    if unknown or not picked:
        raise ValueError(f"--family-models must name some of {', '.join(FAMILY)}, got {names!r}")
    return picked


def family_cases(input_size: int, names: Optional[str] = None
                 ) -> list[tuple[str, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]]:
    """(label, ODERNN run, transcription run) per model of ``names`` (:func:`chosen`); each run returns the
    last output the readout sees."""
    cases = []
    for name in chosen(names):
        solver, step, options, hidden, cell = FAMILY[name]
        rnn = build_rnn(name, input_size, hidden, solver=solver, step_size=step, **options)
        label = f"{name} (n {hidden}), {solver}, dt {step:g}: {type(rnn.integrator).__name__}"
        ours = (lambda x, rnn=rnn: rnn(x)[1][..., rnn.readout_slice])
        theirs = (lambda x, rnn=rnn, cell=cell, step=step: cell(x, rnn.field, step)[:, -1])
        cases.append((label, ours, theirs))
    return cases


def family_table(times: dict[str, tuple[float, float]]) -> str:
    lines = ["| model, paper's discretisation: ODERNN's integrator | ODERNN (ms) | authors' cell, autograd (ms) "
             "| ratio (target <= 0.5x) |", "|---|---|---|---|"]
    for label, (ours, theirs) in times.items():
        lines.append(f"| {label} | {1e3 * ours:.0f} | {1e3 * theirs:.0f} | {ours / theirs:.2f}x |")
    return "\n".join(lines) + "\n"
