"""The real sweep objective: train one configuration, evaluate it, return its metrics.

Studies name it as `virtue.orchestrate.trial:run_trial`. The sweep has pointed train.output_dir at the cell's
folder (runs/cells/<key>, virtue.orchestrate.cells) and eval.output_dir at its eval/ inside, and opened the
trial's MLflow child run, passed here as `tracker`. Whatever the folder already holds is not done again:
finished weights are not retrained (a checkpoint is resumed, train.resume: auto), an evaluation that would be
repeated exactly is read back. Each further evaluation of the study (its `evals`) lands in evals/<name>/."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ExperimentConfig, with_overrides
from ..paths import workspace_root
from .cells import cell_lock, evaluation_dir, finished_evaluation
from .jobs import hand_back_signal


@dataclass
class TrialContext:
    """What a study asks of its objective beyond training and evaluating: further evaluations (name,
    overrides), and with pruning a callback `report(step, value)` that raises optuna.TrialPruned when the
    trial should stop, called every `report_every` steps with the metric on the validation split."""

    evals: Sequence[tuple[str, Sequence[str]]] = ()
    report: Callable[[int, float], None] | None = None
    report_every: int = 0
    validation: Sequence[str] = ()
    metric: str = "scar.overall.hit@1"
    timings: dict[str, float] = field(default_factory=dict)


def _intermediate(cfg: ExperimentConfig, context: TrialContext, run_dir: Path):
    """The training hook of a pruned search: the metric on the validation split every report_every steps."""
    from ..eval.run import evaluate_embedder
    from .study import pick_metric

    val = with_overrides(cfg, list(context.validation))

    def hook(step: int, embedder, processor) -> None:
        if step % context.report_every or step == cfg.train.steps:
            return
        metrics = evaluate_embedder(val, embedder, processor, out_dir=run_dir / "intermediate" / f"step-{step}")
        context.report(step, pick_metric(metrics, context.metric))

    return hook


def run_trial(cfg: ExperimentConfig, *, tracker=None, context: TrialContext | None = None) -> dict:
    import time

    from ..eval.run import evaluate
    from ..train.checkpoint import WEIGHTS
    from ..train.loop import TrainingInterrupted, run_dir_of, train

    context = context or TrialContext()
    run_dir = run_dir_of(cfg)
    with cell_lock(run_dir):
        start = time.perf_counter()
        if not (run_dir / WEIGHTS).is_file():
            hook = _intermediate(cfg, context, run_dir) if context.report and context.report_every else None
            try:
                train(cfg, tracker=tracker, on_step=hook)
            except TrainingInterrupted as e:
                hand_back_signal(e.signum)
                raise  # not reached: hand_back_signal exits or raises
        context.timings["train_s"] = time.perf_counter() - start
        start = time.perf_counter()
        ran = 0  # evaluations run here (not read back): the time estimates' unit

        def evaluation(c: ExperimentConfig, out: Path) -> dict:
            nonlocal ran
            found = finished_evaluation(out, c)
            if found:
                return found
            ran += 1
            return evaluate(c, run_dir, out_dir=out)

        metrics = evaluation(cfg, workspace_root() / Path(cfg.eval.output_dir.format(name=cfg.name)))
        for name, overrides in context.evals:
            out = evaluation_dir(run_dir, name)
            metrics[name] = evaluation(with_overrides(cfg, [*overrides, f"eval.output_dir={out}"]), out)
        context.timings["eval_s"] = time.perf_counter() - start
        context.timings["evaluations"] = ran
    return metrics
