"""build_embedder: a ModelConfig -> (Embedder, Processor), the one entry point of the models package."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config.model import ModelConfig, seg_token_side
from ..errors import UserError
from ..paths import in_workspace, workspace_root
from .adapters import apply_freeze_policy
from .backbones import build_sam, build_vlm, load_tokenizer, train_tokenizer, vlm_image_tokens
from .connector import Connector
from .embedder import Embedder
from .frozen import frozen_settings
from .interop import find_release_config, load_release_connector, read_virtue_sam
from .processor import Processor
from .segmentation import SegmentationStream


def _check_tokenizer(tokenizer, vlm_config) -> None:
    ids = tokenizer.convert_tokens_to_ids
    for token, key in [("<|image_pad|>", "image_token_id"), ("<|vision_start|>", "vision_start_token_id")]:
        if ids(token) != getattr(vlm_config, key):
            raise UserError(
                f"model.vlm: tokenizer has {token} at id {ids(token)}, the model expects {getattr(vlm_config, key)}"
            )


def _load_release(cfg: ModelConfig, connector: Connector, root: Path) -> None:
    """The released connector; the release's config.json (beside its Qwen2-VL weights: a folder's, or a hub
    id's in the HF cache) must agree on N."""
    path = Path(cfg.release_connector)
    load_release_connector(connector, in_workspace(path, root))
    config_json = find_release_config(cfg.vlm.path, root) if cfg.vlm.path else None
    if config_json is not None and "virtue_sam" in config_json.read_text(encoding="utf-8"):
        block = read_virtue_sam(config_json)
        if block.num_points != cfg.num_points:
            raise UserError(
                f"model.num_points: {cfg.num_points}, but {config_json} has points_per_side "
                f"{block.points_per_side} (set model.num_points={block.num_points})"
            )


def build_embedder(
    cfg: ModelConfig,
    *,
    root: str | Path | None = None,
    device: str | torch.device = "cpu",
    meta: bool = False,
    seed: int = 0,
    padding_side: str = "right",
    for_eval: bool = False,
) -> tuple[Embedder, Processor]:
    """Backbones from cfg.vlm / cfg.sam (folders, hub ids or presets), the connector for the `virtue` variant,
    the freeze policy and adapters. Randomly initialised parts depend only on `seed`. meta=True builds every
    weight on the meta device (no download, no memory): for parameter counts. for_eval: the processor serves
    evaluation (virtue eval, virtue embed), where model.vlm_eval_stretch applies."""
    root = Path(root) if root is not None else workspace_root()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vlm = build_vlm(cfg.vlm, root=root, meta=meta, dtype=cfg.dtype, attention=cfg.attention)
        segmentation = connector = None
        if cfg.variant == "virtue":
            sam = build_sam(cfg.sam, image_size=cfg.sam_image_size, root=root, meta=meta, dtype=cfg.dtype)
            segmentation = SegmentationStream(sam)
            side = segmentation.map_side
            try:  # the backbone's real map side (a checkpoint may differ from what sam_image_size implies)
                seg_token_side(cfg.seg_tokens, side)
            except ValueError as err:
                raise UserError(f"model.seg_tokens: {err}") from None
            torch.manual_seed(seed)  # the connector's init does not depend on where the backbones came from
            with torch.device("meta") if meta else torch.device("cpu"):
                connector = Connector(
                    segmentation.channels,
                    side,
                    cfg.seg_tokens,
                    vlm.config.text_config.hidden_size,
                    cfg.connector_depth,
                ).to(vlm.dtype)
        if connector is not None and cfg.release_connector and not meta:
            _load_release(cfg, connector, root)
        vc = vlm.config.vision_config
        pixels = (cfg.vlm_min_pixels, cfg.vlm_max_pixels) if cfg.vlm_resize == "native" else None
        stretch = cfg.vlm_eval_stretch if for_eval else None
        embedder = Embedder(
            vlm,
            segmentation,
            connector,
            image_tokens=vlm_image_tokens(vc, cfg.vlm_image_size, pixels),
            official_compat=cfg.official_compat,
            fingerprint_extra=frozen_settings(cfg, for_eval=for_eval),
            train_sam_decoder=cfg.sam_trainable == "decoder",
            seg_rope=cfg.seg_rope,
        )
        torch.manual_seed(seed + 1)  # adapter init, likewise independent of the backbones' source
        apply_freeze_policy(embedder, cfg.adapter)
    tokenizer = train_tokenizer([]) if meta else load_tokenizer(cfg.vlm, root=root)
    if not meta:
        _check_tokenizer(tokenizer, vlm.config)
        embedder.to(device)
    processor = Processor(
        tokenizer,
        vc,
        variant=cfg.variant,
        vlm_image_size=cfg.vlm_image_size,
        sam_image_size=cfg.sam_image_size,
        sam_mask_side=segmentation.mask_side if segmentation is not None else cfg.sam_image_size // 4,
        seg_tokens=cfg.seg_tokens,
        num_points=cfg.num_points,
        seg_position=cfg.seg_position,
        official_compat=cfg.official_compat,
        sam_box_mask=cfg.sam_box_mask,
        padding_side=padding_side,
        vlm_pixels=pixels,
        vlm_stretch=stretch,
    )
    return embedder, processor
