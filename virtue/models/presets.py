"""Named backbone architectures as data: tiny ones for the embedded default (random init, trained here)
and the paper's (built on the meta device without any download).

SAM-2 presets take the SAM input side, because the prompt encoder and the Hiera position embeddings are
sized for it; the image-side map of the mask decoder has side image_size / 16."""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLConfig, Sam2Config

# The special tokens of Qwen2-VL that the embedder uses; tiny tokenizers put them first, at these ids.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
TINY_VOCAB = 2048

_QWEN2VL: dict[str, dict[str, Any]] = {
    # LLM width 160 (5 heads of 32), 3 layers; vision tower 128 wide, depth 2, patch 8, merge 2.
    "qwen2vl-tiny": dict(
        text=dict(
            vocab_size=TINY_VOCAB,
            hidden_size=160,
            intermediate_size=448,
            num_hidden_layers=3,
            num_attention_heads=5,
            num_key_value_heads=5,
            max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=0,
        ),
        vision=dict(depth=2, embed_dim=128, hidden_size=160, num_heads=4, patch_size=8, spatial_merge_size=2),
        ids=dict(image_token_id=5, video_token_id=6, vision_start_token_id=3, vision_end_token_id=4),
        tie=True,
    ),
    # Qwen/Qwen2-VL-2B-Instruct and -7B-Instruct (their config.json values).
    "qwen2vl-2b": dict(
        text=dict(
            vocab_size=151936,
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            tie_word_embeddings=True,
        ),
        vision=dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, patch_size=14, spatial_merge_size=2),
        ids={},
        tie=True,
    ),
    "qwen2vl-7b": dict(
        text=dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            tie_word_embeddings=False,
        ),
        vision=dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, patch_size=14, spatial_merge_size=2),
        ids={},
        tie=False,
    ),
}

# Hiera trunks (SAM 2.1 configs) and tiny trunks of growing capacity. Hidden width of the decoder is 256
# for the paper's models (the connector reads 256 channels) and smaller for the tiny ones.
_SAM2: dict[str, dict[str, Any]] = {
    "sam2-tiny-s": dict(
        hiera=dict(hidden_size=16, blocks=[1, 1, 2, 1], heads=[1, 1, 2, 2], windows=[4, 4, 4, 4], glob=[3], bkg=[4, 4]),
        fpn=32,
        decoder=dict(mlp_dim=64, num_attention_heads=2, num_hidden_layers=1, iou_head_hidden_dim=32),
    ),
    "sam2-tiny": dict(
        hiera=dict(hidden_size=24, blocks=[1, 1, 2, 1], heads=[1, 1, 2, 2], windows=[4, 4, 4, 4], glob=[3], bkg=[4, 4]),
        fpn=64,
        decoder=dict(mlp_dim=128, num_attention_heads=4, num_hidden_layers=2, iou_head_hidden_dim=64),
    ),
    "sam2-tiny-l": dict(
        hiera=dict(hidden_size=32, blocks=[1, 2, 3, 1], heads=[1, 2, 4, 4], windows=[4, 4, 4, 4], glob=[4], bkg=[4, 4]),
        fpn=96,
        decoder=dict(mlp_dim=256, num_attention_heads=4, num_hidden_layers=2, iou_head_hidden_dim=96),
    ),
    "sam2.1-hiera-tiny": dict(
        hiera=dict(
            hidden_size=96, blocks=[1, 2, 7, 2], heads=[1, 2, 4, 8], windows=[8, 4, 14, 7], glob=[5, 7, 9], bkg=[7, 7]
        ),
        fpn=256,
        decoder={},
    ),
    "sam2.1-hiera-small": dict(
        hiera=dict(
            hidden_size=96,
            blocks=[1, 2, 11, 2],
            heads=[1, 2, 4, 8],
            windows=[8, 4, 14, 7],
            glob=[7, 10, 13],
            bkg=[7, 7],
        ),
        fpn=256,
        decoder={},
    ),
    "sam2.1-hiera-base-plus": dict(
        hiera=dict(
            hidden_size=112,
            blocks=[2, 3, 16, 3],
            heads=[2, 4, 8, 16],
            windows=[8, 4, 14, 7],
            glob=[12, 16, 20],
            bkg=[14, 14],
        ),
        fpn=256,
        decoder={},
    ),
    "sam2.1-hiera-large": dict(
        hiera=dict(
            hidden_size=144,
            blocks=[2, 6, 36, 4],
            heads=[2, 4, 8, 16],
            windows=[8, 4, 16, 8],
            glob=[23, 33, 43],
            bkg=[7, 7],
        ),
        fpn=256,
        decoder={},
    ),
}

# Hub ids of the paper presets, so a config may name either.
HUB_IDS = {
    "Qwen/Qwen2-VL-2B-Instruct": "qwen2vl-2b",
    "Qwen/Qwen2-VL-7B-Instruct": "qwen2vl-7b",
    "facebook/sam2.1-hiera-tiny": "sam2.1-hiera-tiny",
    "facebook/sam2.1-hiera-small": "sam2.1-hiera-small",
    "facebook/sam2.1-hiera-base-plus": "sam2.1-hiera-base-plus",
    "facebook/sam2.1-hiera-large": "sam2.1-hiera-large",
}


def vlm_presets() -> list[str]:
    return sorted(_QWEN2VL)


def sam_presets() -> list[str]:
    return sorted(_SAM2)


def qwen2vl_config(name: str) -> Qwen2VLConfig:
    if name not in _QWEN2VL:
        raise KeyError(f"unknown Qwen2-VL preset '{name}' (known: {', '.join(vlm_presets())})")
    p = _QWEN2VL[name]
    return Qwen2VLConfig(
        text_config=dict(p["text"]),
        vision_config=dict(p["vision"]),
        tie_word_embeddings=p["tie"],
        **p["ids"],
    )


def sam2_config(name: str, image_size: int = 1024) -> Sam2Config:
    """A SAM-2 config for a square input of `image_size` pixels (a multiple of 32)."""
    if name not in _SAM2:
        raise KeyError(f"unknown SAM-2 preset '{name}' (known: {', '.join(sam_presets())})")
    if image_size % 32:
        raise ValueError(f"SAM-2 input side must be a multiple of 32, got {image_size}")
    p = _SAM2[name]
    h = p["hiera"]
    dims = [h["hidden_size"] * 2**i for i in range(4)]
    # Hiera strides 4, 8, 16, 32; the neck keeps the first three levels (stride 4, 8, 16).
    sizes = [[image_size // s, image_size // s] for s in (4, 8, 16)]
    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=h["hidden_size"],
        num_attention_heads=h["heads"][0],
        image_size=[image_size, image_size],
        blocks_per_stage=h["blocks"],
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=h["heads"],
        window_size_per_stage=h["windows"],
        global_attention_blocks=h["glob"],
        window_positional_embedding_background_size=h["bkg"],
    )
    vision = dict(
        backbone_config=backbone,
        backbone_channel_list=dims[::-1],
        backbone_feature_sizes=sizes,
        fpn_hidden_size=p["fpn"],
    )
    prompt = dict(hidden_size=p["fpn"], image_size=image_size, patch_size=16)
    decoder = dict(hidden_size=p["fpn"], **p["decoder"])
    return Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
