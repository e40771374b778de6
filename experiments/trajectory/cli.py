"""``python -m experiments trajectory``: predict the rest of each trajectory from its first observation(s).

    python -m experiments trajectory --system NAME [options]     built-in ODE system, ground truth by solvers.odeint
    python -m experiments trajectory --data FILE [options]       your trajectories (.npz or .csv)
    python -m experiments trajectory demo                        the demo (= --preset demo)
    python -m experiments trajectory make-data --system NAME --out FILE [--irregular ...]
    python -m experiments trajectory energy [--system double-pendulum] [--t-end 100 ...]   energy conservation
    python -m experiments trajectory compare --models neural-ode lstm [--systems ...] [--seeds 0 1 2]

Every model of ``--models`` is trained with the shared loop into ``<out-dir>/<model>/`` (checkpoints,
metrics, ``result.json``); then ``<out-dir>`` gets ``table.md``, ``table.json``, ``result.json``, the
plots, the trajectories used (``trajectories.npz``) and ``config.json``. Bad settings or data: one line
on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.cli_options import (ERRORS, add_threads_argument, check_output_file, check_output_folder,
                                     positive_int, report_error)
from experiments.io import atomic_write_json, atomic_write_text, load_checkpoint, remove_stale_temporaries
from experiments.resume import CONFIG_FILE, check_resume
from experiments.stability_gate import add_stability_argument
from experiments.trajectory import compare as cmp
from experiments.trajectory import energy as en
from experiments.trajectory import plots, report
from experiments.trajectory.data import FORMATS, Trajectories, load_trajectories, save_trajectories
from experiments.trajectory.flags import add_dataclass_arguments, given, option_name
from experiments.trajectory.model import build_predictor
from experiments.trajectory.references import REFERENCES
from experiments.trajectory.settings import PRESETS, TaskSettings
from experiments.trajectory.simulate import SimulationSettings, check_against_scipy, generate, param_pair
from experiments.trajectory.systems import SYSTEMS, get_system
from experiments.trajectory.task import PreparedTask, prepare
from experiments.trajectory.train import train_model
from experiments.training import check_resumable, check_run_folder

RUNS = Path("runs/trajectory")
DEMO_OUT = Path("runs/trajectory_demo")
ENERGY_OUT = Path("runs/energy")
COMPARE_OUT = Path("runs/trajectory_compare")
CHECKPOINT = "checkpoint.pt"
N_PLOTTED = 3


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_threads_argument(p, 1, "small recurrent models run fastest on one")


def _add_plots_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-plots", dest="plots", action="store_false",
                   help="write the tables, results and checkpoints but no figures")


def _add_run_options(p: argparse.ArgumentParser, demo: bool = False) -> None:
    default = DEMO_OUT if demo else None
    p.add_argument("--out-dir", type=Path, default=default,
                   help=f"run folder (default {DEMO_OUT if demo else RUNS / '<system or data file name>'})")
    if not demo:
        p.add_argument("--resume", action="store_true",
                       help="continue the models' runs from their checkpoints; only with the same trajectories and "
                            "settings (--epochs may be raised to train on)")
    add_stability_argument(p)
    _add_plots_option(p)
    _add_common(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{demo,make-data,energy,compare}")
    demo = sub.add_parser("demo", help="the demo: the papers' six ODE models and an LSTM on the pendulum, table and "
                          "plots (~25 s on 2 cores; a rerun reuses the finished runs)",
                          description="--preset demo into runs/trajectory_demo; a rerun reuses finished runs")
    _add_run_options(demo, demo=True)
    make = sub.add_parser("make-data", help="generate trajectories of a built-in system into a .npz or .csv file",
                          description="ground truth of a built-in system, saved for --data")
    add_dataclass_arguments(make, SimulationSettings, "data")
    make.add_argument("--out", type=Path, required=True, help="output file: .npz or .csv")
    make.add_argument("--check", type=int, default=0, metavar="K",
                      help="also compare K trajectories with scipy's DOP853 at rtol = atol = 1e-12 (default 0: skip)")
    _add_common(make)

    energy = sub.add_parser("energy", help="energy error of a conservative system over a long horizon: fixed-step "
                            "(symplectic) against adaptive solvers, table and plot",
                            description="long-horizon energy conservation under fixed-step and adaptive solvers")
    _add_energy(energy)
    _add_common(energy)

    compare = sub.add_parser("compare", help="models over systems, regular and irregular times and seeds: mean and "
                             "spread per system (every cell an ordinary run; a rerun continues)",
                             description="models compared over systems, time grids and seeds")
    compare.add_argument("--systems", nargs="+", default=list(cmp.DEFAULT_SYSTEMS), choices=tuple(SYSTEMS),
                         metavar="SYSTEM", help=f"built-in systems (default: {' '.join(cmp.DEFAULT_SYSTEMS)})")
    compare.add_argument("--grids", nargs="+", default=list(cmp.GRIDS), metavar="GRID",
                         help="regular and/or irregular observation times (default: both)")
    compare.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                         help="each sets the model initialisation, batch order and split (default: 0 1 2)")
    compare.add_argument("--preset", choices=tuple(PRESETS), default=None,
                         help="named settings; explicit flags override them")
    add_dataclass_arguments(compare, SimulationSettings, "generated data", exclude=("system", "irregular"))
    add_dataclass_arguments(compare, TaskSettings, "task, models and training", exclude=("seed", "split_seed"))
    compare.add_argument("--out-dir", type=Path, default=COMPARE_OUT, help=f"folder of the cells and the summary "
                         f"(default {COMPARE_OUT})")
    add_stability_argument(compare)
    _add_plots_option(compare)
    _add_common(compare)

    parser.add_argument("--data", type=Path, default=None, help="your trajectories: a .npz or .csv file "
                        "(see the README); instead of --system")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="named settings; explicit flags override them")
    add_dataclass_arguments(parser, SimulationSettings, "generated data (instead of --data)")
    add_dataclass_arguments(parser, TaskSettings, "task, models and training")
    _add_run_options(parser)


def _add_energy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", default=en.DEFAULT_SYSTEM, choices=tuple(SYSTEMS),
                   help=f"a system with a conserved energy (default {en.DEFAULT_SYSTEM})")
    p.add_argument("--param", dest="params", type=param_pair, action="append", default=[], metavar="NAME=VALUE",
                   help="a system parameter (repeatable)")
    p.add_argument("--n", type=positive_int, default=8, help="trajectories (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial conditions (default 0)")
    p.add_argument("--t-end", type=float, default=100.0, help="horizon (default 100)")
    p.add_argument("--sample-every", type=float, default=0.1, help="output spacing (default 0.1)")
    p.add_argument("--fixed-solvers", nargs="*", default=list(en.DEFAULT_FIXED), metavar="SOLVER",
                   help=f"fixed-step explicit or implicit methods run at --step-size "
                        f"(default: {' '.join(en.DEFAULT_FIXED)})")
    p.add_argument("--step-size", type=float, default=0.02, help="their step (default 0.02)")
    p.add_argument("--adaptive-solvers", nargs="*", default=list(en.DEFAULT_ADAPTIVE), metavar="SOLVER",
                   help=f"adaptive methods run at each of --tolerances (default: {' '.join(en.DEFAULT_ADAPTIVE)})")
    p.add_argument("--tolerances", type=float, nargs="*", default=list(en.DEFAULT_TOLERANCES), metavar="TOL",
                   help="rtol = atol of the adaptive solves (default: 1e-6 1e-9)")
    p.add_argument("--checkpoints", type=float, nargs="+", default=list(en.DEFAULT_CHECKPOINTS), metavar="T",
                   help="times up to which the table gives the max error (default: 1 10 100)")
    p.add_argument("--out-dir", type=Path, default=ENERGY_OUT, help=f"run folder (default {ENERGY_OUT})")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    try:
        if args.action == "make-data":
            _make_data(args)
        elif args.action == "energy":
            _energy(args)
        elif args.action == "compare":
            _compare(args)
        elif args.action == "demo":
            _train(args, preset="demo", reuse=True)
        else:
            _train(args, preset=args.preset)
    except ERRORS as exc:  # bad settings or data, a diverging run, an output folder that cannot be written
        return report_error(exc)
    return 0


def _make_data(args: argparse.Namespace) -> Trajectories:
    settings = SimulationSettings(**given(args, SimulationSettings))
    if args.out.suffix.lower() not in FORMATS:
        raise ValueError(f"{args.out}: unknown format {args.out.suffix or '(no extension)'!r}; use one of "
                         f"{', '.join(FORMATS)}")
    check_output_file(args.out)
    traj = generate(settings, progress=args.progress)
    save_trajectories(traj, args.out)
    m = traj.metadata
    tol = f"rtol={m['rtol']:g}, atol={m['atol']:g}" if m["rtol"] is not None else f"step {m['step_size']:g}"
    grid = (f"irregular times (gaps uniform in [{1 - settings.jitter:g}, {1 + settings.jitter:g}] x dt)"
            if settings.irregular else "a uniform grid")
    print(f"{settings.system}: {traj.n} trajectories x {traj.length} observations, dt {m['dt']:g}, {grid}; "
          f"{m['solver']} ({tol}), one batched solve: {m['solve_seconds']:.2f} s, {m['nfe']} evaluations of f"
          f"{', %d stage iterations' % m['stage_iterations'] if m['stage_iterations'] else ''}; "
          f"wrote {args.out}")
    system = settings.build_system()
    if en.conserves_energy(system):
        drift = en.relative_energy_error(system, torch.as_tensor(traj.states)).max()
        print(f"max relative energy drift over the trajectories: {drift:.1e}")
    if args.check > 0:
        start = time.perf_counter()
        err = check_against_scipy(system, traj, args.check)
        print(f"max |ours - scipy DOP853 (rtol=atol=1e-12)| over {min(args.check, traj.n)} trajectories: {err:.1e} "
              f"({time.perf_counter() - start:.2f} s)")
    return traj


def _energy(args: argparse.Namespace) -> None:
    """Energy error of ``--n`` trajectories up to ``--t-end``: table (markdown + JSON) and plot in ``--out-dir``."""
    system = get_system(args.system, **dict(args.params))
    settings = dict(n=args.n, seed=args.seed, t_end=args.t_end, sample_every=args.sample_every,
                    fixed=tuple(args.fixed_solvers), step_size=args.step_size, adaptive=tuple(args.adaptive_solvers),
                    tolerances=tuple(args.tolerances), checkpoints=tuple(args.checkpoints))
    check_output_folder(args.out_dir, "--out-dir")
    print(f"energy: {system.name}, {args.n} trajectories to t = {args.t_end:g}, float64, one batched solve per "
          f"method", flush=True)
    times, runs = en.energy_study(**settings, system=system, progress=args.progress)
    table = en.markdown(times, runs, args.checkpoints)
    md, js = args.out_dir / "energy.md", args.out_dir / "energy.json"
    atomic_write_text(f"{system.name} ({system.extra_repr()}), {args.n} trajectories (seed {args.seed}), "
                      f"t = 0..{args.t_end:g}, outputs every {args.sample_every:g}\n\n{table}", md)
    atomic_write_json(en.to_json(times, runs, {"system": system.name, "parameters": asdict(system.params),
                                               **{k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in settings.items()}}, args.checkpoints), js)
    png = plots.plot_energy_error(times, {r.label: r.error.max(axis=1) for r in runs}, args.out_dir / "energy.png",
                                  f"{system.name}: |E(t) - E(0)| / E-scale, max over {args.n} trajectories")
    print(table)
    print(f"wrote {md}, {js}, {png}")


def _simulation(args: argparse.Namespace, preset: dict[str, Any]) -> SimulationSettings | None:
    """The settings of the trajectories to generate, or None for ``--data`` (whose flags then must not be
    mixed with the generator's)."""
    sim_flags = given(args, SimulationSettings)
    data = getattr(args, "data", None)
    if data is not None:
        if sim_flags:
            flags = ", ".join(option_name(k) for k in sim_flags)
            raise ValueError(f"{flags} describe generated trajectories and do not apply to --data {data}; "
                             f"drop them, or drop --data to generate")
        return None
    return SimulationSettings(**{**preset.get("simulation", {}), **sim_flags})


def _load_or_generate(args: argparse.Namespace, settings: SimulationSettings | None) -> tuple[Trajectories, str]:
    if settings is None:
        traj = load_trajectories(args.data)
        return traj, Path(args.data).stem
    traj = generate(settings, progress=args.progress)
    m = traj.metadata
    print(f"ground truth: {settings.system}, {traj.n} trajectories x {traj.length} observations "
          f"({'irregular' if settings.irregular else 'uniform'} times, dt {m['dt']:g}), {m['solver']}: "
          f"{m['solve_seconds']:.2f} s", flush=True)
    return traj, settings.system


def fingerprint(traj: Trajectories) -> str:
    """SHA-256 of the trajectories' states and times (float64 bytes)."""
    digest = hashlib.sha256(np.ascontiguousarray(traj.states).tobytes())
    digest.update(np.ascontiguousarray(traj.times).tobytes())
    return digest.hexdigest()


def data_identity(args: argparse.Namespace, traj: Trajectories) -> dict[str, Any]:
    """The identity of the trajectories: the resolved path of the ``--data`` file (None when generated) and
    the SHA-256 of the states and times."""
    data = getattr(args, "data", None)
    return {"path": None if data is None else str(Path(data).resolve()), "fingerprint": fingerprint(traj)}


def _description(task: PreparedTask, name: str, settings: TaskSettings) -> str:
    split = task.describe()["split_sizes"]
    times = "a uniform grid" if task.uniform else f"irregular times (median interval {task.spacing:.3g})"
    units = "standardised units (training mean and std per variable)" if settings.normalize else "data units"
    order = "in the data's order" if settings.split_seed is None else f"seed {settings.split_seed}"
    sizes = "".join(f", {m} {w}" + (f"x{n}" if n else "") for m, w, n in settings.sizes)
    reading = (f"One-step prediction: every observation read, the next one predicted ({task.horizon} per trajectory)"
               if task.one_step else f"Context {task.context} observation(s), {task.horizon} predicted")
    if settings.observed:
        reading += f"; observed: {', '.join(settings.observed)}"
    return (f"Data: {name}, {task.trajectories.n} trajectories x {task.trajectories.length} observations on {times}; "
            f"split {split['train']}/{split['val']}/{split['test']} ({order}). {reading}, inputs aligned "
            f"{settings.alignment}. MSE per element on the "
            f"test set, in {units}; epoch chosen on validation. Hidden {settings.hidden_size}{sizes}, "
            f"h0 = {settings.h0}, {settings.optimizer} lr {settings.lr:g}, batch {settings.batch_size}, "
            f"seed {settings.seed}.")


def _compare(args: argparse.Namespace) -> None:
    """Every cell an ordinary run (``_train`` with reuse: finished cells are read back), then the summary."""
    grid = cmp.cells(args.systems, args.grids, args.seeds)
    check_output_folder(args.out_dir)
    values = PRESETS[args.preset] if args.preset else {}
    cell_args = {}
    for cell in grid:  # every cell's settings checked before the first one trains
        ns = argparse.Namespace(**{**vars(args), "system": cell.system, "irregular": cell.grid == "irregular",
                                   "seed": cell.seed, "split_seed": cell.seed, "data": None, "resume": False,
                                   "out_dir": args.out_dir / cell.name})
        settings = TaskSettings(**_merge(values.get("task", {}), given(ns, TaskSettings)))
        names = SYSTEMS[cell.system].state_names
        unknown = [v for v in settings.observed if v not in names]
        if unknown:
            raise ValueError(f"--observed {' '.join(unknown)}: not a state variable of {cell.system} "
                             f"({', '.join(names)}); compare systems that share the observed names")
        _simulation(ns, values)
        cell_args[cell] = ns
    results = {}
    for cell, ns in cell_args.items():
        print(f"=== {cell.name}", flush=True)
        results[cell] = _train(ns, preset=args.preset, reuse=True)
    summary = cmp.summarize(results)
    table = cmp.markdown(summary)
    md, js = args.out_dir / "compare.md", args.out_dir / "compare.json"
    atomic_write_text(table, md)
    atomic_write_json({"summary": summary, "cells": [c.name for c in grid]}, js)
    print(table)
    print(f"wrote {md}, {js}")


def _merge(preset: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Flags over the preset; the preset's per-model sizes are kept for the models trained that no --size names
    (a --size the user gives for a model not trained is refused by TaskSettings)."""
    merged = {**preset, **flags}
    if "sizes" in preset:  # per model: a --size given overrides the preset's for that model, keeps the others
        given_for = {entry[0] for entry in flags.get("sizes", ())}
        models = merged.get("models", ())
        kept = tuple(entry for entry in preset["sizes"] if entry[0] in models and entry[0] not in given_for)
        merged["sizes"] = tuple(flags.get("sizes", ())) + kept
    return merged


def _train(args: argparse.Namespace, preset: str | None, reuse: bool = False) -> list[dict[str, Any]]:
    """Load or generate the trajectories, build every model (all errors before any file), train, report;
    returns the models' result rows."""
    start = time.perf_counter()
    values = PRESETS[preset] if preset else {}
    settings = TaskSettings(**_merge(values.get("task", {}), given(args, TaskSettings)))
    simulation = _simulation(args, values)
    out_dir = args.out_dir or RUNS / (Path(args.data).stem if simulation is None else simulation.system)
    check_output_folder(out_dir)
    traj, name = _load_or_generate(args, simulation)
    task = prepare(traj, settings.context, settings.step_size, settings.split, settings.split_seed, settings.normalize,
                   settings.alignment, settings.objective, settings.observed)
    models = {m: build_predictor(settings, m, task.state_dim, task.first_target, task.uniform)
              for m in settings.models}
    resume_flag = getattr(args, "resume", False)
    started = (out_dir / CONFIG_FILE).is_file()
    if resume_flag and not started:
        raise ValueError(f"--resume given but {out_dir} holds no run to continue (no {CONFIG_FILE})")
    if started and not (resume_flag or reuse):
        raise ValueError(f"{out_dir} holds a run ({CONFIG_FILE}); pass --resume to continue it (models killed "
                         f"before their first checkpoint start afresh), or use another --out-dir")
    identity = data_identity(args, traj)
    now: dict[str, Any] = {"settings": settings, "data_identity": identity}
    if simulation is not None:
        now["simulation"] = simulation
    continuing = [m for m in models if (out_dir / m / CHECKPOINT).is_file()] if (resume_flag or reuse) else []
    if started and (resume_flag or reuse):  # every check before anything is written: the run's record, then
        check_resume(out_dir, now)         # each model's checkpoint (a model without one starts afresh)
    config = settings.train_config(progress=False)
    for model_name in models:
        check_run_folder(out_dir / model_name, config, model_name in continuing)
        if model_name in continuing:  # its checkpoint and best.pt hold this model, or nothing is written
            check_resumable(out_dir / model_name, load_checkpoint(out_dir / model_name / CHECKPOINT),
                            models[model_name])
    info = {"data": {"name": name, **traj.metadata}, "data_identity": identity, "task": task.describe(),
            "settings": asdict(settings), "simulation": None if simulation is None else asdict(simulation),
            "preset": preset}
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    save_trajectories(traj, out_dir / "trajectories.npz")
    atomic_write_json(info, out_dir / CONFIG_FILE)
    rows, predictions = [], {}
    for model_name, model in models.items():
        run_dir = out_dir / model_name
        resume = model_name in continuing
        tic = time.perf_counter()
        print(f"== {model_name} ({sum(p.numel() for p in model.parameters()):,} parameters)", flush=True)
        row, pred = train_model(task, settings, model_name, model, run_dir, resume=resume, progress=args.progress,
                                stability_check=args.stability_check, stability_steps=args.stability_steps)
        rows.append(row)
        predictions[model_name] = pred
        print(f"   test MSE {row['test_mse']:.4f} ({row['test_over_mean_predictor']:.3f} x the mean predictor's "
              f"{row['mean_predictor_mse']:.4f}), best epoch {row['best_epoch']}/{row['epochs']}, "
              f"{time.perf_counter() - tic:.1f} s", flush=True)
    description = _description(task, name, settings)
    reference = REFERENCES[settings.reference] if settings.reference else None
    scale = reference.scale(task.horizon, task.state_dim) if reference else 1
    paths = report.write(rows, out_dir, info, description, reference, scale)
    if args.plots:
        paths += _plots(task, rows, predictions, out_dir, name)
    print(report.markdown(rows, description))
    if reference is not None:
        print(report.reference_markdown(rows, reference, scale))
    print(f"wrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - start:.1f} s in all)")
    return rows


def _plots(task: PreparedTask, rows: list[dict[str, Any]], predictions: dict[str, np.ndarray], out_dir: Path,
           name: str) -> list[Path]:
    test = task.part("test")
    k = min(N_PLOTTED, test.n)
    truth = test.states[:k]
    shown = {m: task.normalizer.invert(p[:k]) for m, p in predictions.items()}
    names = test.state_names
    paths = [plots.plot_rollouts(test.times[:k], truth, shown, task.first_target, names, out_dir / "rollouts.png",
                                 f"{name}: truth (black, one dot per observation, context circled) and predictions (dashed)")]
    if task.state_dim == 2:
        paths.append(plots.plot_phase(truth, {m: np.concatenate([truth[:, :task.first_target], p], axis=1)
                                              for m, p in shown.items()}, task.first_target, names,
                                      out_dir / "phase.png", f"{name}: phase portraits"))
    ref = rows[0]["horizon"]
    horizon = {r["model"]: r["horizon"]["mse"] for r in rows}
    horizon.update({"mean predictor": ref["mean_predictor_mse"], "persistence": ref["persistence_mse"]})
    paths.append(plots.plot_horizon(horizon, ref["index"], out_dir / "horizon.png", f"{name}: test error per horizon",
                                    "standardised" if rows[0]["units"].startswith("standardised") else ""))
    histories = {r["model"]: json.loads((out_dir / r["model"] / "metrics.json").read_text(encoding="utf-8"))
                 for r in rows}
    paths.append(plots.plot_training_curves(histories, out_dir / "training_curves.png",
                                            f"{name}: training (dashed) and validation (solid) loss"))
    return paths
