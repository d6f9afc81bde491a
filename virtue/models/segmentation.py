"""The segmentation stream: SAM-2's image encoder, then the mask decoder's two-way transformer with the
prompt tokens; its image-side output (the "keys") is the prompt-conditioned map F_s. Masks, IoU and object
heads and the upscaling path are not run. `decoder_modules` are the parts that run after the image encoder:
the ones trained in the fallback regime (model.sam_trainable: decoder)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import Sam2Model


class SegmentationStream(nn.Module):
    def __init__(self, sam: Sam2Model):
        super().__init__()
        self.sam = sam

    @property
    def channels(self) -> int:
        return self.sam.config.mask_decoder_config.hidden_size

    @property
    def map_side(self) -> int:
        return int(self.sam.prompt_encoder.image_embedding_size[0])

    @property
    def mask_side(self) -> int:
        return int(self.sam.prompt_encoder.mask_input_size[0])

    def decoder_modules(self) -> list[nn.Module]:
        """Everything `forward` runs: the prompt encoder, the decoder's output tokens and two-way transformer
        (not the mask / IoU / object heads, which F_s never reaches)."""
        dec = self.sam.mask_decoder
        return [self.sam.prompt_encoder, dec.obj_score_token, dec.iou_token, dec.mask_tokens, dec.transformer]

    def image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        # pixels: [N, 3, S, S] -> stride-16 map [N, C, S/16, S/16] plus the learned "no memory" embedding
        fpn = self.sam.vision_encoder(pixels).fpn_hidden_states[-1]
        return fpn + self.sam.no_memory_embedding.view(1, -1, 1, 1)

    def forward(
        self,
        image_embed: torch.Tensor,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> torch.Tensor:
        """One prompt per image. image_embed [N, C, h, w]; points [N, k, 2] in SAM-input pixels with labels
        [N, k] (box = 2 corners labelled 2, 3; SAM appends its padding point); masks [N, 1, 4h, 4w] logits.
        Returns F_s [N, C, h, w]."""
        n, c, h, w = image_embed.shape
        pe = self.sam.prompt_encoder
        sparse, dense = pe(
            input_points=None if points is None else points[:, None],
            input_labels=None if labels is None else labels[:, None],
            input_boxes=None,
            input_masks=masks,
        )
        if dense.shape[0] != n:  # no points and no mask: the no-mask embedding for every image
            dense = dense.expand(n, -1, -1, -1)
        dec = self.sam.mask_decoder
        out_tokens = torch.cat([dec.obj_score_token.weight, dec.iou_token.weight, dec.mask_tokens.weight])
        tokens = out_tokens.expand(n, 1, -1, -1)  # [N, 1, T_out, C]
        if sparse is not None:
            tokens = torch.cat([tokens, sparse.to(tokens.dtype)], dim=2)  # [N, 1, T_out + k + 1, C]
        pos = self.sam.get_image_wide_positional_embeddings().expand(n, -1, -1, -1).to(image_embed.dtype)
        _, keys = dec.transformer(
            point_embeddings=tokens,
            image_embeddings=image_embed + dense,
            image_positional_embeddings=pos,
            attention_similarity=None,
        )
        # keys: [N, 1, h*w, C] -> [N, C, h, w]
        return keys[:, 0].transpose(1, 2).reshape(n, c, h, w)
