"""`dvc repro` killed in the middle of training, then run again, resumes from the checkpoints: the train stage
trains in runs/cells/<key> (`virtue train --in-cells`), outside its outputs, which DVC deletes before the
rerun. The real commands on a micro configuration in a temporary copy of the workspace; the driver, DVC and
the training job die together (SIGKILL to the process group), as on a login node that goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from timelimits import WAIT_S

from .test_repro_micro import MICRO
from .workspace import BIN, copy_workspace, dvc, env, set_params

pytestmark = pytest.mark.slow

STEPS = 16


def _cell_checkpoints(ws) -> list:
    return sorted(ws.glob("runs/cells/*/checkpoints/step-*"))


def test_dvc_repro_after_a_killed_driver_resumes_training_from_the_checkpoint(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    (ws / "experiments" / "micro.yaml").write_text(MICRO.replace("checkpoint_every: 0", "checkpoint_every: 1"))
    set_params(
        ws,
        experiment="micro",
        synth={"scar_train_per_subset": 16, "scar_eval_per_subset": 4, "mmeb_train_per_task": 8,
               "mmeb_eval_per_task": 4, "i2i_eval_queries": 3},  # fmt: skip
        pretrain={"sam": {"steps": 2}, "vlm": {"steps": 2}},
        train={"steps": STEPS, "batch_size": 8, "warmup_steps": 0, "hard_negatives": 3, "compile": "off"},
        variants=["virtue"],
    )
    e = {k: v for k, v in env().items() if k not in ("VIRTUE_ROOT", "MLFLOW_TRACKING_URI")}
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", "train"], cwd=ws, env=e, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + WAIT_S
    while len(_cell_checkpoints(ws)) < 2:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "training did not checkpoint"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # DVC, the `virtue train` driver and its job, at once
    proc.wait(WAIT_S)
    kept = {p.name: (p / "trainable.safetensors").stat().st_mtime_ns for p in _cell_checkpoints(ws)}
    [cell] = {p.parent.parent for p in _cell_checkpoints(ws)}
    assert not (cell / "trainable.safetensors").exists() and len(kept) < STEPS

    r = dvc(ws, "repro", "train")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name, mtime in kept.items():  # resumed from them: the checkpoints of before the kill are untouched
        assert (cell / "checkpoints" / name / "trainable.safetensors").stat().st_mtime_ns == mtime
    run = ws / "runs" / "train" / "micro-virtue"
    assert (run / "cell.txt").read_text().strip() == str(cell.relative_to(ws))
    assert (run / "trainable.safetensors").read_bytes() == (cell / "trainable.safetensors").read_bytes()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # every step once
    st = dvc(ws, "status", "train")
    assert st.returncode == 0 and "up to date" in st.stdout, st.stdout
