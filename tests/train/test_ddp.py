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
from _fit_toy import one_process_and_two_ranks  # noqa: E402
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
    one_process_and_two_ranks(tmp_path, ["steps=4", "dropout=0.0", "gradcache_chunk=2"])
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


def test_nccl_collectives_go_on_the_ranks_own_gpu():
    from virtue.train.distributed import collective_device

    assert collective_device("nccl", 3) == torch.device("cuda", 3)
    assert collective_device("cpu:gloo,cuda:nccl", 1) == torch.device("cuda", 1)  # init_distributed's on CUDA
    assert collective_device("gloo", 3) == torch.device("cpu")
    assert collective_device() == torch.device("cpu")  # no process group


def run_stop_worker(out: Path, device: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run([*cmd, str(HERE / "_stop_worker.py"), str(out), device], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """Rank 1 alone is signalled; both ranks stop at that step, through a reduction on the group's device."""
    from _stop_worker import STOP_AT

    for rank, got in enumerate(run_stop_worker(tmp_path, "cpu")):
        assert got["stopped_at"] == STOP_AT, rank
        assert got["chosen"] == "cpu"
        assert got["devices"][: STOP_AT + 1] == [got["chosen"]] * (STOP_AT + 1)  # one reduction a step
        if not torch.cuda.is_available():  # told the group is NCCL, it makes its tensor on the GPU
            assert "CUDA" in (got["nccl_error"] or ""), got["nccl_error"]  # which a CPU-only torch cannot make


@pytest.mark.gpu
@pytest.mark.slow
def test_stop_request_under_nccl(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    from _stop_worker import STOP_AT

    for rank, got in enumerate(run_stop_worker(tmp_path, "cuda")):
        assert got["stopped_at"] == STOP_AT, rank
        assert got["chosen"] == got["env_device"] == f"cuda:{rank}"
        assert set(got["devices"]) == {got["chosen"]}
