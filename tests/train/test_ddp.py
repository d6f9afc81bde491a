"""Two gloo processes (torchrun) give the loss and gradients of one process on the whole batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _ddp_worker import model_and_batch, step  # noqa: E402
from timelimits import JOB_TIME_MIN  # noqa: E402

from virtue.numerics import close, relative_tolerance  # noqa: E402

TOL = relative_tolerance(torch.float32)


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run([*cmd, str(HERE / "_ddp_worker.py"), str(tmp_path)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]

    loss, grads = step(*model_and_batch())
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        # gloo sums the ranks' shards in another order: equal within float32 rounding
        assert abs(got["loss"].item() - loss.item()) <= TOL * abs(loss.item())
        for a, b in zip(got["grads"], grads, strict=True):
            assert close(a, b, torch.float32)


@pytest.mark.slow
def test_training_loop_under_torchrun_matches_one_process(tmp_path):
    """The whole loop (sampler shards, gathered loss, gradient averaging, checkpoints) on 2 gloo ranks ends
    where one process ends (no dropout: per-rank dropout streams differ by design)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    opts = ["steps=4", "dropout=0.0", "gradcache_chunk=2"]
    script = str(HERE / "_fit_toy.py")
    one = subprocess.run([sys.executable, script, str(tmp_path / "one"), str(tmp_path), *opts], env=env)
    assert one.returncode == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script]
    two = subprocess.run([*cmd, str(tmp_path / "two"), str(tmp_path), *opts], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "two" / "trainable.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert close(a[k], b[k], torch.float32), k
    losses = [
        [json.loads(x)["loss"] for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
        for r in ("one", "two")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=TOL)


@pytest.mark.slow
def test_submitit_tasks_form_the_process_group(tmp_path, monkeypatch):
    """A submitit job with 2 tasks (the local executor stands in for a Slurm allocation) trains as one group
    through TorchDistributedEnvironment, and ends where one process ends."""
    submitit = pytest.importorskip("submitit")
    from _fit_toy import main

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE.parent.parent), str(HERE)]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    opts = ["steps=3", "dropout=0.0"]
    main(str(tmp_path / "one"), str(tmp_path), opts)
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="local")
    executor.update_parameters(tasks_per_node=2, timeout_min=JOB_TIME_MIN)
    job = executor.submit(main, str(tmp_path / "two"), str(tmp_path), opts)
    assert job.results() == [str(tmp_path / "two")] * 2
    assert (tmp_path / "two" / "checkpoints" / "step-00000003" / "rng-rank1.pt").is_file()  # one group of 2
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 3  # written by rank 0 only
    a = load_file(str(tmp_path / "one" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "two" / "trainable.safetensors"))
    for k in a:
        assert close(a[k], b[k], torch.float32), k
