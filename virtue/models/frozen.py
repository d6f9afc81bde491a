"""What the frozen parts' outputs depend on besides their weights: the one list behind every feature cache.

The frozen SAM-2 and vision tower see an image and a prompt through the processor; their output also depends
on the settings named in FROZEN_FIELDS (input sizes, the point grid, dtype, the attention kernel, ...).
`frozen_settings` spells those into the string that `Embedder.frozen_fingerprint` hashes with the frozen
weights, and that digest is the salt of every cache key (virtue.train.cache), of training, evaluation and
benchmarks alike. The other fields of `model:` only change trained parts; they are listed in TRAINED_FIELDS,
so a new field has to be placed in one list or the other (tests/models/test_frozen_settings.py checks that).
"""

from __future__ import annotations

from ..config.model import ModelConfig

FROZEN_FIELDS = (
    "variant",  # which streams run (crop encodes the box crop)
    "vlm_resize",
    "vlm_image_size",
    "vlm_min_pixels",
    "vlm_max_pixels",
    "vlm_eval_stretch",  # evaluation only (for_eval)
    "sam_image_size",
    "num_points",  # the point grid of an unprompted image
    "official_compat",
    "dtype",
    "attention",  # the vision tower's attention kernel too
    "sam_trainable",  # a trained decoder leaves only the image encoder frozen
    "sam_box_mask",
)
# Weights of the backbones (vlm, sam) are hashed from the modules themselves; the rest is trained.
TRAINED_FIELDS = (
    "vlm",
    "sam",
    "seg_tokens",
    "connector_depth",
    "seg_position",
    "seg_rope",
    "adapter",
    "release_connector",
)


def frozen_settings(cfg: ModelConfig, *, for_eval: bool = False) -> str:
    """'field=value;...' over FROZEN_FIELDS. vlm_eval_stretch counts only for evaluation, where it applies."""
    values = {name: getattr(cfg, name) for name in FROZEN_FIELDS}
    if not for_eval:
        values["vlm_eval_stretch"] = None
    return ";".join(f"{k}={v}" for k, v in values.items())
