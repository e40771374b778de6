"""``python -m experiments double-pendulum generate|train|table|demo|energy``.

generate: ground truth (one batched solve) into a .npz; train: the models of AFRNN Table 3 on it, then the
table and plots; table: table and plots from finished runs; demo: all of it, small and fast; energy: energy
conservation of a few trajectories over a long horizon, fixed-step (symplectic) against adaptive solvers.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from solvers import get_method

from experiments.double_pendulum import energy as en
from experiments.double_pendulum import generate as gen
from experiments.double_pendulum import plots
from experiments.double_pendulum import table as tbl
from experiments.double_pendulum.physics import DoublePendulum
from experiments.double_pendulum.reference import check_against_scipy
from experiments.double_pendulum.train import (DISCRETISATIONS, H0_MODES, HIDDEN, Settings, data_identity,
                                               load_predictions, train_model)
from experiments.cli_options import (ERRORS, OneLineArgumentParser, SolverOptions, add_solver_arguments,
                                     check_output_file, check_output_folder, given, option_name, positive_int,
                                     report_error)
from experiments.io import atomic_write_json, atomic_write_text, read_json, remove_stale_temporaries
from experiments.resume import CONFIG_FILE, check_resume, normal, snapshot
from experiments.stability_gate import add_stability_argument
from experiments.training import check_run_folder

CHECKPOINT = "checkpoint.pt"

DEFAULT_DATA = Path("data/double_pendulum.npz")
DEFAULT_RUNS = Path("runs/double_pendulum")
DEFAULT_ENERGY = Path("runs/double_pendulum_energy")
DEMO = dict(n=400, split=(300, 50, 50), epochs=10, models=tuple(HIDDEN), out=Path("runs/double_pendulum_demo"))


_positive_int = positive_int


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=1000, help="number of trajectories (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--solver", default=gen.DEFAULT_METHOD, help="any registered solvers method (default dopri5)")
    p.add_argument("--rtol", type=float, default=gen.DEFAULT_TOL)
    p.add_argument("--atol", type=float, default=gen.DEFAULT_TOL)
    p.add_argument("--step-size", type=float, default=None, help="for fixed-step methods (default 1e-3 s)")
    for name, default in (("m1", 1.0), ("m2", 1.0), ("L1", 1.0), ("L2", 1.0), ("g", 9.8)):
        p.add_argument(f"--{name}", type=float, default=default)
    p.add_argument("--out", type=Path, default=DEFAULT_DATA, help=f"output .npz (default {DEFAULT_DATA})")
    p.add_argument("--check", type=int, default=10, metavar="K",
                   help="compare K trajectories with scipy's DOP853 at 1e-12, one at a time (default 10; 0: skip)")


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a .npz written by `generate`")
    p.add_argument("--models", nargs="+", default=list(HIDDEN), metavar="MODEL",
                   help=f"any of {', '.join(HIDDEN)} (default: all)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--solver", default="euler", help="discretiser of the ODE models (default euler)")
    p.add_argument("--step-size", type=float, default=0.1, help="eps (default 0.1)")
    p.add_argument("--gamma", type=float, default=0.15, help="diffusion (default 0.15)")
    p.add_argument("--discretisation", choices=DISCRETISATIONS, default="joint",
                   help="joint: the solver on the whole field; partitioned: Gauss-Seidel Euler over layers "
                        "(the AFRNN authors' code)")
    p.add_argument("--h0", choices=H0_MODES, default="ones", help="initial hidden state (default ones)")
    p.add_argument("--split", type=_positive_int, nargs=3, default=[800, 100, 100], metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_RUNS, help=f"run folder (default {DEFAULT_RUNS})")
    p.add_argument("--resume", action="store_true",
                   help="continue the runs in --out from their checkpoints; only with the data and settings they "
                        "were started with (--epochs may be raised to train on)")
    add_solver_arguments(p)
    add_stability_argument(p)


def _add_energy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=_positive_int, default=8, help="trajectories (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial conditions (default 0)")
    p.add_argument("--t-end", type=float, default=100.0, help="horizon in s (default 100)")
    p.add_argument("--sample-every", type=float, default=0.1, help="output spacing in s (default 0.1)")
    p.add_argument("--fixed-solvers", nargs="*", default=list(en.DEFAULT_FIXED), metavar="SOLVER",
                   help=f"fixed-step explicit or implicit methods run at --step-size "
                        f"(default: {' '.join(en.DEFAULT_FIXED)})")
    p.add_argument("--step-size", type=float, default=0.02, help="their step in s (default 0.02)")
    p.add_argument("--adaptive-solvers", nargs="*", default=list(en.DEFAULT_ADAPTIVE), metavar="SOLVER",
                   help=f"adaptive methods run at each of --tolerances (default: {' '.join(en.DEFAULT_ADAPTIVE)})")
    p.add_argument("--tolerances", type=float, nargs="*", default=list(en.DEFAULT_TOLERANCES), metavar="TOL",
                   help="rtol = atol of the adaptive solves (default: 1e-6 1e-9)")
    p.add_argument("--checkpoints", type=float, nargs="+", default=list(en.DEFAULT_CHECKPOINTS), metavar="T",
                   help="times (s) up to which the table gives the max error (default: 1 10 100)")
    p.add_argument("--out", type=Path, default=DEFAULT_ENERGY, help=f"run folder (default {DEFAULT_ENERGY})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="generate|train|table|demo|energy")
    sub.required = True
    commands = {
        "generate": (_add_generate, "ground truth in one batched solve, saved as .npz"),
        "train": (_add_train, "train the Table 3 models, then write the table and plots"),
        "table": (lambda p: p.add_argument("--out", type=Path, default=DEFAULT_RUNS),
                  "table (markdown + JSON) and plots from finished runs"),
        "demo": (lambda p: p.add_argument("--out", type=Path, default=DEMO["out"]),
                 f"{DEMO['n']} trajectories, all five models for {DEMO['epochs']} epochs (a few minutes)"),
        "energy": (_add_energy, "energy error over a long horizon: fixed-step (symplectic) vs adaptive solvers"),
    }
    for name, (add, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        if name == "demo":
            add_solver_arguments(p)
            add_stability_argument(p)
        p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
        p.add_argument("--threads", type=_positive_int, default=1,
                       help="torch intra-op threads (default 1: batch-8 models run fastest on one)")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    action = {"generate": _generate, "train": _train, "table": _table, "demo": _demo, "energy": _energy}[args.action]
    try:
        if args.action == "generate":
            check_output_file(args.out)
        else:
            check_output_folder(args.out, "--out")
        action(args)
    except ERRORS as exc:
        return report_error(exc)
    return 0


def _generate(args: argparse.Namespace) -> gen.GroundTruth:
    pendulum = DoublePendulum(args.m1, args.m2, args.L1, args.L2, args.g)
    truth = gen.generate(args.n, args.seed, pendulum, args.solver, args.rtol, args.atol, args.step_size,
                         progress=args.progress)
    gen.save(truth, args.out)
    m = truth.metadata
    tol = f"rtol={m['rtol']:g}, atol={m['atol']:g}" if m["rtol"] is not None else f"step {m['step_size']:g} s"
    newton = (f", {m.get('n_functional', 0)} functional and {m['n_newton']} Newton iterations"
              if "newton" in get_method(m["solver"]).options else "")
    print(f"{m['n']} trajectories x {len(truth.times)} times, {m['solver']} ({tol}), one batched solve: "
          f"{m['solve_seconds']:.2f} s, {m['nfe']} evaluations of f{newton}; max relative energy drift "
          f"{gen.relative_energy_drift(truth).max():.1e}; wrote {args.out}")
    if args.check > 0:
        start = time.perf_counter()
        err = check_against_scipy(truth.states, truth.initial_conditions, truth.times, pendulum, args.check)
        seconds = time.perf_counter() - start
        print(f"max |ours - scipy DOP853 (rtol=atol=1e-12)| over {min(args.check, m['n'])} trajectories: {err:.1e}; "
              f"scipy one at a time: {seconds:.2f} s, i.e. ~{seconds / min(args.check, m['n']) * m['n']:.0f} s "
              f"for all {m['n']}")
    return truth


def _settings(args: argparse.Namespace, model: str) -> Settings:
    return Settings(model=model, epochs=args.epochs, solver=args.solver, step_size=args.step_size,
                    gamma=args.gamma, discretisation=args.discretisation if model != "lstm" else "joint",
                    h0=args.h0, batch_size=args.batch_size, lr=args.lr, seed=args.seed, split=tuple(args.split),
                    **given(args, SolverOptions))


def _train(args: argparse.Namespace, reuse: bool = False) -> None:
    """Train every model in ``args.models``; ``reuse`` continues (or just reloads) runs that have a checkpoint."""
    settings = [_settings(args, m) for m in args.models]  # every error before any file is written
    checkpoints = [args.out / s.model / CHECKPOINT for s in settings]
    missing = [str(path) for path in checkpoints if not path.is_file()]
    if args.resume and missing:
        raise ValueError(f"--resume given but there is no checkpoint at {', '.join(missing)}")
    truth = gen.load(args.data)
    identity = data_identity(truth, args.data)
    _check_same_data(args.out, identity, [s.model for s in settings])
    resumed = {}
    for s, checkpoint in zip(settings, checkpoints):  # every run's checks before anything is written
        resume = args.resume or (reuse and checkpoint.is_file())
        if resume:
            check_resume(checkpoint.parent, {"settings": s, "data": identity})
        check_run_folder(checkpoint.parent, s.train_config(progress=False), resume)
        resumed[s.model] = resume
    for s in settings:
        start = time.perf_counter()
        print(f"== {tbl.LABELS[s.model]} ({s.hidden} hidden, {s.effective_solver}, eps {s.step_size:g}, "
              f"{s.epochs} epochs)", flush=True)
        run_dir = args.out / s.model
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)
        atomic_write_json({"settings": snapshot(s), "data": identity}, run_dir / CONFIG_FILE)
        row = train_model(truth, s, run_dir, resume=resumed[s.model], progress=args.progress,
                          stability_check=args.stability_check, stability_steps=args.stability_steps)
        print(f"   test MSE {row['test_mse']:.4f} per element = {row['test_paper_units']:.1f} in the paper's "
              f"units (best epoch {row['best_epoch']}, {row['parameters']:,} parameters, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)
    _table(args)


def _check_same_data(out: Path, identity: dict, models: list[str]) -> None:
    """The folder's table and plots put every model in it side by side on one test set: a model trained on
    other ground truth may not join the others there (refused before anything is written; the models being
    trained or resumed now are held to their own records by the resume rules)."""
    if not out.is_dir():
        return
    for run in sorted(p for p in out.iterdir() if (p / CONFIG_FILE).is_file() and p.name not in models):
        recorded = read_json(run / CONFIG_FILE)
        if isinstance(recorded, dict) and recorded.get("data") != normal(identity):
            raise ValueError(f"{out} holds {run.name} trained on other ground truth than {identity.get('path', 'this')}"
                             f"; its table would compare models on different test sets: use another --out")


def _table(args: argparse.Namespace) -> None:
    rows = tbl.collect(args.out)
    remove_stale_temporaries(args.out)
    md, js = tbl.write(rows, args.out)
    print(tbl.markdown(rows))
    runs = [args.out / r["model"] for r in rows]
    histories = {r["model"]: json.loads((run / "metrics.json").read_text(encoding="utf-8"))
                 for r, run in zip(rows, runs)}
    curves = plots.plot_training_curves(histories, args.out / "training_curves.png", units=928.0,
                                        ylabel="loss (paper units: MSE x 928)")
    predictions = {r["model"]: load_predictions(run) for r, run in zip(rows, runs)}
    times, true, _ = next(iter(predictions.values()))
    pendulum = DoublePendulum(**rows[0]["data"]["parameters"])
    traj = plots.plot_trajectories(true, {m: p for m, (_, _, p) in predictions.items()}, times, pendulum,
                                   args.out / "trajectories.png")
    print(f"wrote {md}, {js}, {curves}, {traj}")


def _demo(args: argparse.Namespace) -> None:
    """Generate, train all five models briefly, print the table, write the plots; a rerun reuses finished runs."""
    data = args.out / "double_pendulum.npz"
    common = [] if args.progress else ["--no-progress"]
    _generate(_parse(_add_generate, ["--n", str(DEMO["n"]), "--out", str(data), "--check", "0", *common]))
    options = [text for name, value in given(args, SolverOptions).items() for text in (option_name(name), str(value))]
    _train(_parse(_add_train, ["--data", str(data), "--models", *DEMO["models"], "--epochs", str(DEMO["epochs"]),
                               "--split", *map(str, DEMO["split"]), "--out", str(args.out),
                               "--stability-check", args.stability_check,
                               "--stability-steps", str(args.stability_steps), *options, *common]),
           reuse=True)


def _energy(args: argparse.Namespace) -> None:
    """Energy error of ``--n`` trajectories up to ``--t-end``: table (markdown + JSON) and plot in ``--out``."""
    settings = dict(n=args.n, seed=args.seed, t_end=args.t_end, sample_every=args.sample_every,
                    fixed=tuple(args.fixed_solvers), step_size=args.step_size, adaptive=tuple(args.adaptive_solvers),
                    tolerances=tuple(args.tolerances), checkpoints=tuple(args.checkpoints))
    print(f"energy: {args.n} trajectories to t = {args.t_end:g} s, float64, one batched solve per method", flush=True)
    times, runs = en.energy_study(**settings, progress=args.progress)
    table = en.markdown(times, runs, args.checkpoints)
    md, js = args.out / "energy.md", args.out / "energy.json"
    atomic_write_text(f"Double pendulum, {args.n} trajectories (seed {args.seed}), t = 0..{args.t_end:g} s, "
                      f"outputs every {args.sample_every:g} s\n\n{table}", md)
    atomic_write_json(en.to_json(times, runs, {k: list(v) if isinstance(v, tuple) else v
                                           for k, v in settings.items()}, args.checkpoints), js)
    png = plots.plot_energy_error(times, {r.label: r.error.max(axis=1) for r in runs}, args.out / "energy.png",
                                  args.n)
    print(table)
    print(f"wrote {md}, {js}, {png}")


def _parse(add, argv: list[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser()
    add(parser)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser.parse_args(argv)
