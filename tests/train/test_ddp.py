"""Two gloo processes (torchrun) give the loss and gradients of one process on the whole batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _ddp_worker import model_and_batch, step  # noqa: E402


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run([*cmd, str(HERE / "_ddp_worker.py"), str(tmp_path)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]

    loss, grads = step(*model_and_batch())
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert abs(got["loss"].item() - loss.item()) < 1e-6
        for a, b in zip(got["grads"], grads, strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
