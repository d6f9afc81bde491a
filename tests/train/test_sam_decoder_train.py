"""Training in the fallback regime (model.sam_trainable: decoder): the optimizer, the feature cache and the
run's weights carry SAM-2's trained decoder; its image encoder stays as built."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import encode_twice_through_cache, micro_pairs, tiny_experiment  # noqa: E402

from virtue.models import build_embedder  # noqa: E402
from virtue.models.frozen import frozen_settings  # noqa: E402
from virtue.train.distributed import seed_everything  # noqa: E402
from virtue.train.loop import _optimizer, fit  # noqa: E402

DECODER = "model.sam_trainable=decoder"


def _build(cfg):
    seed_everything(cfg.train.seed)
    return build_embedder(cfg.model, seed=cfg.train.seed)


def test_cached_equals_uncached_with_a_trained_decoder(tmp_path):
    cfg = tiny_experiment(tmp_path, DECODER)
    # a trained decoder puts other tensors in the entries
    assert frozen_settings(cfg.model) != frozen_settings(tiny_experiment(tmp_path).model)
    ref, out, prepared, cache, n = encode_twice_through_cache(cfg, tmp_path)
    assert cache.hits == n - 1 and set(prepared[1]) == {"vision", "sam_embed"}
    assert torch.equal(out, ref)


def test_decoder_joins_the_connector_learning_rate(tmp_path):
    cfg = tiny_experiment(tmp_path, DECODER, "train.lr=1e-3", "train.connector_lr=5e-3")
    embedder, _ = _build(cfg)
    optimizer = _optimizer(embedder, cfg.train)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for n, p in embedder.named_parameters():
        if p.requires_grad:
            assert lr_of[id(p)] == (1e-3 if "lora_" in n else 5e-3), n
    decoder = embedder.segmentation.sam.mask_decoder.transformer.layers[0].self_attn.q_proj.weight
    assert lr_of[id(decoder)] == 5e-3


def test_fit_trains_the_decoder_and_keeps_the_image_encoder(tmp_path):
    cfg = tiny_experiment(tmp_path, DECODER, "train.steps=2", "train.checkpoint_every=0")
    embedder, processor = _build(cfg)
    before = {n: p.detach().clone() for n, p in embedder.named_parameters()}
    run = fit(embedder, processor, micro_pairs(tmp_path / "img", n=8), cfg, tmp_path / "run")
    weights = load_file(str(run / "trainable.safetensors"))
    key = "segmentation.sam.mask_decoder.transformer.layers.0.self_attn.q_proj.weight"
    assert key in weights and not torch.equal(weights[key], before[key])  # trained and saved
    for n, p in embedder.named_parameters():
        if n.startswith("segmentation.sam.vision_encoder.") or n.startswith("vlm.visual."):
            assert torch.equal(p, before[n]), n
    fresh, _ = _build(cfg)
    fresh.load_trainable_state_dict(weights)  # what eval and resume do
    assert torch.equal(dict(fresh.named_parameters())[key], weights[key])
