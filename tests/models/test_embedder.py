"""The embedder on tiny random-weight backbones: shapes, prompts, variants, pooling, batching, frozen split."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from virtue.data.prompts import box_prompt, mask_prompt, points_prompt
from virtue.data.types import Side
from virtue.models import pool_last
from virtue.numerics import close

SIZE = 128  # the images of conftest.py
INSIDE_BOX = (64.0, 64.0, 120.0, 112.0)  # untouched by the patch of a_patched


def _mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    m[20:70, 30:90] = True
    return m


def _sides(images) -> list[Side]:
    return [
        Side("the red circle", images["a"], box_prompt(10, 10, 60, 50)),
        Side("a point", images["b"], points_prompt([(30, 40), (90, 20)], [1, 0])),
        Side("a mask", images["a"], mask_prompt(_mask())),
        Side("no prompt: the point grid", images["b"], None),
        Side("text only, no image"),
        Side("", images["a"], box_prompt(0, 0, 128, 128)),
    ]


@pytest.mark.parametrize("variant", ["virtue", "global", "crop"])
def test_shapes_every_variant_and_prompt(build, images, variant):
    embedder, processor = build(variant=variant)
    sides = _sides(images)
    inputs = processor(sides)
    out = embedder(inputs)
    assert out.shape == (len(sides), 160)
    assert torch.allclose(out.norm(dim=-1), torch.ones(len(sides)), atol=1e-5)
    seg_rows = inputs.seg_slots.sum(dim=1).tolist()
    assert seg_rows == ([16, 16, 16, 16, 0, 16] if variant == "virtue" else [0] * 6)
    assert inputs.mm_token_type_ids.sum(dim=1).tolist() == [36, 36, 36, 36, 0, 36]


def test_batch_equals_rows_one_by_one(build, images):
    embedder, processor = build()
    sides = _sides(images)
    with torch.no_grad():
        batch = embedder(processor(sides))
        rows = torch.cat([embedder(processor([s])) for s in sides])
    assert close(batch, rows, torch.float32, rows=True)  # other batch shapes: float32 rounding only


def test_boxes_change_virtue_but_not_global(build, images):
    text = "find the object"
    one = Side(text, images["a"], box_prompt(5, 5, 40, 40))
    two = Side(text, images["a"], box_prompt(70, 60, 125, 120))
    for variant, differ in [("virtue", True), ("global", False)]:
        embedder, processor = build(variant=variant)
        with torch.no_grad():
            e = embedder(processor([one, two]))
        gap = (e[0] - e[1]).abs().max().item()
        assert (gap > 1e-4) if differ else (gap == 0.0), (variant, gap)


def test_every_prompt_kind_conditions_the_segmentation_map(build, images):
    embedder, processor = build()
    prompts = [box_prompt(5, 5, 40, 40), points_prompt([(100, 100)]), mask_prompt(_mask()), None]
    with torch.no_grad():
        seg = embedder.frozen_features(processor([Side("x", images["a"], p) for p in prompts]))["seg"]
    assert seg.shape == (4, 64, 8, 8)
    for i in range(4):
        for j in range(i + 1, 4):
            assert (seg[i] - seg[j]).abs().max() > 1e-4, (i, j)


def test_crop_sees_only_the_crop(build, images):
    box = box_prompt(*INSIDE_BOX)
    same_inside = [Side("q", images["a"], box), Side("q", images["a_patched"], box)]
    crop, proc = build(variant="crop")
    glob, gproc = build(variant="global")
    with torch.no_grad():
        c = crop(proc(same_inside))
        g = glob(gproc(same_inside))
    assert close(c[:1], c[1:], torch.float32, rows=True)
    assert (g[0] - g[1]).abs().max() > 1e-4  # the global model does see the patched quadrant


def test_pooling_left_and_right_padding_agree(build, images):
    sides = _sides(images)
    emb_r, proc_r = build(padding_side="right")
    emb_l, proc_l = build(padding_side="left")
    ir, il = proc_r(sides), proc_l(sides)
    assert (ir.attention_mask[:, -1] == 0).any() and (il.attention_mask[:, 0] == 0).any()
    with torch.no_grad():
        assert close(emb_r(ir), emb_l(il), torch.float32, rows=True)


def test_pool_last_reads_the_last_real_token():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert pool_last(hidden, right).flatten().tolist() == [1.0, 7.0]
    assert pool_last(hidden, left).flatten().tolist() == [3.0, 7.0]


def test_positions_are_2d_for_images_and_never_cached(build, images):
    embedder, processor = build()
    inputs = processor([Side("q", images["a"], box_prompt(1, 1, 50, 50)), Side("text only")])
    pos = embedder.position_ids(inputs)  # [3, B, L]
    img = inputs.mm_token_type_ids[0].bool()
    h, w = pos[1, 0, img], pos[2, 0, img]
    assert h.unique().numel() == 6 and w.unique().numel() == 6  # a 6x6 grid of merged patches
    seg = pos[0, 0, inputs.seg_slots[0]]
    assert seg.tolist() == list(range(16))  # prefix tokens: distinct 1-D positions
    assert pos[:, 1, :].eq(pos[0, 1, :]).all()  # the text-only row: plain 1-D positions
    # A different batch first must not change this batch's output (no rope offsets carried over).
    with torch.no_grad():
        first = embedder(inputs)
        embedder(processor([Side("something much longer " * 5, images["b"], None)]))
        again = embedder(inputs)
    torch.testing.assert_close(first, again, atol=0, rtol=0)


def test_official_compat_positions_and_prompt_frame(build, images):
    embedder, processor = build(official_compat=True)
    inputs = processor([Side("q", images["a"], box_prompt(1, 1, 50, 50))])
    pos = embedder.position_ids(inputs)
    assert pos[:, 0, inputs.seg_slots[0]].eq(0).all()  # the release: all segmentation tokens at 0
    assert inputs.sam_prompts[0].points.tolist() == [[1.0, 1.0], [50.0, 50.0]]  # no frame conversion
    clean = build()[1]([Side("q", images["a"], box_prompt(1, 1, 64, 64))])
    assert clean.sam_prompts[0].points.tolist() == [[1.0, 1.0], [64.0, 64.0]]  # 128 px image -> 128 px SAM frame


def test_seg_position_after_image(build, images):
    embedder, processor = build(seg_position="after_image")
    inputs = processor([Side("q", images["a"], box_prompt(1, 1, 50, 50))])
    slots = inputs.seg_slots[0].nonzero().flatten()
    last_image = inputs.mm_token_type_ids[0].nonzero().max()
    assert slots.min() > last_image and len(slots) == 16
    assert embedder(inputs).shape == (1, 160)


def test_frozen_split_equals_plain_forward_and_is_per_row(build, images):
    embedder, processor = build()
    sides = _sides(images)
    inputs = processor(sides)
    with torch.no_grad():
        frozen = embedder.frozen_features(inputs)
        torch.testing.assert_close(embedder(inputs, frozen=frozen), embedder(inputs), atol=0, rtol=0)
        # rows cached one by one and stacked give the same features as the batch
        single = [embedder.frozen_features(processor([s])) for s in sides]
    for key, value in frozen.items():
        stacked = torch.cat([s[key] for s in single])
        assert close(value.flatten(1), stacked.flatten(1), torch.float32, rows=True), key
    fp = embedder.frozen_fingerprint()
    assert fp == embedder.frozen_fingerprint()
    embedder.load_trainable_state_dict(
        {k: v + 1 for k, v in embedder.trainable_state_dict().items()}
    )  # trained weights are not frozen ones
    assert embedder.frozen_fingerprint() == fp
    with torch.no_grad():
        embedder.segmentation.sam.no_memory_embedding.add_(1.0)
    assert embedder.frozen_fingerprint() != fp


def test_gradients_reach_only_trainable_parameters(build, images):
    embedder, processor = build(adapter={"kind": "dora", "r": 4, "alpha": 8, "dropout": 0.0})
    embedder.train()
    trainable = {n for n, p in embedder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("connector.") or "lora_" in n for n in trainable)
    assert any("lora_magnitude_vector" in n for n in trainable)  # DoRA
    targets = {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"}
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if "lora_" in n} == targets
    out = embedder(processor(_sides(images)))
    (out @ out.T).sum().backward()
    for n, p in embedder.named_parameters():
        if n in trainable:
            assert p.grad is not None, n
        else:
            assert p.grad is None, n
    assert embedder.connector.reduce.weight.grad.abs().sum() > 0
    state = embedder.trainable_state_dict()
    assert set(state) == trainable


def test_trainable_state_round_trip(build, images):
    a, processor = build()
    b, _ = build()
    for name, value in a.trainable_state_dict().items():  # same seed, same initial adapters and connector
        torch.testing.assert_close(value, b.trainable_state_dict()[name], atol=0, rtol=0)
    with torch.no_grad():
        for p in a.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    inputs = processor(_sides(images)[:2])
    with torch.no_grad():
        assert (a(inputs) - b(inputs)).abs().max() > 1e-4
        b.load_trainable_state_dict(a.trainable_state_dict())
        torch.testing.assert_close(a(inputs), b(inputs), atol=0, rtol=0)


def test_bfloat16_backbones_keep_float32_trainable_weights(build, images):
    embedder, processor = build(dtype="bfloat16", adapter={"kind": "dora", "r": 4, "alpha": 8, "dropout": 0.0})
    assert embedder.vlm.visual.get_dtype() == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in embedder.parameters() if p.requires_grad)
    embedder.train()
    out = embedder(processor(_sides(images)[:3]))
    assert out.shape == (3, 160) and torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert embedder.connector.reduce.weight.grad is not None


def test_eager_attention_equals_sdpa_and_bf16_embeddings_are_float32(build, images):
    sdpa, processor = build()
    eager, _ = build(attention="eager")
    assert eager.vlm.config.text_config._attn_implementation == "eager"
    assert sdpa.vlm.config.text_config._attn_implementation == "sdpa"
    inputs = processor(_sides(images))  # padded rows included: the mask must act alike in both kernels
    with torch.no_grad():
        assert close(eager(inputs), sdpa(inputs), torch.float32, rows=True)
        half, _ = build(dtype="bfloat16", attention="eager")
        out = half(inputs)
    assert out.dtype == torch.float32  # similarities and the loss in float32 whatever the backbones' dtype
    assert close(out, sdpa(inputs).detach(), torch.bfloat16, rows=True)  # same model, bf16 rounding only


@pytest.mark.gpu
def test_cuda_matches_cpu(build, images):
    cpu, processor = build()
    gpu, _ = build()
    gpu.to("cuda")
    inputs = processor(_sides(images))
    with torch.no_grad():
        # CUDA convolutions run in TF32 by default: float16's 10-bit mantissa, so float16's rounding bound
        assert close(gpu(inputs.to("cuda")).cpu(), cpu(inputs), torch.float16, rows=True)


def test_box_mask_is_the_box_rectangle_in_sams_frame(tmp_path, build):
    from PIL import Image

    # A non-square image: the rectangle must be scaled per axis, like the corners (to_frame).
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((64, 256, 3), np.uint8)).save(path)
    _, plain = build()
    embedder, processor = build(sam_box_mask=True)
    side = Side("x", str(path), box_prompt(0, 0, 128, 32))  # left half, top half
    assert plain([side]).sam_prompts[0].mask is None
    prompt = processor([side]).sam_prompts[0]
    torch.testing.assert_close(prompt.points, plain([side]).sam_prompts[0].points)  # corners unchanged
    m = prompt.mask[0]  # [32, 32] logits in SAM's square frame
    assert m.shape == (32, 32)
    assert (m[:16, :16] > 0).all() and (m[16:, :] < 0).all() and (m[:, 16:] < 0).all()
    with torch.no_grad():  # the rectangle conditions the segmentation map
        on = embedder.frozen_features(processor([side]))["seg"]
        off = embedder.frozen_features(plain([side]))["seg"]
    assert (on - off).abs().max() > 1e-4


def test_merged_image_tokens_come_in_raster_order_of_the_grid(build, tmp_path):
    """Per-location heads (pre-training) read image token i as grid cell (i // side, i % side): the patches of
    each merged token must come from that cell of the image."""
    embedder, processor = build(variant="global")
    vc = embedder.vlm.config.vision_config
    cell = vc.patch_size * vc.spatial_merge_size  # pixels per merged token
    side = 96 // cell
    grey = np.arange(side * side).reshape(side, side) * (255 // (side * side))
    img = np.repeat(np.repeat(grey, cell, 0), cell, 1).astype(np.uint8)
    path = tmp_path / "grid.png"
    PIL.Image.fromarray(np.stack([img] * 3, -1)).save(path)
    inputs = processor([Side("Represent the given image.", str(path))])
    groups = inputs.pixel_values.reshape(side * side, vc.spatial_merge_size**2, -1)  # [T_img, merge^2, C*t*p*p]
    means = groups.mean(dim=(1, 2))
    assert torch.all(means[1:] > means[:-1])  # token i holds cell i: the greys rise in raster order


def test_seg_rope_grid_puts_each_segmentation_token_on_its_cell_of_the_image_grid(build, images):
    embedder, processor = build(seg_rope="grid")
    inputs = processor([Side("q", images["a"], box_prompt(1, 1, 50, 50)), Side("text only")])
    pos = embedder.position_ids(inputs)  # [3, B, L]
    img, seg = inputs.mm_token_type_ids[0].bool(), inputs.seg_slots[0]
    h0, w0 = pos[1, 0, img].min(), pos[2, 0, img].min()
    # 16 tokens = a 4x4 grid over the 6x6 image grid: cell centres at 0.25, 1.75, 3.25, 4.75
    centres = torch.tensor([0.25, 1.75, 3.25, 4.75])
    torch.testing.assert_close(pos[1, 0, seg] - h0, centres.repeat_interleave(4))
    torch.testing.assert_close(pos[2, 0, seg] - w0, centres.repeat(4))
    assert pos[0, 0, seg].eq(pos[0, 0, img].min()).all()
    plain = build()[0].position_ids(inputs)
    others = ~seg
    torch.testing.assert_close(pos[:, 0, others], plain[:, 0, others].float())  # nothing else moves
    torch.testing.assert_close(pos[:, 1], plain[:, 1].float())
    with torch.no_grad():  # and the embedding changes with them
        assert not torch.allclose(embedder(inputs)[0], build()[0](inputs)[0])
