"""Backbones: Qwen2-VL and SAM-2 from a local save_pretrained folder, a hub id, or a preset (random
weights, or the meta device); the tokenizer of the embedded default; image preprocessing without torchvision."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessorPil, Qwen2VLModel, Sam2Config, Sam2Model
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from ..config.model import BackboneConfig
from ..errors import UserError
from ..paths import in_workspace
from . import presets

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resolve(spec: str, root: Path) -> tuple[Path | None, str]:
    """A local folder (relative to the workspace) or, failing that, a hub id."""
    p = Path(spec)
    local = in_workspace(p, root)
    return (local, str(local)) if local.is_dir() else (None, spec)


def _meta_preset(spec: BackboneConfig, what: str) -> str:
    if spec.preset:
        return spec.preset
    if spec.path in presets.HUB_IDS:
        return presets.HUB_IDS[spec.path]
    raise UserError(f"model.{what}.path: '{spec.path}' has no preset to build on the meta device; name a preset")


def _from_pretrained(cls, spec: BackboneConfig, what: str, root: Path, **kwargs):
    local, name = _resolve(spec.path, root)
    looks_local = spec.path.startswith((".", "/")) or spec.path.count("/") != 1  # hub ids are owner/name
    missing = f"model.{what}.path: {name}: no such folder (build the backbones first: virtue pretrain)"
    if local is None and looks_local:
        raise UserError(missing)
    try:
        return cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as e:
        detail = str(e).splitlines()[0] if local is not None else "not a local folder and not downloadable here"
        raise UserError(f"model.{what}.path: {spec.path}: {detail}") from None


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def build_vlm(
    spec: BackboneConfig, *, root: Path, meta: bool = False, dtype: str = "float32", attention: str = "sdpa"
) -> Qwen2VLModel:
    """attention: the attention kernel of the LLM and the vision tower (model.attention)."""
    attention = "sdpa" if meta and attention == "flash_attention_2" else attention  # a meta build runs nothing
    if attention == "flash_attention_2":
        _check_flash_attention(dtype)
    if meta or spec.preset:
        name = _meta_preset(spec, "vlm") if meta else spec.preset
        try:
            config = presets.qwen2vl_config(name)
        except KeyError as e:
            raise UserError(f"model.vlm.preset: {e.args[0]}") from None
        with torch.device("meta") if meta else contextlib.nullcontext():
            model = Qwen2VLModel(config).to(_dtype(dtype))
        model.set_attn_implementation(attention)
        return model
    return _from_pretrained(Qwen2VLModel, spec, "vlm", root, dtype=_dtype(dtype), attn_implementation=attention)


def _check_flash_attention(dtype: str) -> None:
    """Refused, not replaced by sdpa: the run folder's config would name a kernel that did not run (speed and
    memory differ). Checked here, where the model is built, so that a config naming it can be read and
    submitted from a machine without the package. (Where the `kernels` package is installed, transformers would
    otherwise fetch a kernel from the Hub.)"""
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise UserError("model.attention: flash_attention_2 needs the flash_attn package, not installed (use sdpa)")
    if not torch.cuda.is_available():
        raise UserError("model.attention: flash_attention_2 runs on CUDA only; no GPU here (use sdpa)")
    if dtype != "bfloat16":
        raise UserError(f"model.attention: flash_attention_2 needs model.dtype bfloat16, not {dtype}")


def build_sam(
    spec: BackboneConfig, *, image_size: int, root: Path, meta: bool = False, dtype: str = "float32"
) -> Sam2Model:
    if spec.checkpoint and not meta:
        return _from_meta_checkpoint(spec, image_size, root, dtype)
    if meta or spec.preset:
        name = _meta_preset(spec, "sam") if meta else spec.preset
        try:
            config = presets.sam2_config(name, image_size)
        except (KeyError, ValueError) as e:
            raise UserError(f"model.sam.preset: {e.args[0]}") from None
        if meta:
            with torch.device("meta"):
                return Sam2Model(config).to(_dtype(dtype))
        sam = Sam2Model(config)
        tie_positional_encodings(sam)
        return sam.to(_dtype(dtype))
    model = _from_pretrained(Sam2Model, spec, "sam", root, dtype=_dtype(dtype))
    native = sam_input_size(model.config)
    if native != image_size:
        raise UserError(f"model.sam_image_size: {image_size} but the SAM-2 at {spec.path} is built for {native}")
    return model


def tie_positional_encodings(sam: Sam2Model) -> None:
    """Give the prompt encoder the image's random Fourier position features. SAM uses ONE such matrix for
    both (Meta's checkpoints carry it twice, equal); transformers initialises the two buffers independently,
    so a SAM-2 trained from scratch would place its prompts in a different coordinate code than its image
    and could not localise them (held-out box mIoU 0.15 after 300 steps before this, see
    docs/research/pretraining.md)."""
    with torch.no_grad():
        src = sam.shared_image_embedding.positional_embedding
        sam.prompt_encoder.shared_embedding.positional_embedding.copy_(src)


def _from_meta_checkpoint(spec: BackboneConfig, image_size: int, root: Path, dtype: str) -> Sam2Model:
    """A Meta `.pt` checkpoint; its size comes from model.sam.preset, a SAM 2.1 hub id in path, or its file name."""
    from .sam2_meta import CHECKPOINT_PRESETS, load_meta_checkpoint

    ckpt = Path(spec.checkpoint)
    ckpt = in_workspace(ckpt, root)
    if not ckpt.is_file():
        raise UserError(f"model.sam.checkpoint: {ckpt}: no such file")
    name = spec.preset or presets.HUB_IDS.get(spec.path or "") or CHECKPOINT_PRESETS.get(ckpt.name)
    if name is None:
        raise UserError(
            f"model.sam.checkpoint: {ckpt.name}: name its size with model.sam.preset (e.g. sam2.1-hiera-base-plus)"
        )
    try:
        model = Sam2Model(presets.sam2_config(name, image_size))
    except (KeyError, ValueError) as e:
        raise UserError(f"model.sam.preset: {e.args[0]}") from None
    load_meta_checkpoint(model, ckpt)
    return model.to(_dtype(dtype))


def sam_input_size(config: Sam2Config) -> int:
    size = config.prompt_encoder_config.image_size
    return int(size if isinstance(size, int) else size[0])


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(
    texts: Iterable[str], out_dir: str | os.PathLike | None = None, *, vocab_size: int = presets.TINY_VOCAB
):
    """Byte-level BPE with Qwen2-VL's special tokens at ids 0..6 (as the tiny presets expect). With no texts
    it is a pure byte tokenizer (256 symbols + specials). Saved like a real tokenizer when out_dir is given."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(presets.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(presets.SPECIAL_TOKENS[1:]),
    )
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def load_tokenizer(spec: BackboneConfig, *, root: Path):
    """The tokenizer saved beside the VLM; presets get the byte tokenizer (no corpus needed)."""
    if spec.preset:
        return train_tokenizer([])
    from transformers import AutoTokenizer

    local, name = _resolve(spec.path, root)
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise UserError(f"model.vlm.path: {spec.path}: no tokenizer there ({str(e).splitlines()[0]})") from None


# ---------------------------------------------------------------- images


def vlm_pixel_bounds(image_size: int, pixels: tuple[int, int] | None) -> tuple[int, int]:
    """(min, max) of height x width after Qwen2-VL's smart-resize: the native bounds, or exactly the square's."""
    return pixels if pixels is not None else (image_size * image_size, image_size * image_size)


def vlm_image_processor(
    vision_config, image_size: int, *, pixels: tuple[int, int] | None = None
) -> Qwen2VLImageProcessorPil:
    """Qwen2-VL's image processor. pixels None: a fixed square input, every image (stretched to image_size
    beforehand) gives (image_size / patch / merge)^2 tokens. pixels (min, max): native resolution, each image
    smart-resized to multiples of patch x merge with min <= height x width <= max, its aspect ratio kept."""
    factor = vision_config.patch_size * vision_config.spatial_merge_size
    if pixels is None and image_size % factor:
        raise UserError(f"model.vlm_image_size: {image_size} is not a multiple of patch x merge = {factor}")
    if pixels is not None and pixels[1] < factor * factor:
        raise UserError(f"model.vlm_max_pixels: {pixels[1]} is less than one image token ({factor}x{factor} pixels)")
    low, high = vlm_pixel_bounds(image_size, pixels)
    return Qwen2VLImageProcessorPil(
        patch_size=vision_config.patch_size,
        merge_size=vision_config.spatial_merge_size,
        temporal_patch_size=vision_config.temporal_patch_size,
        size={"shortest_edge": low, "longest_edge": high},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def vlm_patch_grid(vision_config, width: int, height: int, bounds: tuple[int, int]) -> tuple[int, int]:
    """(rows, columns) of patches that the image processor with these pixel bounds makes of a width x height
    image: its own smart-resize, so the grid is known without decoding the image (cached frozen features)."""
    patch = vision_config.patch_size
    factor = patch * vision_config.spatial_merge_size
    h, w = smart_resize(height, width, factor=factor, min_pixels=bounds[0], max_pixels=bounds[1])
    return h // patch, w // patch


def vlm_image_tokens(vision_config, image_size: int, pixels: tuple[int, int] | None = None) -> int:
    """The most image tokens (merged patches) one image can give: exactly this many for the square input,
    at most this many within native bounds. The width of the frozen vision features."""
    factor = vision_config.patch_size * vision_config.spatial_merge_size
    return vlm_pixel_bounds(image_size, pixels)[1] // (factor * factor)


def sam_pixels(image: Image.Image, size: int, *, double_norm: bool = False) -> torch.Tensor:
    """[3, size, size]: stretched to SAM's square input, ImageNet-normalised once (the release normalises
    with CLIP statistics first, then ImageNet: double_norm reproduces that)."""
    x = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    if double_norm:
        x = (x - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1).contiguous()


def box_mask_logits(box: Sequence[float], width: int, height: int, side: int) -> torch.Tensor:
    """[1, side, side] SAM dense-prompt input for a box (x1, y1, x2, y2 in original pixels): its rectangle,
    in the same square frame as the image (model.sam_box_mask)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    rect = np.zeros((height, width), dtype=bool)
    rect[max(int(np.floor(y1)), 0) : int(np.ceil(y2)), max(int(np.floor(x1)), 0) : int(np.ceil(x2))] = True
    return mask_logits(rect, side)


def mask_logits(mask: np.ndarray, side: int) -> torch.Tensor:
    """[1, side, side] SAM dense-prompt input from a binary [H, W] mask: area-resized, as +-10 logits."""
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((side, side), Image.BILINEAR)
    frac = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy((frac - 0.5) * 20.0)[None]
