"""model.vlm_resize native: every image keeps its aspect ratio, so rows of one batch carry different numbers of
image tokens (and grids); the batch must still equal its rows one by one, decoded or from the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from virtue.data.prompts import box_prompt, points_prompt
from virtue.data.types import Side
from virtue.numerics import close
from virtue.train.cache import FeatureCache
from virtue.train.loop import Encoder

# The tiny vision tower: patch 8, merge 2, so 16 px per image token; at most 48 tokens per image.
NATIVE = dict(vlm_resize="native", vlm_min_pixels=16 * 16 * 4, vlm_max_pixels=16 * 16 * 48)


@pytest.fixture(scope="module")
def shaped(tmp_path_factory) -> dict[str, str]:
    """Random textures of three aspect ratios (width x height)."""
    folder = tmp_path_factory.mktemp("shaped")
    rng = np.random.default_rng(1)
    out = {}
    for name, (w, h) in {"wide": (128, 96), "tall": (64, 128), "big": (128, 128)}.items():
        path = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        out[name] = str(path)
    return out


def _sides(shaped) -> list[Side]:
    return [
        Side("the wide one", shaped["wide"], box_prompt(10, 10, 60, 50)),
        Side("the tall one", shaped["tall"], points_prompt([(30, 40)])),
        Side("text only, no image"),
        Side("the big one, shrunk to the pixel bound", shaped["big"], None),
    ]


# smart-resize with factor 16: 96x128 stays (6x8 tokens), 128x64 stays (8x4), 128x128 exceeds 48 tokens -> 96x96
TOKENS = [48, 32, 0, 36]
GRIDS = [[1, 12, 16], [1, 16, 8], [1, 12, 12]]  # patches: 2x2 per token


@pytest.mark.parametrize("variant", ["virtue", "global"])
def test_native_batch_equals_rows_one_by_one_with_and_without_pixels(build, shaped, tmp_path, variant):
    embedder, processor = build(variant=variant, **NATIVE)
    assert embedder.image_tokens == processor.image_tokens == 48
    sides = _sides(shaped)
    inputs = processor(sides)
    assert inputs.mm_token_type_ids.sum(dim=1).tolist() == TOKENS
    assert inputs.image_grid_thw.tolist() == GRIDS
    bare = processor(sides, pixels=False)  # the grid from the files' sizes: the same sequence and positions
    assert bare.pixel_values is None and torch.equal(bare.image_grid_thw, inputs.image_grid_thw)
    assert torch.equal(bare.input_ids, inputs.input_ids)
    with torch.no_grad():
        batch = embedder(inputs)
        rows = torch.cat([embedder(processor([s])) for s in sides])
        assert close(batch, rows, torch.float32, rows=True)
        # The feature-cache path: rows cached one by one (each its own token count, zero-padded to the
        # features' width), then the whole batch from the cache without pixels.
        cache = FeatureCache(tmp_path / "cache", embedder.frozen_fingerprint())
        encoder = Encoder(embedder, processor, "cpu", cache)
        for s in sides:
            encoder.prepare([s])
        prepared = encoder.prepare(sides)
        assert cache.hits == 3 and prepared[0].pixel_values is None
        assert prepared[1]["vision"].shape == (4, 48, embedder.dim)
        assert close(encoder.forward(prepared), rows, torch.float32, rows=True)


def test_native_grids_follow_the_crop_and_the_evaluation_stretch(build, shaped):
    sides = [Side("q", shaped["wide"], box_prompt(10, 10, 60, 50)), Side("q", shaped["tall"], None)]
    _, crop = build(variant="crop", **NATIVE)
    for pixels in (True, False):
        # the 50x40 crop: smart-resized to 48x32 -> 3x2 tokens; no box on the tall one: all of it
        assert crop(sides, pixels=pixels).image_grid_thw.tolist() == [[1, 4, 6], [1, 16, 8]]
    stretch = dict(NATIVE, vlm_eval_stretch=160)  # 160x160 = 100 tokens, over the bound: 96x96
    trained, train = build(**stretch)
    evaluated, evaluate = build(for_eval=True, **stretch)
    assert train(sides).image_grid_thw.tolist() == GRIDS[:2]
    for pixels in (True, False):
        assert evaluate(sides, pixels=pixels).image_grid_thw.tolist() == [[1, 12, 12]] * 2
    # other frozen features for the same image: the feature cache must not mix them
    assert evaluated.frozen_fingerprint() != trained.frozen_fingerprint()


def test_seg_rope_grid_spans_a_non_square_image_grid(build, shaped):
    embedder, processor = build(seg_rope="grid", **NATIVE)
    inputs = processor([Side("q", shaped["wide"], box_prompt(10, 10, 60, 50))])  # a 6x8 token grid
    pos = embedder.position_ids(inputs)  # [3, 1, L]
    img, seg = inputs.mm_token_type_ids[0].bool(), inputs.seg_slots[0]
    h0, w0 = pos[1, 0, img].min(), pos[2, 0, img].min()
    # 4x4 segmentation cells over 6 rows and 8 columns: centres at (k + 0.5) * 1.5 - 0.5 and (k + 0.5) * 2 - 0.5
    torch.testing.assert_close(pos[1, 0, seg] - h0, torch.tensor([0.25, 1.75, 3.25, 4.75]).repeat_interleave(4))
    torch.testing.assert_close(pos[2, 0, seg] - w0, torch.tensor([0.5, 2.5, 4.5, 6.5]).repeat(4))


def test_seg_rope_grid_positions_stay_on_the_inputs_device(build, images):
    """model.seg_rope=grid made its cell indices on the CPU next to CUDA positions: every tensor must come from
    the inputs' device (the meta device stands in for CUDA here: no value is read back to the host)."""
    embedder, processor = build(seg_rope="grid")
    inputs = processor([Side("q", images["a"], box_prompt(1, 1, 50, 50)), Side("text only")])
    plain = build()[0].position_ids(inputs)  # [3, B, L] integer positions
    on_cpu = embedder._seg_on_image_grid(inputs, plain)
    on_meta = embedder._seg_on_image_grid(inputs.to("meta"), plain.to("meta"))
    assert on_meta.device.type == "meta" and on_meta.dtype == on_cpu.dtype == torch.float32
    assert on_meta.shape == on_cpu.shape == plain.shape
    torch.testing.assert_close(on_cpu, embedder.position_ids(inputs), atol=0, rtol=0)
