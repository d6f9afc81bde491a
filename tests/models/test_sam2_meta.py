"""Meta SAM 2.1 checkpoints load into transformers' Sam2Model and give the same segmentation stream.
Needs Meta's package (the `[sam2]` extra); skipped without it."""

from __future__ import annotations

import pytest
import torch
from transformers import Sam2Model

from virtue.models.presets import sam2_config
from virtue.models.sam2_meta import convert_meta_state_dict, load_meta_checkpoint
from virtue.models.segmentation import SegmentationStream

build_sam = pytest.importorskip("sam2.build_sam", reason="Meta's sam2 package (the [sam2] extra) is not installed")


@pytest.mark.slow
def test_converted_checkpoint_gives_metas_two_way_stream(tmp_path):
    torch.manual_seed(0)
    meta = build_sam.build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval")
    for p in meta.parameters():  # Meta zero-initialises some embeddings: make every weight matter
        torch.nn.init.normal_(p, std=0.02)
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": meta.state_dict()}, ckpt)
    ours = Sam2Model(sam2_config("sam2.1-hiera-tiny")).eval()
    load_meta_checkpoint(ours, ckpt)
    assert set(convert_meta_state_dict(meta.state_dict())) >= set(ours.state_dict())
    stream = SegmentationStream(ours)

    pixels = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        backbone = meta.forward_image(pixels)
        _, feats, _, _ = meta._prepare_backbone_features(backbone)
        theirs_embed = (feats[-1] + meta.no_mem_embed).permute(1, 2, 0).view(1, -1, 64, 64)
        our_embed = stream.image_embeddings(pixels)
        torch.testing.assert_close(our_embed, theirs_embed, atol=1e-4, rtol=1e-4)

        captured = {}
        hook = meta.sam_mask_decoder.transformer.register_forward_hook(
            lambda mod, args, out: captured.__setitem__("keys", out[1])
        )
        high_res = [
            f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats[:-1], [(256, 256), (128, 128)], strict=True)
        ]
        box = torch.tensor([[[100.0, 200.0], [600.0, 700.0]]])  # corners, labels 2, 3
        labels = torch.tensor([[2, 3]])
        mask = torch.randn(1, 1, 256, 256)
        for points, lab, msk in [(box, labels, None), (None, None, mask)]:
            sparse, dense = meta.sam_prompt_encoder(
                points=None if points is None else (points, lab), boxes=None, masks=msk
            )
            meta.sam_mask_decoder(
                image_embeddings=theirs_embed,
                image_pe=meta.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
                repeat_image=False,
                high_res_features=high_res,
            )
            theirs = captured["keys"].transpose(1, 2).reshape(1, 256, 64, 64)
            ours_map = stream(our_embed, points, lab, msk)
            torch.testing.assert_close(ours_map, theirs, atol=1e-4, rtol=1e-4)
    hook.remove()


@pytest.mark.slow
def test_build_sam_reads_a_meta_checkpoint_named_by_its_file(tmp_path):
    from virtue.config.model import BackboneConfig
    from virtue.models.backbones import build_sam as build_ours

    torch.manual_seed(0)
    meta = build_sam.build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval")
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": meta.state_dict()}, ckpt)
    spec = BackboneConfig(path="facebook/sam2.1-hiera-tiny", checkpoint=str(ckpt))
    model = build_ours(spec, image_size=1024, root=tmp_path)
    torch.testing.assert_close(model.no_memory_embedding, meta.no_mem_embed, atol=0, rtol=0)
