"""The embedder: [segmentation tokens; image tokens; text tokens] through Qwen2-VL's LLM, last real token,
L2-normalised. Frozen parts (SAM-2, vision tower + merger) are split off so their outputs can be cached. With
a trained SAM-2 decoder (the fallback regime, model.sam_trainable: decoder) the split moves to SAM-2's image
embeddings: the prompt encoder and two-way transformer then run in `forward`, with gradients."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2VLModel

from ..errors import UserError
from .connector import Connector
from .processor import ModelInputs
from .segmentation import SegmentationStream


class Embedder(nn.Module):
    def __init__(
        self,
        vlm: Qwen2VLModel,
        segmentation: SegmentationStream | None = None,
        connector: Connector | None = None,
        *,
        image_tokens: int,
        official_compat: bool = False,
        fingerprint_extra: str = "",
        train_sam_decoder: bool = False,
        seg_rope: str = "sequence",
    ):
        super().__init__()
        if (segmentation is None) != (connector is None):
            raise ValueError("the segmentation stream and the connector come together")
        self.vlm = vlm
        self.segmentation = segmentation
        self.connector = connector
        self.image_tokens = image_tokens  # the most per image (all of them with the square input)
        self.official_compat = official_compat
        self.fingerprint_extra = fingerprint_extra
        self.train_sam_decoder = train_sam_decoder and segmentation is not None
        self.seg_rope = seg_rope  # "sequence": 1-D positions in order; "grid": the image's 2-D positions

    @property
    def dim(self) -> int:
        return int(self.vlm.config.text_config.hidden_size)

    def frozen_modules(self) -> list[nn.Module]:
        """Modules whose (untrained) weights the frozen features depend on; with a trained SAM-2 decoder the
        stream stays listed, its trained parameters are skipped by `frozen_fingerprint`."""
        mods: list[nn.Module] = [self.vlm.visual]
        if self.segmentation is not None:
            mods.append(self.segmentation)
        return mods

    def train(self, mode: bool = True) -> Embedder:
        super().train(mode)
        for m in self.frozen_modules():  # frozen parts always run as at inference
            m.eval()
        if self.train_sam_decoder:  # no dropout in it: the mode changes no number, kept for consistency
            for m in self.segmentation.decoder_modules():
                m.train(mode)
        return self

    # ------------------------------------------------------------ frozen features

    @torch.no_grad()
    def frozen_features(self, inputs: ModelInputs) -> dict[str, torch.Tensor]:
        """Per-row outputs of the frozen backbones: "vision" [B, T_img, D] (vision tower + merger; T_img =
        image_tokens, a row's own count of tokens first, zeros after: one width for every row, so that rows
        cached one by one stack) and, with a segmentation stream, "seg" [B, C, h, w] (F_s), or with a trained
        SAM-2 decoder "sam_embed" [B, C, h, w] (SAM-2's image embeddings, the decoder's input). Rows without an
        image (or without a stream) are zeros."""
        b = len(inputs)
        device = inputs.input_ids.device
        dtype = self.vlm.visual.get_dtype()
        out: dict[str, torch.Tensor] = {}
        out["vision"] = torch.zeros((b, self.image_tokens, self.dim), device=device, dtype=dtype)
        if bool(inputs.has_image.any()):
            feats = self.vlm.get_image_features(inputs.pixel_values, inputs.image_grid_thw).pooler_output
            padded = nn.utils.rnn.pad_sequence(list(feats), batch_first=True)  # [n_img, max count, D]
            out["vision"][inputs.has_image, : padded.shape[1]] = padded.to(dtype)
        if self.segmentation is not None:
            seg = self.segmentation
            emb = torch.zeros((b, seg.channels, seg.map_side, seg.map_side), device=device, dtype=dtype)
            if inputs.sam_pixels is not None and len(inputs.sam_prompts):
                emb[inputs.has_seg] = seg.image_embeddings(inputs.sam_pixels.to(dtype))  # one image per prompt
            if self.train_sam_decoder:
                out["sam_embed"] = emb
            else:
                out["seg"] = self._seg_maps(inputs, emb)
        return out

    def _seg_maps(self, inputs: ModelInputs, image_embed: torch.Tensor) -> torch.Tensor:
        """image_embed [B, C, h, w] (SAM-2's image embeddings per row) -> F_s [B, C, h, w]; rows without a
        prompt stay zeros. Runs in the decoder's dtype (float32 when it is trained)."""
        seg = self.segmentation
        dtype = seg.sam.mask_decoder.iou_token.weight.dtype
        image_embed = image_embed.to(dtype)
        fs = torch.zeros_like(image_embed)
        rows = torch.nonzero(inputs.has_seg).flatten()
        groups: dict[tuple, list[int]] = defaultdict(list)
        for j, p in enumerate(inputs.sam_prompts):
            groups[p.signature()].append(j)
        # Prompts of one shape run together: padding a prompt would add tokens its row never sees.
        for idx in groups.values():
            ps = [inputs.sam_prompts[j] for j in idx]
            pts = None if ps[0].points is None else torch.stack([p.points for p in ps]).to(dtype)
            lab = None if ps[0].labels is None else torch.stack([p.labels for p in ps])
            msk = None if ps[0].mask is None else torch.stack([p.mask for p in ps]).to(dtype)
            fs[rows[idx]] = seg(image_embed[rows[idx]], pts, lab, msk)
        return fs

    def frozen_fingerprint(self) -> str:
        """Digest of everything the frozen features depend on (weights of the frozen modules + settings);
        trained parameters inside them (a trained SAM-2 decoder) are left out: they change every step."""
        h = hashlib.sha256(self.fingerprint_extra.encode())
        for mod in self.frozen_modules():
            trained = {n for n, p in mod.named_parameters(remove_duplicate=False) if p.requires_grad}
            for name, t in sorted(mod.state_dict().items()):
                if name in trained:
                    continue
                h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
                if t.device.type != "meta":
                    h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------ fusion

    def position_ids(self, inputs: ModelInputs) -> torch.Tensor:
        """[3, B, L] M-RoPE positions, computed from this batch on every call (never cached offsets)."""
        if self.official_compat:
            # The release: 1-D positions over the padded sequence, segmentation tokens all at 0.
            b, length = inputs.input_ids.shape
            pos = torch.arange(length, device=inputs.input_ids.device).expand(b, -1).clone()
            pos[inputs.seg_slots] = 0
            return pos[None].expand(3, -1, -1)
        grid = inputs.image_grid_thw if bool(inputs.has_image.any()) else None
        pos, _ = self.vlm.get_rope_index(
            inputs.input_ids,
            mm_token_type_ids=inputs.mm_token_type_ids,
            image_grid_thw=grid,
            attention_mask=inputs.attention_mask,
        )
        if self.seg_rope == "grid" and bool(inputs.has_seg.any()):
            pos = self._seg_on_image_grid(inputs, pos)
        return pos

    def _seg_on_image_grid(self, inputs: ModelInputs, pos: torch.Tensor) -> torch.Tensor:
        """Give each segmentation token the 2-D M-RoPE position of its cell's centre on the image-token grid,
        so that rotary attention relates a segmentation token to the image tokens around the same place (both
        streams see the whole image: the |S| cells stretch over the image grid, square or not). Positions
        become fractional: |S| cells and the image grid need not align (4x4 on 6x6 in the tiny default).
        Computed for the whole batch on the inputs' device, without reading values back to the host."""
        pos = pos.to(torch.float32)  # [3, B, L]
        image = (inputs.mm_token_type_ids == 1)[None]  # [1, B, L]
        first = torch.where(image, pos, math.inf).amin(dim=-1)  # [3, B]: the top-left image token's position
        last = torch.where(image, pos, -math.inf).amax(dim=-1)  # [3, B]: the bottom-right one's
        side = math.isqrt(self.connector.seg_tokens)
        k = (inputs.seg_slots.cumsum(dim=-1) - 1).to(torch.float32)  # [B, L]: the connector's raster order
        rows, cols = torch.div(k, side, rounding_mode="floor"), k % side
        scale = (last[1:] - first[1:] + 1) / side  # [2, B]: image-grid cells per |S| cell, down and across
        new = torch.stack(
            [
                first[0, :, None].expand_as(k),
                first[1, :, None] + (rows + 0.5) * scale[0, :, None] - 0.5,
                first[2, :, None] + (cols + 0.5) * scale[1, :, None] - 0.5,
            ]
        )  # [3, B, L]
        moved = inputs.seg_slots & (inputs.has_seg & inputs.has_image)[:, None]  # [B, L]
        return torch.where(moved[None], new, pos)

    def forward(self, inputs: ModelInputs, frozen: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """-> [B, D] L2-normalised embeddings."""
        if frozen is None:
            frozen = self.frozen_features(inputs)
        lm = self.vlm.language_model
        embeds = lm.get_input_embeddings()(inputs.input_ids)  # [B, L, D]
        image_slots = inputs.mm_token_type_ids == 1
        if bool(inputs.has_image.any()):
            vision = frozen["vision"][inputs.has_image].to(embeds.dtype)  # [n_img, T_img, D]
            counts = image_slots[inputs.has_image].sum(dim=1)  # [n_img]: each row's own number of image tokens
            own = torch.arange(vision.shape[1], device=counts.device) < counts[:, None]  # [n_img, T_img]
            embeds = embeds.masked_scatter(image_slots[..., None], vision[own])
        if self.connector is not None and bool(inputs.has_seg.any()):
            fs = self._seg_maps(inputs, frozen["sam_embed"]) if self.train_sam_decoder else frozen["seg"]
            seg_map = fs[inputs.has_seg].to(self.connector.reduce.weight.dtype)  # [n_seg, C, h, w]
            tokens = self.connector(seg_map).to(embeds.dtype)  # [n_seg, |S|, D]
            embeds = embeds.masked_scatter(inputs.seg_slots[..., None], tokens.reshape(-1, embeds.shape[-1]))
        hidden = lm(
            inputs_embeds=embeds,
            attention_mask=inputs.attention_mask,
            position_ids=self.position_ids(inputs),
            use_cache=False,
        ).last_hidden_state  # [B, L, D]
        # float32 from here: bf16 similarities (about 3 significant digits) would blur the margins that the
        # temperature-scaled loss works on
        return F.normalize(pool_last(hidden, inputs.attention_mask).float(), dim=-1)

    # ------------------------------------------------------------ trainable state

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        missing, unexpected = params.keys() - state.keys(), state.keys() - params.keys()
        if missing or unexpected:
            raise UserError(
                f"trainable weights do not fit this model: missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}"
            )
        for n, p in params.items():
            if tuple(state[n].shape) != tuple(p.shape):
                raise UserError(f"trainable weights: {n}: shape {tuple(state[n].shape)}, model has {tuple(p.shape)}")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state[n])


def pool_last(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, D] -> [B, D]: the last position whose mask is 1, whichever side is padded."""
    length = attention_mask.shape[1]
    positions = torch.arange(length, device=attention_mask.device).expand_as(attention_mask)
    last = torch.where(attention_mask.bool(), positions, -1).max(dim=1).values  # [B]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
