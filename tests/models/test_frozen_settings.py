"""One list of what the frozen features depend on (virtue.models.frozen): the cache key of training,
evaluation and benchmarks follows every such field and no other."""

import pytest

from virtue.config.model import ModelConfig
from virtue.models import build_embedder
from virtue.models.frozen import FROZEN_FIELDS, TRAINED_FIELDS, frozen_settings

NATIVE = {"vlm_resize": "native", "vlm_min_pixels": 28 * 28, "vlm_max_pixels": 28 * 28 * 64}
# One other valid value per frozen field (with the base it needs).
CHANGES = {
    "variant": ({}, "global"),
    "vlm_resize": ({}, "native"),
    "vlm_image_size": ({}, 224),
    "vlm_min_pixels": (NATIVE, 28 * 28 * 2),
    "vlm_max_pixels": (NATIVE, 28 * 28 * 32),
    "vlm_eval_stretch": (NATIVE, 448),
    "sam_image_size": ({}, 512),
    "num_points": ({}, 4),
    "official_compat": ({}, True),
    "dtype": ({}, "bfloat16"),
    "attention": ({}, "eager"),
    "sam_trainable": ({}, "decoder"),
    "sam_box_mask": ({}, True),
}
TRAINED_CHANGES = {"seg_tokens": 64, "connector_depth": 3, "seg_position": "after_image", "seg_rope": "grid"}


def _fingerprint(**fields) -> str:
    embedder, _ = build_embedder(ModelConfig(**fields), meta=True, for_eval=True)
    return embedder.frozen_fingerprint()


def test_every_model_field_is_placed_once():
    assert set(FROZEN_FIELDS) | set(TRAINED_FIELDS) == set(ModelConfig.model_fields)
    assert not set(FROZEN_FIELDS) & set(TRAINED_FIELDS)
    assert set(CHANGES) == set(FROZEN_FIELDS)  # this test covers each one


@pytest.mark.parametrize("field", FROZEN_FIELDS)
def test_each_frozen_field_changes_the_cache_key(field):
    base, other = CHANGES[field]
    assert _fingerprint(**base) != _fingerprint(**{**base, field: other})


@pytest.mark.parametrize("field", sorted(TRAINED_CHANGES))
def test_trained_fields_share_the_cache(field):
    # |S| cells, connector depths, ... of one study reuse the same frozen features
    assert _fingerprint() == _fingerprint(**{field: TRAINED_CHANGES[field]})


def test_the_evaluation_stretch_counts_only_for_evaluation():
    cfg = ModelConfig(**NATIVE, vlm_eval_stretch=448)
    assert frozen_settings(cfg) == frozen_settings(ModelConfig(**NATIVE))
    assert frozen_settings(cfg, for_eval=True) != frozen_settings(cfg)
