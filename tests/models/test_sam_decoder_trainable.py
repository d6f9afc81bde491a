"""The fallback regime (model.sam_trainable: decoder, not the paper's): SAM-2's prompt encoder and two-way
transformer are trained, its image encoder, the vision tower and the token embeddings stay frozen."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from test_embedder import _sides

from virtue.config.model import ModelConfig
from virtue.numerics import close

PATH_WEIGHTS = [  # on the way from the prompt / image embeddings to F_s (the "keys")
    "segmentation.sam.prompt_encoder.point_embed.weight",
    "segmentation.sam.mask_decoder.iou_token.weight",
    "segmentation.sam.mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight",
    "segmentation.sam.mask_decoder.transformer.layers.0.self_attn.v_proj.weight",
    "segmentation.sam.mask_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight",
]


def test_gradients_reach_the_decoder_but_never_the_frozen_backbones(build, images):
    embedder, processor = build(sam_trainable="decoder")
    embedder.train()
    params = dict(embedder.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert set(PATH_WEIGHTS) <= trainable
    assert all(
        n.startswith(("connector.", "segmentation.sam.prompt_encoder.", "segmentation.sam.mask_decoder."))
        or "lora_" in n
        for n in trainable
    )
    assert not any(p.requires_grad for p in embedder.segmentation.sam.vision_encoder.parameters())
    assert not embedder.segmentation.sam.no_memory_embedding.requires_grad
    assert not any(p.requires_grad for p in embedder.vlm.visual.parameters())
    assert not embedder.vlm.language_model.get_input_embeddings().weight.requires_grad
    assert not any(p.requires_grad for p in embedder.segmentation.sam.mask_decoder.iou_prediction_head.parameters())

    out = embedder(processor(_sides(images)))
    (out @ out.T).sum().backward()
    for n in PATH_WEIGHTS:
        assert params[n].grad is not None and params[n].grad.abs().sum() > 0, n
    for n, p in params.items():
        if not p.requires_grad:
            assert p.grad is None, n


def test_frozen_split_caches_image_embeddings(build, images):
    embedder, processor = build(sam_trainable="decoder")
    default, _ = build()
    inputs = processor(_sides(images))
    with torch.no_grad():
        frozen = embedder.frozen_features(inputs)
        assert set(frozen) == {"vision", "sam_embed"}
        # the cached tensor is the decoder's input, identical to the default regime's image embeddings
        emb = default.segmentation.image_embeddings(inputs.sam_pixels)
        torch.testing.assert_close(frozen["sam_embed"][inputs.has_seg], emb, atol=0, rtol=0)
        assert frozen["sam_embed"][~inputs.has_seg].eq(0).all()
        torch.testing.assert_close(embedder(inputs, frozen=frozen), embedder(inputs), atol=0, rtol=0)
        # same weights, other regime: the same embeddings (the decoder runs in forward instead)
        assert close(embedder(inputs), default(inputs), torch.float32, rows=True)


def test_fingerprint_ignores_the_trained_decoder(build):
    embedder, _ = build(sam_trainable="decoder")
    fp = embedder.frozen_fingerprint()
    state = embedder.trainable_state_dict()
    assert any(k.startswith("segmentation.sam.mask_decoder.transformer.") for k in state)
    embedder.load_trainable_state_dict({k: v + 1 for k, v in state.items()})
    assert embedder.frozen_fingerprint() == fp  # decoder weights changed: image embeddings did not
    with torch.no_grad():
        next(embedder.segmentation.sam.vision_encoder.parameters()).add_(1.0)
    assert embedder.frozen_fingerprint() != fp


def test_trainable_state_round_trip_carries_the_decoder(build, images):
    a, processor = build(sam_trainable="decoder")
    b, _ = build(sam_trainable="decoder")
    with torch.no_grad():
        for n, p in a.named_parameters():
            if n.startswith("segmentation.") and p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    inputs = processor(_sides(images)[:2])
    with torch.no_grad():
        assert (a(inputs) - b(inputs)).abs().max() > 1e-4  # the decoder alone changes the embeddings
        b.load_trainable_state_dict(a.trainable_state_dict())
        torch.testing.assert_close(a(inputs), b(inputs), atol=0, rtol=0)
    default, _ = build()
    with pytest.raises(Exception, match="unexpected"):  # a decoder checkpoint does not fit the paper's regime
        default.load_trainable_state_dict(a.trainable_state_dict())


def test_default_is_the_paper_freeze_policy_and_global_refuses_decoder(build):
    embedder, _ = build()
    assert not any(p.requires_grad for p in embedder.segmentation.parameters())
    assert ModelConfig().sam_trainable == "none"
    with pytest.raises(ValidationError, match="sam_trainable"):
        ModelConfig(variant="global", sam_trainable="decoder")
