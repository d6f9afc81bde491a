"""The paper's models build on the meta device (no download, no memory) with the published sizes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import Sam2VideoConfig, Sam2VideoModel

from virtue.config import load_experiment
from virtue.data.prompts import box_prompt
from virtue.data.types import Side
from virtue.models import build_embedder
from virtue.models.presets import sam2_config


def _count(module: torch.nn.Module, *, adapters: bool = False) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if adapters or "lora_" not in n)


@pytest.mark.parametrize(
    ("experiment", "vlm_billions", "connector", "width"),
    [("paper-2b", 2.209, 1_509_376, 1536), ("paper-7b", 7.746, 2_035_712, 3584)],
)
def test_paper_embedder_on_meta(experiment, vlm_billions, connector, width):
    cfg = load_experiment(experiment).model
    embedder, processor = build_embedder(cfg, meta=True)
    assert embedder.vlm.device.type == "meta"
    assert _count(embedder.vlm) / 1e9 == pytest.approx(vlm_billions, abs=0.005)
    assert _count(embedder.connector) == connector  # Conv2d(256,256,4,4) + Linear(256,256) + Linear(256,d)
    # |S| = 256 tokens from SAM's 64x64 map at 1024 px input
    assert embedder.segmentation.map_side == 64 and embedder.segmentation.channels == 256
    seg_map = torch.zeros(1, 256, 64, 64, device="meta")  # trained weights stay float32
    assert embedder.connector(seg_map).shape == (1, 256, width)
    trainable = {n.split(".")[0] for n, p in embedder.named_parameters() if p.requires_grad}
    assert trainable == {"vlm", "connector"}  # adapters live inside the LLM
    assert all("lora_" in n for n, p in embedder.vlm.named_parameters() if p.requires_grad) and not any(
        p.requires_grad for p in embedder.vlm.visual.parameters()
    )
    # the release's pixel bounds (max 28*28*1280): at most 1,280 image tokens, the frozen features' width
    assert processor.image_tokens == embedder.image_tokens == 1280


@pytest.mark.parametrize(
    ("for_eval", "expected"),
    [
        # training: native aspect ratio, smart-resized within 28*28*4 .. 28*28*1280 pixels
        (False, {(640, 480): (17, 23), (2000, 1500): (30, 41)}),  # 476x644: 391 tokens; 840x1148: 1,230
        # evaluation: stretched to 1344x1344 first, then smart-resized to 980x980: 1,225 tokens, whatever the size
        (True, {(640, 480): (35, 35), (2000, 1500): (35, 35)}),
    ],
)
def test_paper_image_tokens_in_training_and_evaluation(tmp_path, for_eval, expected):
    """The release trains at native resolution and evaluates after a 1344x1344 stretch (its Qwen2-VL: patch
    14, merge 2); a fixed 1344 square would give 2,304 tokens in both."""
    _, processor = build_embedder(load_experiment("paper-2b").model, meta=True, for_eval=for_eval)
    sides = []
    for w, h in expected:
        path = tmp_path / f"{w}x{h}.png"
        Image.new("RGB", (w, h), (90, 120, 30)).save(path)
        sides.append(Side("Find the caption of the object in the box.", str(path), box_prompt(10, 10, 200, 150)))
    merged = list(expected.values())
    for pixels in (True, False):  # decoded, or from the file's size alone (cached frozen features)
        inputs = processor(sides, pixels=pixels)
        assert inputs.mm_token_type_ids.sum(dim=1).tolist() == [r * c for r, c in merged]
        assert inputs.image_grid_thw.tolist() == [[1, 2 * r, 2 * c] for r, c in merged]  # patches: 2x2 per token
        assert inputs.seg_slots.sum(dim=1).tolist() == [256, 256]
    assert inputs.pixel_values is None
    pixel_values = processor(sides).pixel_values  # [patches, 3 * 2 * 14 * 14]
    assert pixel_values.shape == (sum(4 * r * c for r, c in merged), 3 * 2 * 14 * 14)


def _full_sam21(preset: str) -> torch.nn.Module:
    c = sam2_config(preset)
    full = Sam2VideoConfig(
        vision_config=c.vision_config.to_dict(),
        prompt_encoder_config=c.prompt_encoder_config.to_dict(),
        mask_decoder_config=c.mask_decoder_config.to_dict(),
    )
    with torch.device("meta"):
        return Sam2VideoModel(full)


@pytest.mark.parametrize(
    ("preset", "millions"),  # Meta's published sizes of the SAM 2.1 checkpoints
    [
        ("sam2.1-hiera-tiny", 38.9),
        ("sam2.1-hiera-small", 46.0),
        ("sam2.1-hiera-base-plus", 80.8),
        ("sam2.1-hiera-large", 224.4),
    ],
)
def test_sam21_presets_have_the_published_sizes(preset, millions):
    """Counted with the video memory modules, as Meta counts; VIRTUE runs only the image path."""
    assert _count(_full_sam21(preset)) / 1e6 == pytest.approx(millions, abs=0.1)


def test_paper_segmentation_stream_is_the_image_path_of_base_plus():
    embedder, _ = build_embedder(load_experiment("paper-2b").model, meta=True)
    image_path = _count(embedder.segmentation)
    assert image_path / 1e6 == pytest.approx(73.3, abs=0.1)
    assert image_path < _count(_full_sam21("sam2.1-hiera-base-plus"))
