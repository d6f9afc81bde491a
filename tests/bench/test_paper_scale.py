"""The paper-scale estimate counts the real model on the meta device, and the GPU check's training command is a
valid configuration of the real entry point (it runs only where CUDA is)."""

from __future__ import annotations

import pytest
import torch

from virtue.bench.paper_scale import TRAIN_IMAGE_TOKENS, _gpu_train_command, estimate, gpu_check
from virtue.config import load_experiment


@pytest.mark.slow
def test_estimate_counts_the_2b_llm():
    r = estimate("paper-2b")
    assert r["per_gpu_batch"] == 32 and r["gradcache_chunk"] == 2
    assert r["query_tokens"] == 256 + TRAIN_IMAGE_TOKENS + 48
    # forward alone is 2 FLOPs per weight per token over the LLM's ~1.5 B non-embedding weights; backward
    # through frozen weights adds about as much again, so forward+backward lies between 2x and 4x that
    llm = r["parameters"]["llm_and_vision"] - r["parameters"]["vision"] - 151_936 * 1536
    lower, upper = 2 * 2 * llm * r["query_tokens"], 4 * 2 * llm * r["query_tokens"]
    assert lower < r["llm_fwd_bwd_tflop_per_query_row"] * 1e12 < upper
    # peft's DoRA weight norm pushes an identity of the input width through each adapter: down_proj's
    # 8960 x 8960 float32 identity is kept for backward in every one of the 28 layers, whatever the batch
    assert r["activation_gib_fixed_per_forward"] * 2**30 >= 28 * 8960 * 8960 * 4
    assert r["activation_gib_per_query_row"] > 0
    assert r["peak_gib_per_gpu"] > r["peak_breakdown_gib"]["frozen_weights_bf16"] > 4.0


@pytest.mark.parametrize("gpus", [1, 2])
def test_gpu_check_command_is_a_valid_config(tmp_path, gpus):
    cmd = _gpu_train_command(gpus, tmp_path / "run", tmp_path / "data", 20, "paper-2b")
    at = cmd.index("train")
    cfg = load_experiment(cmd[at + 1], cmd[at + 2 :])
    assert cfg.model.vlm.preset == "qwen2vl-2b" and cfg.model.sam.preset == "sam2.1-hiera-base-plus"
    assert cfg.train.batch_size == 32 * gpus and cfg.train.gradcache_chunk == 2 and cfg.train.steps == 20
    assert ("torch.distributed.run" in cmd) == (gpus > 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_check_refuses_without_cuda(tmp_path):
    with pytest.raises(SystemExit, match="no CUDA"):
        gpu_check(tmp_path, 1, 2)
