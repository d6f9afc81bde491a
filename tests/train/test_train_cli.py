"""`virtue train` end to end on SCaR-synth micro data and the tiny model with preset backbones:
SIGTERM -> checkpoint + exit 143 -> resume to identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from timelimits import WAIT_S

from virtue.config import load_experiment
from virtue.data.synth.build import synthesize
from virtue.paths import workspace_root

PRESETS = ["model.vlm={preset: qwen2vl-tiny}", "model.sam={preset: sam2-tiny}"]


def _args(tmp: Path, out: str, *extra: str) -> list[str]:
    return [
        "train",
        "tiny",
        *PRESETS,
        f"data.scar_dir={tmp / 'scar'}",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "train.hard_negatives=2",
        f"train.feature_cache_dir={tmp / 'cache'}",
        f"train.output_dir={tmp / out}",
        "tracking.enabled=false",
        *extra,
    ]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "trainable.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_virtue_train_deterministic_and_resumable(tmp_path, run_cli):
    cfg = load_experiment("tiny", [f"data.scar_dir={tmp_path / 'scar'}", "data.synth.scar_train_per_subset=8"])
    synthesize(cfg.data, workspace_root(), only="scar", progress=False)
    env = {"OMP_NUM_THREADS": "1"}

    a = run_cli(*_args(tmp_path, "a", "train.steps=4", "train.checkpoint_every=2"), env=env)
    assert a.returncode == 0, a.stderr[-3000:]
    assert Path(a.stdout.strip()) == tmp_path / "a" / "trainable.safetensors"
    assert (tmp_path / "a" / "config.yaml").is_file()
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # SIGTERM in the middle of a run: the step finishes, a checkpoint is written, exit 128 + 15.
    cmd = [sys.executable, "-m", "virtue.cli.main", *_args(tmp_path, "c", "train.steps=4", "train.checkpoint_every=0")]
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "c" / "metrics.jsonl"
    deadline = time.time() + WAIT_S
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=WAIT_S)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "c" / "checkpoints").glob("step-*"))
    c = run_cli(*_args(tmp_path, "c", "train.steps=4", "train.checkpoint_every=0"), env=env)
    assert c.returncode == 0, c.stderr[-3000:]
    # identical to the uninterrupted run: resume identity, and determinism across processes
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_virtue_train_bad_override_is_one_line(run_cli):
    r = run_cli("train", "tiny", "train.hard_negatives=-1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "hard_negatives" in r.stderr


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_both_sources_weight_only_mmeb_train(tmp_path):
    from virtue.train.loop import load_train_data
    from virtue.train.sampler import SourceBatchSampler

    dirs = [f"data.scar_dir={tmp_path / 'scar'}", f"data.mmeb_dir={tmp_path / 'mmeb'}"]
    sizes = ["data.synth.scar_train_per_subset=8", "data.synth.mmeb_train_per_task=8"]
    synthesize(load_experiment("tiny", [*dirs, *sizes]).data, workspace_root(), progress=False)
    cfg = load_experiment("tiny", [*dirs, "train.source=both", "train.mmeb_weight=0.5"])
    pairs, weights = load_train_data(cfg)
    mmeb = {p.source for p in pairs} - {"crowded", "mixed", "relation", "scene", "small"}  # SCaR's subsets
    assert mmeb and weights == {task: 0.5 for task in mmeb}
    s = SourceBatchSampler(pairs, 4, seed=0, hard_negatives=2, weights=weights)
    assert s.kept == {src: (1 if src in mmeb else 2) for src in s.sources}  # 8 pairs = 2 batches of 4 each
    assert load_train_data(load_experiment("tiny", [*dirs, "train.source=both"]))[1] == {}


@pytest.mark.slow
def test_variants_train_side_by_side_as_single_runs_do(tmp_path, run_cli):
    """`--variants` submits one local job per variant at once; each run equals the same variant trained alone."""
    cfg = load_experiment("tiny", [f"data.scar_dir={tmp_path / 'scar'}", "data.synth.scar_train_per_subset=8"])
    synthesize(cfg.data, workspace_root(), only="scar", progress=False)
    env = {"OMP_NUM_THREADS": "1"}
    common = ["train.steps=2", "train.checkpoint_every=0", "launcher.cpus_per_task=1"]
    both = _args(tmp_path, "runs/{name}", *common, "name=pair", "launcher.kind=local")
    log_dir = f"launcher.log_dir={tmp_path / 'logs'}"
    plan = run_cli(*both, log_dir, "--variants", "global", "crop", "--dry-run", env=env)
    assert plan.returncode == 0 and plan.stdout.count(": new; no measured step rate") == 2, plan.stdout
    assert "jobs: 2; resources: local executor on this machine, 2 at once, 1 torch threads each" in plan.stdout
    assert not (tmp_path / "runs").exists()  # the dry run wrote nothing
    r = run_cli(*both, log_dir, "--variants", "global", "crop", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    plan = run_cli(*both, log_dir, "--variants", "global", "crop", "virtue", "--dry-run", env=env)
    lines = plan.stdout.splitlines()
    assert "pair-global: global, 2 steps of 4" in lines[1] and "finished (weights there); 0 min at" in lines[1]
    assert f"(measured in {tmp_path / 'runs' / 'pair-global'})" in lines[1]
    assert "pair-virtue: virtue" in lines[3] and ": new; no measured step rate" in lines[3]  # no virtue run yet
    assert r.stdout.split() == [
        str(tmp_path / "runs" / f"pair-{v}" / "trainable.safetensors") for v in ("global", "crop")
    ]
    alone = run_cli(*_args(tmp_path, "alone", *common, "model.variant=crop"), env=env)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert _same(_weights(tmp_path / "runs" / "pair-crop"), _weights(tmp_path / "alone"))
    assert not _same(_weights(tmp_path / "runs" / "pair-crop"), _weights(tmp_path / "runs" / "pair-global"))


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_variants_from_a_bad_file_is_one_line(tmp_path, run_cli):
    (tmp_path / "p.yaml").write_text("variants: virtue\n")
    for path, message in (
        (tmp_path / "p.yaml", "key 'variants' must be a non-empty list"),
        (tmp_path / "no.yaml", "cannot read"),
    ):
        r = run_cli("train", "tiny", "--variants-from", path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    r = run_cli("train", "tiny", "--variants", "virtue", "other")
    assert r.returncode == 2 and "model.variant" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_variants_progress_reads_complete_lines_only(tmp_path):
    from virtue.cli.train_cmd import _progress, variant_configs

    cfgs = variant_configs("tiny", [f"train.output_dir={tmp_path}/{{name}}", "train.steps=10"], ["virtue", "crop"])
    (tmp_path / "tiny-virtue").mkdir()
    (tmp_path / "tiny-virtue" / "metrics.jsonl").write_text('{"step": 3}\n{"step": 4}\n{"step": 5, "lo')
    bar, poll = _progress(cfgs, in_cells=False)
    with bar:
        poll()  # the run is writing step 5: 4 done; crop has not started
        assert (bar.n, bar.total) == (4, 20)
        (tmp_path / "tiny-crop").mkdir()
        (tmp_path / "tiny-crop" / "metrics.jsonl").write_text('{"step": 10}\n')
        poll()
        assert bar.n == 14
