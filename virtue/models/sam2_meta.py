"""Meta's SAM 2 / 2.1 `.pt` checkpoints -> transformers' Sam2Model, so one code path runs both.

Only the image path VIRTUE uses is converted (image encoder, prompt encoder, mask decoder); the video
memory modules are dropped. The mapping is checked against Meta's own package in the tests (skipped when
the `[sam2]` extra is not installed)."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import torch
from transformers import Sam2Model

from ..errors import UserError

# Meta's checkpoint file names -> our SAM 2.1 presets.
CHECKPOINT_PRESETS = {
    "sam2.1_hiera_tiny.pt": "sam2.1-hiera-tiny",
    "sam2.1_hiera_small.pt": "sam2.1-hiera-small",
    "sam2.1_hiera_base_plus.pt": "sam2.1-hiera-base-plus",
    "sam2.1_hiera_large.pt": "sam2.1-hiera-large",
}

_PREFIXES = [
    ("image_encoder.trunk.patch_embed.proj.", "vision_encoder.backbone.patch_embed.projection."),
    ("image_encoder.trunk.", "vision_encoder.backbone."),
    ("image_encoder.neck.", "vision_encoder.neck."),
    ("sam_prompt_encoder.", "prompt_encoder."),
    ("sam_mask_decoder.", "mask_decoder."),
]
_RENAMES = [  # applied in order on the renamed key
    (r"\.norm(\d)\.", r".layer_norm\1."),
    (r"\.norm_final_attn\.", ".layer_norm_final_attn."),
    (r"\.out_proj\.", ".o_proj."),
    (r"^vision_encoder\.neck\.convs\.(\d+)\.conv\.", r"vision_encoder.neck.convs.\1."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
]
_MLP = re.compile(
    r"^(.*\.(?:mlp|iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+))\.layers\.(\d+)\."
)


def _rename_mlps(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta's MLP(layers.0..n-1) -> transformers' proj_in, layers.0..n-3, proj_out."""
    depth: dict[str, int] = defaultdict(int)
    for key in state:
        if m := _MLP.match(key):
            depth[m.group(1)] = max(depth[m.group(1)], int(m.group(2)) + 1)
    out = {}
    for key, value in state.items():
        m = _MLP.match(key)
        if m:
            i, n = int(m.group(2)), depth[m.group(1)]
            part = "proj_in" if i == 0 else "proj_out" if i == n - 1 else f"layers.{i - 1}"
            key = f"{m.group(1)}.{part}.{key[m.end() :]}"
        out[key] = value
    return out


def convert_meta_state_dict(meta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    points: dict[int, torch.Tensor] = {}
    for key, value in meta.items():
        if key == "no_mem_embed":
            out["no_memory_embedding"] = value
            continue
        if key == "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
            # Meta uses one random-Fourier layer for prompts and for the image-wide encoding.
            out["prompt_encoder.shared_embedding.positional_embedding"] = value
            out["shared_image_embedding.positional_embedding"] = value.clone()
            continue
        if m := re.match(r"sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$", key):
            points[int(m.group(1))] = value
            continue
        for theirs, ours in _PREFIXES:
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
                break
        else:
            continue  # memory attention / encoder, object pointers: not on the image path
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    if points:
        out["prompt_encoder.point_embed.weight"] = torch.cat([points[i] for i in sorted(points)])
    return _rename_mlps(out)


def load_meta_checkpoint(model: Sam2Model, path: str | os.PathLike) -> None:
    """Load a Meta `.pt` (its {"model": state_dict} or a bare state dict) into a Sam2Model of the same size."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise UserError(f"model.sam.checkpoint: {path}: cannot read: {str(e).splitlines()[0]}") from None
    state = convert_meta_state_dict(raw.get("model", raw))
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    wrong = [k for k in expected.keys() & state.keys() if tuple(expected[k].shape) != tuple(state[k].shape)]
    if missing or wrong:
        what = f"missing {missing[:2]}" if missing else f"shape mismatch at {wrong[:2]}"
        raise UserError(f"model.sam.checkpoint: {path}: does not fit the chosen SAM-2 size ({what})")
    model.load_state_dict({k: state[k] for k in expected}, strict=True)
