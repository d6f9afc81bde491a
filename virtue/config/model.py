"""`model:` - the embedder: backbones, segmentation stream, connector, adapters, variant."""

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section
from .machine import cpu_has_amx, cuda_available


def seg_token_side(seg_tokens: int, map_side: int) -> int:
    """The |S| rule, the one place it is written: the connector pools SAM-2's map_side x map_side map into a
    sqrt(|S|) x sqrt(|S|) grid with kernel = stride, so |S| must be a square whose root divides map_side.
    Returns that root; ValueError otherwise. Used by the config validator, the builder and the connector."""
    side = math.isqrt(seg_tokens) if seg_tokens >= 1 else 0
    if side < 1 or side * side != seg_tokens or map_side % side:
        raise ValueError(f"seg_tokens {seg_tokens}: needs a square root that divides the SAM map side {map_side}")
    return side


class BackboneConfig(Section):
    """Where a backbone's weights come from. Exactly one of `path` (a local `save_pretrained` folder or a
    hub id) and `preset` (a named architecture built with random weights, see virtue.models.presets)."""

    path: str | None = Field(None, description="local save_pretrained folder or hub id")
    preset: str | None = Field(None, description="named architecture, random init (tests, meta-device builds)")
    checkpoint: str | None = Field(None, description="Meta sam2 .pt checkpoint (only with the [sam2] extra)")
    arch: str | None = Field(
        None, description="with `path`: the preset that `virtue pretrain` builds and saves there (embedded default)"
    )

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.preset is None):
            raise ValueError("give exactly one of 'path' and 'preset'")
        return self


class AdapterConfig(Section):
    kind: Literal["lora", "dora", "none"] = Field("dora", description="low-rank adapters on the LLM")
    r: int = Field(8, ge=1)
    alpha: float = Field(64.0, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        description="LLM module names that get adapters (the release effectively hits these five)",
    )


class ModelConfig(Section):
    variant: Literal["virtue", "global", "crop"] = Field(
        "virtue", description="virtue: segmentation + global; global: VLM2Vec-style; crop: global on the box crop"
    )
    vlm: BackboneConfig = Field(default_factory=lambda: BackboneConfig(preset="qwen2vl-tiny"))
    sam: BackboneConfig = Field(default_factory=lambda: BackboneConfig(preset="sam2-tiny"))
    seg_tokens: int = Field(256, ge=1, description="|S|: a square whose root divides the SAM map side")
    connector_depth: int = Field(2, ge=1, le=3, description="Linear layers in the connector MLP")
    num_points: int = Field(9, ge=1, description="N of the point grid used when there is no user prompt")
    seg_position: Literal["prefix", "after_image"] = Field(
        "prefix", description="where the segmentation tokens sit in the LLM sequence (paper: prefix)"
    )
    seg_rope: Literal["sequence", "grid"] = Field(
        "sequence",
        description="M-RoPE positions of the segmentation tokens: 'sequence' (1-D, in order, as text) or 'grid' "
        "(the image tokens' 2-D positions at each token's cell, so attention can relate places; not in the paper)",
    )
    vlm_resize: Literal["square", "native"] = Field(
        "square",
        description="how an image reaches the VLM. square: stretched to vlm_image_size x vlm_image_size (every "
        "image gives the same number of image tokens). native: its aspect ratio kept, smart-resized by "
        "Qwen2-VL's image processor to multiples of patch x merge within [vlm_min_pixels, vlm_max_pixels] "
        "(the release's training; rows then have different numbers of image tokens)",
    )
    vlm_image_size: int = Field(448, ge=28, description="square: side of the square image given to the VLM")
    vlm_min_pixels: int = Field(
        28 * 28 * 4, ge=1, description="native: fewest pixels (height x width) an image is resized to (the release)"
    )
    vlm_max_pixels: int = Field(
        28 * 28 * 1280,
        ge=1,
        description="native: most pixels an image is resized to (the release: 28*28*1280, at most 1,280 image "
        "tokens at patch 14, merge 2); also the width of the frozen vision features",
    )
    vlm_eval_stretch: int | None = Field(
        None,
        ge=28,
        description="native, evaluation only (virtue eval, virtue embed): stretch every image to this side x side "
        "square first, then smart-resize it within the pixel bounds. The release evaluates so (1344: 980x980, "
        "1,225 tokens) while it trains at native size; None: evaluation sees images as training does",
    )
    sam_image_size: int = Field(1024, ge=64, description="side of SAM-2's square input")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    official_compat: bool = Field(False, description="reproduce the release's quirks (for its checkpoints)")
    release_connector: str | None = Field(
        None, description="the release's sam2_reducer_and_vlm_layer.pth (or its folder) loaded into the connector"
    )
    dtype: Literal["float32", "bfloat16", "auto"] = Field(
        "float32",
        description="dtype of the frozen backbones; trained weights stay float32 (the paper: bf16). auto: the "
        "faster one on this machine, resolved when the config is read (and so written resolved next to every "
        "output): bfloat16 on CUDA and on CPUs with AMX tiles, float32 on other CPUs, where bfloat16 matmuls "
        "are slower than float32 (a tiny training step 1.45x slower, docs/research/pretraining.md)",
    )
    attention: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa",
        description="the LLM's attention kernel. eager (plain matmul + softmax) is faster on CPU for the tiny "
        "default's short sequences, most of all in bfloat16, whose SDPA backward on CPU is slow. "
        "flash_attention_2: CUDA only, needs the flash_attn package (refused where it is not importable)",
    )
    sam_trainable: Literal["none", "decoder"] = Field(
        "none",
        description=(
            "none: SAM-2 frozen (the paper). decoder: its prompt encoder and two-way transformer are trained "
            "with the connector (Hiera encoder still frozen): deviates from the paper's freeze policy, the "
            "fallback regime `virtue-e2e` (docs/research/pretraining.md)"
        ),
    )

    sam_box_mask: bool = Field(
        False,
        description=(
            "also give a box prompt to SAM-2 as a dense mask prompt (the box's rectangle, SAM's mask input), "
            "next to its two corner points. The paper passes the box as corners only; a tiny SAM-2 trained "
            "from scratch in the embedded default cannot learn to localise corner prompts within the CPU "
            "budget (held-out mIoU 0.16 against 0.71 with this, docs/research/pretraining.md). Pre-training "
            "uses the same setting"
        ),
    )

    @field_validator("dtype")
    @classmethod
    def _resolve_auto(cls, v: str) -> str:
        return native_dtype() if v == "auto" else v

    @field_validator("seg_tokens", "num_points")
    @classmethod
    def _square(cls, value: int) -> int:
        if math.isqrt(value) ** 2 != value:
            raise ValueError("must be a square number")
        return value

    @model_validator(mode="after")
    def _sam_trainable_needs_sam(self):
        if self.sam_trainable != "none" and self.variant != "virtue":
            raise ValueError(f"sam_trainable {self.sam_trainable}: only the virtue variant has a SAM-2 stream")
        return self

    @model_validator(mode="after")
    def _vlm_resize_fits(self):
        if self.vlm_min_pixels > self.vlm_max_pixels:
            raise ValueError(f"vlm_min_pixels {self.vlm_min_pixels} exceeds vlm_max_pixels {self.vlm_max_pixels}")
        if self.vlm_eval_stretch is not None and self.vlm_resize != "native":
            raise ValueError("vlm_eval_stretch needs vlm_resize: native (square images are stretched anyway)")
        return self

    @model_validator(mode="after")
    def _seg_tokens_fit(self):
        if self.variant == "virtue":
            seg_token_side(self.seg_tokens, self.sam_image_size // 16)  # SAM-2's image-side map: stride 16
        return self


def native_dtype() -> str:
    """model.dtype=auto: bfloat16 where it is the fast path (CUDA, AMX), else float32."""
    return "bfloat16" if cuda_available() or cpu_has_amx() else "float32"
