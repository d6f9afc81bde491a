"""Tiny embedders built from presets (random weights) and a few synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from virtue.config.model import ModelConfig
from virtue.models import build_embedder

SIZE = 128


def tiny_config(**overrides) -> ModelConfig:
    base = dict(
        vlm={"preset": "qwen2vl-tiny"},
        sam={"preset": "sam2-tiny"},
        seg_tokens=16,
        vlm_image_size=96,
        sam_image_size=128,
        adapter={"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
    )
    return ModelConfig.model_validate({**base, **overrides})


@pytest.fixture
def build():
    def make(padding_side: str = "right", for_eval: bool = False, **overrides):
        embedder, processor = build_embedder(tiny_config(**overrides), padding_side=padding_side, for_eval=for_eval)
        return embedder.eval(), processor

    return make


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, str]:
    """a, b: random textures; a_patched: `a` with its top-left quadrant replaced (outside the tests' INSIDE_BOX)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    patched = a.copy()
    patched[:48, :48] = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    out = {}
    for name, arr in {"a": a, "b": b, "a_patched": patched}.items():
        path = folder / f"{name}.png"
        Image.fromarray(arr).save(path)
        out[name] = str(path)
    return out
