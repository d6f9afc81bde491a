"""Signals on the real `virtue train` (tiny model, preset backbones, micro SCaR-synth).

Already covered elsewhere, not repeated here: SIGKILL then resume == uninterrupted (toy loop in a subprocess,
tests/train/test_train_loop.py::test_sigkill_then_resume_identical), SIGTERM/SIGUSR2 -> checkpoint -> resume
identical (tests/train/test_train_loop.py::test_interrupt_and_resume_identical, and SIGTERM through the CLI in
tests/train/test_train_cli.py). This file adds SIGUSR2 and SIGKILL on the real command with a checkpoint
every step, and checks that what a killed run leaves behind is never half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from virtue.train.checkpoint import latest_checkpoint

from .test_bad_inputs import train_args

STEPS = ("train.steps=6", "train.checkpoint_every=1")


def _cmd(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "virtue.cli.main", *train_args(data, out, *STEPS)]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _same(a: Path, b: Path) -> None:
    x, y = load_file(str(a / "trainable.safetensors")), load_file(str(b / "trainable.safetensors"))
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def reference(micro_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    r = subprocess.run(_cmd(micro_data, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _start_and_wait(data: Path, out: Path, steps_done: int) -> subprocess.Popen:
    proc = subprocess.Popen(_cmd(data, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = out / "metrics.jsonl", time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= steps_done:
            break
        time.sleep(0.01)
    return proc


def _complete_checkpoints_only(ckpts: Path) -> None:
    """Every step-* folder is whole (readable weights, meta); temporaries are hidden, never picked up."""
    for step in ckpts.glob("step-*"):
        assert (step / "meta.json").is_file(), step
        load_file(str(step / "trainable.safetensors"))
    latest = latest_checkpoint(ckpts)
    assert latest is None or latest.name.startswith("step-")


@pytest.mark.slow
def test_sigusr2_checkpoints_and_resumes_identically(micro_data, tmp_path, reference):
    out = tmp_path / "run"
    proc = _start_and_wait(micro_data, out, 2)
    proc.send_signal(signal.SIGUSR2)
    _, err = proc.communicate(timeout=600)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGUSR2, err[-3000:]
    assert len(err.strip().splitlines()) == 1 and "checkpoint" in err
    assert not (out / "trainable.safetensors").exists()  # no final weights from an unfinished run
    _complete_checkpoints_only(out / "checkpoints")
    again = subprocess.run(_cmd(micro_data, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    _same(out, reference)


@pytest.mark.slow
def test_sigkill_leaves_only_whole_checkpoints_and_resumes_identically(micro_data, tmp_path, reference):
    out = tmp_path / "run"
    proc = _start_and_wait(micro_data, out, 3)
    proc.kill()  # SIGKILL: no handler runs; may land in the middle of writing a checkpoint
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    assert not (out / "trainable.safetensors").exists()
    _complete_checkpoints_only(out / "checkpoints")
    again = subprocess.run(_cmd(micro_data, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    _same(out, reference)
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # temporaries cleaned
