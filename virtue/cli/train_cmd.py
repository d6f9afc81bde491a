"""`virtue train EXPERIMENT [overrides]`: contrastive training of the embedder, tracked in MLflow, resumable.
Under torchrun every process runs this command; a Slurm or submitit launch goes through the launcher.
With `--variants` (or `--variants-from`, for DVC) it trains one run per variant, named <name>-<variant>, all
submitted at once: side by side on this machine (launcher.kind local) or on Slurm."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from ..config import ExperimentConfig, load_experiment
from ..errors import TrainingInterrupted, UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the embedder (InfoNCE, GradCache, LoRA/DoRA; resumable)")
    p.add_argument("experiment", help="name under experiments/ (e.g. tiny) or a YAML path")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.steps=100")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--variants",
        nargs="+",
        metavar="VARIANT",
        help="train these model variants, one run each named <name>-<variant>, all at once through the launcher",
    )
    which.add_argument(
        "--variants-from",
        metavar="YAML",
        help="the same, with the top-level `variants` list of this file (params.yaml in the DVC pipeline)",
    )
    p.add_argument(
        "--in-cells",
        action="store_true",
        help="train each run in runs/cells/<digest of what decides its weights> and copy the finished run "
        "(config, metrics, weights) into its run folder: the checkpoints stay outside the run folder (a DVC "
        "stage output, deleted before the stage reruns), so a rerun resumes from them (the DVC pipeline)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print each job (run folder, steps, finished / resumable / new), its resources and an estimated "
        "time from the step rates this workspace measured; train and submit nothing",
    )
    p.set_defaults(func=_train)


def variants_from(path: str) -> list[str]:
    """The top-level `variants` list of a YAML file (DVC's templating cannot put a list into a command)."""
    from ..config.yamlfile import read_yaml

    try:
        data = read_yaml(path)
    except UserError as e:
        raise UserError(f"--variants-from {e}") from None
    variants = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(variants, list) or not variants or not all(isinstance(v, str) for v in variants):
        raise UserError(f"--variants-from {path}: key 'variants' must be a non-empty list of variant names")
    return variants


def variant_configs(experiment: str, overrides: list[str], variants: list[str]) -> list[ExperimentConfig]:
    """One config per variant: the experiment with `overrides`, model.variant and name=<name>-<variant>."""
    if len(set(variants)) != len(variants):
        raise UserError(f"--variants: {' '.join(variants)}: a variant is named twice")
    name = load_experiment(experiment, overrides).name
    return [load_experiment(experiment, [*overrides, f"model.variant={v}", f"name={name}-{v}"]) for v in variants]


def _progress(cfgs: list[ExperimentConfig], in_cells: bool):
    """A poll function for launch_all: one bar over the steps of every run, read from their metrics.jsonl."""
    from tqdm import tqdm

    from ..orchestrate.jobs import training_dir

    bar = tqdm(total=sum(c.train.steps for c in cfgs), desc="train " + " ".join(c.model.variant for c in cfgs))

    def last_step(cfg: ExperimentConfig) -> int:
        try:
            text = (training_dir(cfg, in_cells) / "metrics.jsonl").read_text(encoding="utf-8")
        except OSError:
            return 0
        steps = [0]
        for line in text.split("\n")[-4:-1]:  # complete lines only: the run may be writing the last one
            with contextlib.suppress(ValueError, TypeError, AttributeError):  # a study's evaluation: step null
                steps.append(int(json.loads(line).get("step")))
        return max(steps)

    def poll() -> None:
        done = sum(min(last_step(c), c.train.steps) for c in cfgs)
        bar.update(done - bar.n)

    return bar, poll


def _measured_rate(cfg: ExperimentConfig) -> tuple[float, str] | None:
    """Median samples/s logged by a finished or running training of the same variant in this workspace (its
    own folder first, then the other runs beside it), and where it came from."""
    import statistics

    from ..train.loop import run_dir_of

    own = run_dir_of(cfg)
    logs = [own / "metrics.jsonl", *sorted(own.parent.glob("*/metrics.jsonl"))]
    for log in logs:
        with contextlib.suppress(OSError, ValueError, UserError):
            from ..config import load_resolved

            if load_resolved(log.parent / "config.yaml").model.variant != cfg.model.variant:
                continue
            rows = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
            rates = [r["samples_per_s"] for r in rows if r.get("samples_per_s")]
            if rates:
                return statistics.median(rates), _shown(log.parent)
    return None


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the workspace when it lies inside it."""
    from ..paths import workspace_root

    return os.path.relpath(path, workspace_root()) if path.is_relative_to(workspace_root()) else str(path)


def dry_run(cfgs: list[ExperimentConfig], in_cells: bool = False) -> str:
    """What `virtue train` would run: one line per job, the resources, and the time at measured step rates.
    With `in_cells` a run's state is its cell folder's, where it trains."""
    from ..orchestrate.jobs import training_dir
    from ..orchestrate.launcher import local_threads
    from ..orchestrate.plan import resources
    from ..train.checkpoint import WEIGHTS, latest_checkpoint
    from ..train.loop import run_dir_of

    lines, minutes = ["train: dry run, nothing trained or submitted"], []
    for cfg in cfgs:
        run_dir = training_dir(cfg, in_cells)
        latest = latest_checkpoint(run_dir / "checkpoints")
        state = ("finished (weights there)" if (run_dir / WEIGHTS).is_file()
                 else f"resumes from {latest.name}" if latest else "new")  # fmt: skip
        resumed = int(latest.name.removeprefix("step-")) if latest else 0  # step-00000200 -> 200
        left = 0 if state.startswith("finished") else max(0, cfg.train.steps - resumed)
        rate = _measured_rate(cfg)
        when = "no measured step rate"
        if rate is not None:
            minutes.append(left * cfg.train.batch_size / rate[0] / 60)
            when = f"{minutes[-1]:.0f} min at {rate[0]:.1f} samples/s (measured in {rate[1]})"
        lines.append(f"  {cfg.name}: {cfg.model.variant}, {cfg.train.steps} steps of {cfg.train.batch_size}, "
                     f"{_shown(run_dir_of(cfg))}{f' (trains in {_shown(run_dir)})' if in_cells else ''}: {state}; "
                     f"{when}")  # fmt: skip
    launcher = cfgs[0].launcher
    at_once = len(cfgs) if launcher.kind != "inprocess" else 1
    threads = local_threads(launcher, len(cfgs)) if launcher.kind == "local" else None
    lines.append(f"  jobs: {len(cfgs)}; resources: {resources(launcher.kind, at_once, threads, launcher)}")
    if minutes and len(minutes) == len(cfgs):
        total = max(minutes) if at_once > 1 else sum(minutes)
        lines.append(f"  time: about {total:.0f} min ({'side by side' if at_once > 1 else 'one after another'})")
    return "\n".join(lines)


def _train(args: argparse.Namespace) -> int:
    variants = args.variants or (variants_from(args.variants_from) if args.variants_from else None)
    if args.dry_run:
        cfgs = (variant_configs(args.experiment, args.overrides, variants) if variants is not None
                else [load_experiment(args.experiment, args.overrides)])  # fmt: skip
        print(dry_run(cfgs, args.in_cells))
        return 0
    from ..orchestrate.jobs import TrainJob, run_training

    try:
        if variants is not None:
            from ..orchestrate.launcher import launch_all

            cfgs = variant_configs(args.experiment, args.overrides, variants)
            calls = [(f"train-{c.name}", (c,)) for c in cfgs]
            if cfgs[0].launcher.kind == "inprocess":  # one after another, each with its own progress bar
                inline = [(name, (c, args.in_cells)) for name, (c,) in calls]
                run_dirs = launch_all(run_training, inline, launcher=cfgs[0].launcher)
            else:
                bar, poll = _progress(cfgs, args.in_cells)
                with bar:
                    run_dirs = launch_all(TrainJob(args.in_cells), calls, launcher=cfgs[0].launcher, poll=poll)
        else:
            cfg = load_experiment(args.experiment, args.overrides)
            if cfg.launcher.kind == "inprocess":
                run_dirs = [run_training(cfg, args.in_cells)]
            else:
                from ..orchestrate.launcher import launch

                run_dirs = [launch(TrainJob(args.in_cells), cfg, launcher=cfg.launcher, name=f"train-{cfg.name}")]
    except TrainingInterrupted as e:
        print(f"virtue: {e}", file=sys.stderr)
        return 128 + e.signum
    for run_dir in run_dirs:
        print(Path(run_dir) / "trainable.safetensors")
    return 0
