"""Sides (text, image, visual prompt) -> ModelInputs: token ids with placeholder slots, VLM pixels, SAM pixels
and prompts in SAM's input frame. The variant is applied here: `crop` crops the image to the prompt's
region, `global` ignores the visual prompt (its box is in the text), `virtue` falls back to the N-point grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from PIL import Image

from ..data.images import image_size, load_rgb
from ..data.prompts import BOX_LABELS, VisualPrompt, grid_prompt, to_frame
from ..data.types import Side
from ..errors import UserError
from .backbones import (
    box_mask_logits,
    mask_logits,
    sam_pixels,
    vlm_image_processor,
    vlm_image_tokens,
    vlm_patch_grid,
    vlm_pixel_bounds,
)

Variant = str  # "virtue" | "global" | "crop"


@dataclass
class SamPrompt:
    """One prompt in SAM's input frame: points [k, 2] + labels [k] (a box is its two corners), a mask, or
    both (a box with model.sam_box_mask: its corners and its rectangle)."""

    points: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # [1, m, m] logits

    def signature(self) -> tuple[int, bool]:
        """Prompts with the same signature run through the two-way transformer together."""
        return (0 if self.points is None else int(self.points.shape[0]), self.mask is not None)


@dataclass
class ModelInputs:
    input_ids: torch.Tensor  # [B, L] long
    attention_mask: torch.Tensor  # [B, L] long, 1 = real token
    mm_token_type_ids: torch.Tensor  # [B, L] int, 1 = image token
    seg_slots: torch.Tensor  # [B, L] bool, where the |S| segmentation embeddings go
    has_image: torch.Tensor  # [B] bool
    has_seg: torch.Tensor  # [B] bool
    pixel_values: torch.Tensor | None = None  # [sum of patches, C*T*p*p], rows with images in order
    image_grid_thw: torch.Tensor | None = None  # [n_images, 3]
    sam_pixels: torch.Tensor | None = None  # [n_seg, 3, S, S]
    sam_prompts: list[SamPrompt] = field(default_factory=list)  # n_seg
    row_keys: list[str] = field(default_factory=list)  # per row: what the frozen features depend on

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def has_pixels(self) -> bool:
        return self.pixel_values is not None or self.sam_pixels is not None

    def without_pixels(self) -> ModelInputs:
        """These inputs less what only the frozen backbones read (VLM and SAM pixels), as the processor gives
        with pixels=False: enough for the trained forward once the frozen features are at hand."""
        return replace(self, pixel_values=None, sam_pixels=None)

    def to(self, device: torch.device | str) -> ModelInputs:
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            moved[f.name] = v.to(device) if isinstance(v, torch.Tensor) else v
        moved["sam_prompts"] = [
            SamPrompt(*(None if t is None else t.to(device) for t in (p.points, p.labels, p.mask)))
            for p in self.sam_prompts
        ]
        return ModelInputs(**moved)


def crop_region(prompt: VisualPrompt | None, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (x1, y1, x2, y2) that the crop baseline sees: the box, the mask's bounding box, or the
    points' bounding box widened to an eighth of the image; the whole image without a prompt."""
    if prompt is None:
        return 0, 0, width, height
    if prompt.kind == "box":
        x1, y1, x2, y2 = prompt.box
    elif prompt.kind == "mask":
        ys, xs = np.nonzero(prompt.mask)
        sx, sy = width / prompt.mask.shape[1], height / prompt.mask.shape[0]
        x1, y1, x2, y2 = xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy
    else:
        pts = np.asarray(prompt.points)
        mx, my = width / 8, height / 8
        x1, y1 = pts.min(0) - (mx, my)
        x2, y2 = pts.max(0) + (mx, my)
    x1, y1 = max(0, math.floor(x1)), max(0, math.floor(y1))
    x2, y2 = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


class Processor:
    def __init__(
        self,
        tokenizer,
        vision_config,
        *,
        variant: Variant,
        vlm_image_size: int,
        sam_image_size: int,
        sam_mask_side: int,
        seg_tokens: int,
        num_points: int,
        seg_position: str = "prefix",
        official_compat: bool = False,
        sam_box_mask: bool = False,
        padding_side: str = "right",
        max_text_tokens: int = 256,
        vlm_pixels: tuple[int, int] | None = None,
        vlm_stretch: int | None = None,
    ):
        """vlm_pixels None: every image stretched to vlm_image_size squared (model.vlm_resize square); (min,
        max): native resolution within these pixel bounds. vlm_stretch: native images stretched to this square
        first (evaluation with model.vlm_eval_stretch)."""
        self.tokenizer = tokenizer
        self.variant = variant
        self.vlm_image_size = vlm_image_size
        self.sam_image_size = sam_image_size
        self.sam_mask_side = sam_mask_side
        self.seg_tokens = seg_tokens if variant == "virtue" else 0
        self.num_points = num_points
        self.seg_position = seg_position
        self.official_compat = official_compat
        self.sam_box_mask = sam_box_mask
        self.padding_side = padding_side
        self.max_text_tokens = max_text_tokens
        self.vision_config = vision_config
        self.native = vlm_pixels is not None
        self.vlm_stretch = vlm_stretch if self.native else None
        self.pixel_bounds = vlm_pixel_bounds(vlm_image_size, vlm_pixels)
        self.image_processor = vlm_image_processor(vision_config, vlm_image_size, pixels=vlm_pixels)
        self.image_tokens = vlm_image_tokens(vision_config, vlm_image_size, vlm_pixels)  # the most per image
        ids = tokenizer.convert_tokens_to_ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids("<|endoftext|>")
        self.image_id, self.start_id, self.end_id = ids("<|image_pad|>"), ids("<|vision_start|>"), ids("<|vision_end|>")

    def _sam_prompt(self, prompt: VisualPrompt | None, width: int, height: int) -> SamPrompt:
        s = self.sam_image_size
        if prompt is None:
            # The release scales its normalised grid into SAM's frame itself, so in compat mode the grid is
            # made there (and skips the conversion below, as the release's user prompts do).
            grid_frame = (s, s) if self.official_compat else (width, height)
            prompt = grid_prompt(self.num_points, *grid_frame)
        if prompt.kind == "mask":
            return SamPrompt(mask=mask_logits(prompt.mask, self.sam_mask_side))
        if prompt.kind == "box":
            xy, labels = np.asarray(prompt.box, np.float64).reshape(2, 2), BOX_LABELS
        else:
            xy, labels = np.asarray(prompt.points, np.float64), prompt.labels
        # Original pixels -> SAM's square input frame (the release skips this conversion).
        xy = xy if self.official_compat else to_frame(xy, (width, height), (s, s))
        dense = None
        if prompt.kind == "box" and self.sam_box_mask:
            dense = box_mask_logits(prompt.box, width, height, self.sam_mask_side)
        return SamPrompt(torch.tensor(xy, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64), dense)

    def __call__(self, sides: Sequence[Side], *, pixels: bool = True) -> ModelInputs:
        """pixels=False leaves out what only the frozen backbones read (VLM and SAM pixels): for rows whose
        frozen features come from the feature cache. Token ids, positions and prompts are the same."""
        rows: list[list[int]] = []
        types: list[list[int]] = []
        slots: list[list[bool]] = []
        vlm_images: list[Image.Image] = []
        sam_images: list[torch.Tensor] = []
        prompts: list[SamPrompt] = []
        grids: list[list[int]] = []  # per image: [1, patch rows, patch columns]
        has_image, has_seg, keys = [], [], []
        for i, side in enumerate(sides):
            text = self.tokenizer(side.text, add_special_tokens=False).input_ids[: self.max_text_tokens]
            if side.image is None:
                if not text:
                    raise UserError(f"row {i}: a side needs text or an image")
                if side.prompt is not None and self.variant != "global":
                    raise UserError(f"row {i}: a visual prompt without an image")
                rows.append(text)
                types.append([0] * len(text))
                slots.append([False] * len(text))
                has_image.append(False)
                has_seg.append(False)
                keys.append("")
                continue
            seg = self.seg_tokens > 0
            if pixels:
                image = load_rgb(side.image)
                w, h = image.size
                if self.variant == "crop":
                    image = image.crop(crop_region(side.prompt, w, h))
                vlm_images.append(image.resize(self._vlm_size(*image.size), Image.BICUBIC))
                if seg:
                    sam_images.append(sam_pixels(image, self.sam_image_size, double_norm=self.official_compat))
                seen = image.size
            else:
                w, h = image_size(side.image)
                x1, y1, x2, y2 = crop_region(side.prompt, w, h) if self.variant == "crop" else (0, 0, w, h)
                seen = (x2 - x1, y2 - y1)
            if seg:
                prompts.append(self._sam_prompt(side.prompt, w, h))
            grids.append([1, *self._patch_grid(i, side.image, *self._vlm_size(*seen))])
            vision = [self.image_id] * (grids[-1][1] * grids[-1][2] // self.vision_config.spatial_merge_size**2)
            if not self.official_compat:  # without <|vision_start|> image tokens lose their 2-D positions
                vision = [self.start_id, *vision, self.end_id]
            vtypes = [1 if t == self.image_id else 0 for t in vision]
            s = self.seg_tokens
            if self.seg_position == "prefix":
                ids, ty, sl = [self.pad_id] * s + vision, [0] * s + vtypes, [True] * s + [False] * len(vision)
            else:
                ids, ty, sl = vision + [self.pad_id] * s, vtypes + [0] * s, [False] * len(vision) + [True] * s
            rows.append(ids + text)
            types.append(ty + [0] * len(text))
            slots.append(sl + [False] * len(text))
            has_image.append(True)
            has_seg.append(seg)
            prompt_key = side.prompt.key() if side.prompt is not None else "grid"
            keys.append(f"{side.image}|{self.variant}|{prompt_key if seg or self.variant == 'crop' else ''}")
        return self._collate(rows, types, slots, vlm_images, sam_images, prompts, grids, has_image, has_seg, keys)

    def _vlm_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of an image (after any crop) as handed to Qwen2-VL's image processor."""
        if not self.native:
            return self.vlm_image_size, self.vlm_image_size
        if self.vlm_stretch:
            return self.vlm_stretch, self.vlm_stretch
        return width, height

    def _patch_grid(self, row: int, path: str, width: int, height: int) -> tuple[int, int]:
        """The image processor's patch grid of an image of this size, whether or not its pixels are decoded."""
        try:
            rows, cols = vlm_patch_grid(self.vision_config, width, height, self.pixel_bounds)
        except ValueError as e:  # smart-resize refuses aspect ratios beyond 200
            raise UserError(f"row {row}: {path}: {e}") from None
        tokens = rows * cols // self.vision_config.spatial_merge_size**2
        if tokens > self.image_tokens:  # only for pixel bounds far narrower than an image's aspect ratio
            raise UserError(
                f"row {row}: {path}: {width}x{height} gives {tokens} image tokens, more than model.vlm_max_pixels "
                f"allows ({self.image_tokens})"
            )
        return rows, cols

    def _collate(
        self, rows, types, slots, vlm_images, sam_images, prompts, grids, has_image, has_seg, keys
    ) -> ModelInputs:
        b, length = len(rows), max(len(r) for r in rows)
        input_ids = torch.full((b, length), self.pad_id, dtype=torch.long)
        attention = torch.zeros((b, length), dtype=torch.long)
        mm_types = torch.zeros((b, length), dtype=torch.int32)
        seg_slots = torch.zeros((b, length), dtype=torch.bool)
        for i, (r, t, s) in enumerate(zip(rows, types, slots, strict=True)):
            span = slice(length - len(r), length) if self.padding_side == "left" else slice(0, len(r))
            input_ids[i, span] = torch.tensor(r)
            attention[i, span] = 1
            mm_types[i, span] = torch.tensor(t, dtype=torch.int32)
            seg_slots[i, span] = torch.tensor(s)
        out = ModelInputs(
            input_ids=input_ids,
            attention_mask=attention,
            mm_token_type_ids=mm_types,
            seg_slots=seg_slots,
            has_image=torch.tensor(has_image),
            has_seg=torch.tensor(has_seg),
            sam_prompts=prompts,
            row_keys=keys,
        )
        if grids:  # with pixels=False the grid alone: M-RoPE positions need it
            out.image_grid_thw = torch.tensor(grids)
        if vlm_images:
            pix = self.image_processor(images=vlm_images, return_tensors="pt")
            if not torch.equal(pix["image_grid_thw"], out.image_grid_thw):
                raise RuntimeError("the image processor's patch grids differ from vlm_patch_grid's")
            out.pixel_values = pix["pixel_values"]
        if sam_images:
            out.sam_pixels = torch.stack(sam_images)
        return out
