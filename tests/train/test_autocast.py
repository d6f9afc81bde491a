"""train.autocast on the real tiny model: under bfloat16 autocast the LLM's matmuls (plain and adapted
Linears, DoRA with dropout) run in bfloat16 while the trained weights stay float32 and learn; off (and auto
on CPU) everything stays float32. model.attention: flash_attention_2 is refused where it cannot run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import micro_pairs, tiny_experiment  # noqa: E402

from virtue.errors import UserError  # noqa: E402
from virtue.models import build_embedder  # noqa: E402
from virtue.models.precision import autocast_dtype, mixed_precision  # noqa: E402
from virtue.train.distributed import seed_everything  # noqa: E402
from virtue.train.loop import fit  # noqa: E402


def _train_and_watch(tmp_path: Path, autocast: str):
    """Two training steps of the tiny VIRTUE model with DoRA (dropout 0.1) and float32 backbones; returns the
    output dtypes seen by forward hooks on LLM layers, the gradient dtypes, and the weights before and after."""
    cfg = tiny_experiment(
        tmp_path,
        "model.dtype=float32",
        "model.adapter.kind=dora",
        "model.adapter.dropout=0.1",
        f"train.autocast={autocast}",
        "train.steps=2",
        "train.feature_cache=false",
    )
    seed_everything(cfg.train.seed)
    embedder, processor = build_embedder(cfg.model, seed=cfg.train.seed)
    layer = embedder.vlm.language_model.layers[0]
    watched = {
        "plain Linear": layer.mlp.gate_proj,  # no adapter on it
        "adapted Linear": layer.self_attn.q_proj,  # peft's DoRA wrapper: base layer + adapter
        "lora_A": layer.self_attn.q_proj.lora_A["default"],
        "lora_B": layer.self_attn.q_proj.lora_B["default"],
    }
    seen: dict[str, set] = {k: set() for k in watched}
    for name, module in watched.items():
        module.register_forward_hook(lambda m, i, out, name=name: seen[name].add(out.dtype))
    grads: set = set()
    trained = {n: p for n, p in embedder.named_parameters() if p.requires_grad}
    for p in trained.values():
        p.register_hook(lambda g: grads.add(g.dtype))
    before = {n: p.detach().clone() for n, p in trained.items()}
    fit(embedder, processor, micro_pairs(tmp_path / "img"), cfg, tmp_path / f"run-{autocast}")
    return seen, grads, before, trained


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_bfloat16_autocast_matmuls_with_float32_master_weights(tmp_path):
    seen, grads, before, trained = _train_and_watch(tmp_path, "bfloat16")
    assert all(dtypes == {torch.bfloat16} for dtypes in seen.values()), seen
    assert grads == {torch.float32}
    assert any("lora_magnitude_vector" in n for n in trained) and any(n.startswith("connector.") for n in trained)
    assert all(p.dtype == torch.float32 for p in trained.values())
    assert all(not torch.equal(p.detach(), before[n]) for n, p in trained.items())  # every trained tensor moved


@pytest.mark.parametrize("autocast", ["off", "auto"])  # auto on CPU: no autocast (the embedded default)
def test_without_autocast_everything_stays_float32(tmp_path, autocast):
    seen, grads, _, trained = _train_and_watch(tmp_path, autocast)
    assert all(dtypes == {torch.float32} for dtypes in seen.values()), seen
    assert grads == {torch.float32} and all(p.dtype == torch.float32 for p in trained.values())


def test_autocast_modes():
    assert autocast_dtype("auto", "cuda:1") == torch.bfloat16 and autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("bfloat16", "cpu") == torch.bfloat16 and autocast_dtype("off", "cuda") is None
    with mixed_precision("auto", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with mixed_precision("bfloat16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_flash_attention_refused_where_it_cannot_run_but_meta_builds_work(tmp_path):
    import importlib.util

    cfg = tiny_experiment(tmp_path, "model.attention=flash_attention_2", "model.dtype=bfloat16")
    if importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available():
        pytest.skip("flash_attn runs here")
    with pytest.raises(UserError, match=r"^model\.attention: flash_attention_2 "):
        build_embedder(cfg.model)
    embedder, _ = build_embedder(cfg.model, meta=True)  # parameter counts of a config that names it
    assert embedder.vlm.language_model.config._attn_implementation == "sdpa"
