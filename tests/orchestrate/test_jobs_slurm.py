"""The main path's train job on the real single-node Slurm cluster (scripts/slurm-cluster.sh up; VIRTUE_SLURM=1),
real training of the tiny model on micro data: preempted (SIGTERM, then SIGKILL after the grace period, the job
requeued by Slurm) and timed out (submitit's SIGUSR2: checkpoint, requeue), it finishes with the weights of an
uninterrupted run, every step logged once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import submitit
import torch
from safetensors.torch import load_file
from timelimits import JOB_TIME_MIN, WAIT_S

from virtue.config import load_experiment
from virtue.orchestrate.cells import cell_dir
from virtue.orchestrate.jobs import TrainJob, run_training
from virtue.orchestrate.launcher import launch, log_folder
from virtue.train.checkpoint import WEIGHTS, checkpoints

from .test_sweep_slurm import _restarts, in_background, release_requeued
from .test_trial import MICRO, tiny_workspace  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

STEPS = 24


def _cfg(*extra: str):
    return load_experiment("tiny", [
        *MICRO, f"train.steps={STEPS}", "train.checkpoint_every=1", "tracking.enabled=false", "name=tiny-virtue",
        "train.output_dir=runs/train/{name}", *extra,
    ])  # fmt: skip


def _on_slurm(*extra: str):
    return _cfg("launcher.kind=slurm", f"launcher.time_min={JOB_TIME_MIN}",
                "launcher.cpus_per_task=1", "launcher.mem_gb=2", "launcher.log_dir=runs/logs", *extra)  # fmt: skip


@pytest.fixture
def reference(tiny_workspace) -> dict:  # noqa: F811
    """An uninterrupted run in this process, with the one torch thread of the Slurm job (cpus_per_task=1): the
    same weights need the same summation order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = Path(run_training(_cfg("train.output_dir=runs/reference/{name}")))
    finally:
        torch.set_num_threads(threads)
    return load_file(str(run / WEIGHTS))


def _job_id(cfg) -> str:
    """The Slurm job of the train launch (its submitit folder is named by the job id)."""
    folder, deadline = log_folder(cfg.launcher, f"train-{cfg.name}"), time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ids = [p.name for p in folder.glob("*") if p.name.isdigit()] if folder.is_dir() else []
        if ids:
            return ids[0]
        time.sleep(0.2)
    raise AssertionError(f"no job folder under {folder}")


def _wait_for_checkpoint(cfg, driver) -> None:
    ckpts, deadline = cell_dir(cfg) / "checkpoints", time.monotonic() + WAIT_S
    while not checkpoints(ckpts):
        assert driver.is_alive(), "the driver ended before training checkpointed"
        assert time.monotonic() < deadline, f"no checkpoint in {ckpts}"
        time.sleep(0.1)


def _interrupted_run(cfg, interrupt) -> Path:
    driver, box = in_background(launch, TrainJob(in_cells=True), cfg, launcher=cfg.launcher, name=f"train-{cfg.name}")
    job_id = _job_id(cfg)
    _wait_for_checkpoint(cfg, driver)
    interrupt(job_id)
    release_requeued(job_id)
    driver.join(WAIT_S)
    assert not driver.is_alive() and "error" not in box, box
    assert _restarts(job_id) == 1  # the same job, requeued once
    return Path(box["result"])


def _check(run: Path, cfg, reference: dict) -> None:
    weights = load_file(str(run / WEIGHTS))
    assert weights.keys() == reference.keys() and all(torch.equal(weights[k], reference[k]) for k in weights)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # every step once, though some ran twice
    assert checkpoints(cell_dir(cfg) / "checkpoints")[0].name == f"step-{STEPS:08d}"
    assert not (run / "checkpoints").exists()


def test_a_preempted_train_job_is_requeued_and_ends_as_an_uninterrupted_run(tiny_workspace, reference):  # noqa: F811
    cfg = _on_slurm()
    # What preemption does with PreemptMode=REQUEUE: SIGTERM, SIGKILL after the grace period, back in the queue.
    run = _interrupted_run(cfg, lambda job: subprocess.run(["scontrol", "requeue", job], check=True))
    _check(run, cfg, reference)


def test_a_timed_out_train_job_is_requeued_and_ends_as_an_uninterrupted_run(tiny_workspace, reference):  # noqa: F811
    cfg = _on_slurm()
    folder = log_folder(cfg.launcher, f"train-{cfg.name}") / "%j"
    # What Slurm does near the time limit: submitit's --signal USR2 -> checkpoint -> `scontrol requeue`.
    run = _interrupted_run(cfg, lambda job: submitit.SlurmJob(folder=folder, job_id=job)._interrupt(timeout=True))
    _check(run, cfg, reference)
