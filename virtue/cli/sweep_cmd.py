"""`virtue sweep --study NAME` (same as `python sweeps/run.py --study NAME`): run or continue an ablation
study from sweeps/studies/*.yaml through Optuna, MLflow and the chosen executor."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..orchestrate.executors import EXECUTORS

    p.add_argument("--study", required=True, help="name under sweeps/studies/ or a YAML path")
    p.add_argument(
        "--budget-from",
        metavar="PARAMS_YAML",
        help="take the per-trial budget (--set), --seeds, --trials, --workers and --executor from this file's "
        "sweeps: block and training recipe, as the DVC stages do (params.yaml); options given here still win",
    )
    p.add_argument("--executor", choices=EXECUTORS, help="debug: in this process (default: local)")
    p.add_argument("--workers", type=int, help="trials at once (Slurm: slurm_array_parallelism; default 1)")
    p.add_argument("--storage", help="Optuna storage: an RDB URL or a journal file (default: the study's journal)")
    p.add_argument("--seeds", type=int, help="repeats of each grid cell (default: the study's)")
    p.add_argument("--trials", type=int, help="tpe studies: trials in total (default: the study's n_trials)")
    p.add_argument("--experiment", help="base experiment of every trial (default: the study's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="config override for every trial, after the study's own overrides (repeatable), e.g. train.steps=120",
    )
    p.add_argument("--threads", type=int, help="torch threads per trial (default: local: cores / workers)")
    p.add_argument("--cells", help="run only these cells (comma-separated labels; the reference always runs)")
    p.add_argument(
        "--restart-on-change",
        action="store_true",
        help="discard the study's trials when its inputs changed (config, --set, backbones, data) instead of refusing",
    )
    p.add_argument("--partition", help="Slurm partition (overrides the study's)")
    p.add_argument("--gpus", type=int, help="GPUs per node (overrides the study's)")
    p.add_argument(
        "--report-dir",
        default="reports/sweeps",
        help="evaluation-only studies (kind: eval): folder of <study>.json/.csv/.png (default: reports/sweeps)",
    )
    p.add_argument("--time", type=int, dest="time_min", help="time limit per trial, minutes (overrides the study's)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the trials and what each needs, the jobs, their resources and an estimated time; submit nothing",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run or continue an ablation study (sweeps/studies/*.yaml)")
    add_arguments(p)
    p.set_defaults(func=run)


def apply_sets(spec, sets: list[str], experiment: str | None = None):
    """The study with `--set` overrides appended to its own (so the cells' overrides still come last and the
    ablated axis stays the axis) and, optionally, another base experiment. Each override is checked here,
    so a bad key is one error before anything runs."""
    from ..config import load_experiment
    from ..errors import UserError

    if experiment:
        spec = spec.model_copy(update={"experiment": experiment})
    axis_keys = {o.split("=", 1)[0] for c in spec.cells for o in c.overrides}
    for text in sets:
        key = text.split("=", 1)[0]
        if key in axis_keys:
            raise UserError(f"--set {text}: {key} is what the study's cells vary; it cannot be set for all of them")
        try:
            load_experiment(spec.experiment, [*spec.overrides, text])
        except UserError as e:
            raise UserError(f"--set {text}: {e}") from None
    return spec.model_copy(update={"overrides": [*spec.overrides, *sets]})


def run(args: argparse.Namespace) -> int:
    """Raises UserError on bad input; returns 1 when some trial failed."""
    from ..errors import UserError
    from ..evalstudy.spec import is_eval_study

    if is_eval_study(args.study):
        return run_eval(args)
    from ..orchestrate.study import load_study
    from ..orchestrate.sweep import run_sweep

    sets, seeds, trials, workers, executor = args.sets, args.seeds, args.trials, args.workers, args.executor
    cells = args.cells.split(",") if args.cells else None
    spec = load_study(args.study)
    if args.budget_from:
        from ..orchestrate.budget import read_budget, with_resources

        b = read_budget(args.budget_from)
        spec = with_resources(spec, b.slurm)
        own = ("train.steps=", "train.warmup_steps=") if spec.own_budget else ()
        sets = [*(x for x in b.sets if not (own and x.startswith(own))), *sets]
        seeds, trials = seeds or b.seeds, trials or b.trials
        workers, executor = workers or b.workers, executor or b.executor
        cells = cells or b.cells.get(spec.name)
    if cells and spec.sampler == "grid":
        from ..orchestrate.study import only_cells

        spec = only_cells(spec, cells)
    spec = apply_sets(spec, sets, args.experiment)
    slurm = {k: v for k, v in (("partition", args.partition), ("gpus_per_node", args.gpus),
                               ("time_min", args.time_min)) if v is not None}  # fmt: skip
    if slurm:
        spec = spec.model_copy(update={"slurm": spec.slurm.model_copy(update=slurm)})
    if trials is not None:
        if trials < 1:
            raise UserError(f"--trials {trials}: must be at least 1")
        spec = spec.model_copy(update={"n_trials": trials})
    if workers is not None and workers < 1:  # before `workers or 1` below turns 0 into 1
        raise UserError(f"--workers {workers}: must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be at least 1")
    if args.dry_run:
        return _dry_run(spec, args, executor or "local", workers or 1, seeds)
    res = run_sweep(
        spec,
        executor=executor or "local",
        workers=workers or 1,
        storage=args.storage,
        seeds=seeds,
        threads=args.threads,
        restart_on_change=args.restart_on_change,
    )
    reused = f" ({res.reused} found already trained)" if res.reused else ""
    print(f"{res.study}: {res.completed} trials complete{reused} in {res.wall_s:.1f} s; report {res.report}")
    if res.requeued:
        print(f"re-enqueued trials left RUNNING by a dead worker: {res.requeued}")
    for line in res.failed:
        print(f"failed: {line}", file=sys.stderr)
    if not res.complete:
        print(f"{res.study}: the summary is missing cells (see 'missing' in {res.report})", file=sys.stderr)
    return 1 if res.failed or not res.complete else 0


def _dry_run(spec, args: argparse.Namespace, executor: str, workers: int, seeds: int | None) -> int:
    from ..orchestrate.plan import describe
    from ..orchestrate.sweep import check_args, default_threads, storage_url

    check_args(executor, workers)
    threads = args.threads or default_threads(spec, executor, workers)
    url = storage_url(spec, args.storage)
    print(describe(spec, url=url, executor=executor, workers=workers, threads=threads, seeds=seeds or spec.seeds,
                   restart_on_change=args.restart_on_change))  # fmt: skip
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """An evaluation-only study (`kind: eval`): nothing is trained or submitted, so the budget, executor and
    Slurm options do not apply; it evaluates the main path's trained runs in this process."""
    from ..evalstudy.run import run_eval_study
    from ..evalstudy.spec import load_eval_study

    spec = load_eval_study(args.study)
    if args.experiment:
        spec = spec.model_copy(update={"experiment": args.experiment})
    if args.dry_run:
        print(f"{spec.name}: dry run: an evaluation-only study; it trains and submits nothing, and evaluates the "
              f"main path's runs in this process ({spec.study})")  # fmt: skip
        return 0
    path = run_eval_study(spec, args.report_dir)
    print(f"{spec.name}: evaluated the main path's runs ({spec.study}); report {path}")
    return 0
