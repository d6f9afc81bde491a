"""`virtue pretrain`: the embedded default's backbones, trained here because no checkpoint can be downloaded.

Writes <pretrain.output_dir>/sam2 and /qwen2vl with save_pretrained (the Qwen2-VL folder also holds the
tokenizer and the image processor), so the VIRTUE stage loads them through model.sam.path / model.vlm.path
exactly as it would load facebook/sam2.1-hiera-base-plus and Qwen/Qwen2-VL-2B-Instruct; plus metrics.json
(held-out mIoU, retrieval R@1, wall times) and the resolved config."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from ..config import ExperimentConfig, write_resolved
from ..config.model import BackboneConfig
from ..errors import UserError
from ..io import write_json
from ..models.backbones import build_sam, build_vlm, train_tokenizer, vlm_image_processor
from ..paths import workspace_root
from .pretrain_data import (
    ATTRIBUTES,
    attribute_classes,
    caption_pairs,
    eval_caption_sets,
    image_cells,
    load_scenes,
    segmentation_samples,
    tokenizer_corpus,
)
from .pretrain_sam import reset_to_pytorch_init, train_segmenter
from .pretrain_vlm import train_aligner, vlm_encoder


def _arch(cfg: ExperimentConfig, what: str) -> str:
    spec = getattr(cfg.model, what)
    if not spec.arch:
        raise UserError(
            f"model.{what}.arch: required by virtue pretrain (the preset to build and train, e.g. sam2-tiny)"
        )
    if not spec.path:
        raise UserError(f"model.{what}.path: virtue pretrain needs the folder to save the trained backbone in")
    return spec.arch


def _target(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def _log(tracker, step: int, values: dict[str, float]) -> None:
    if tracker is not None:
        tracker.log_metrics(values, step)


def pretrain(cfg: ExperimentConfig, *, tracker=None, root: Path | None = None) -> Path:
    """Train both backbones into model.sam.path and model.vlm.path (metrics and config into
    pretrain.output_dir); returns pretrain.output_dir. Same config and seed -> same weights."""
    root = root or workspace_root()
    p = cfg.pretrain
    out = root / p.output_dir
    scenes_dir = root / p.scenes_dir
    if not scenes_dir.is_dir():
        raise UserError(f"pretrain.scenes_dir: {scenes_dir}: no such folder (generate it first: virtue data synth)")
    start = time.perf_counter()
    train_scenes = load_scenes(scenes_dir, "train")
    eval_scenes = load_scenes(scenes_dir, "eval")
    if not train_scenes or not eval_scenes:
        raise UserError(f"pretrain.scenes_dir: {scenes_dir}: needs scenes in both the train and eval splits")
    metrics: dict = {"scenes": {"train": len(train_scenes), "eval": len(eval_scenes)}}
    stage = out / ".staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)

    # SAM-2: promptable segmentation + appearance heads on the image-side stream.
    t0 = time.perf_counter()
    torch.manual_seed(p.seed)
    sam = build_sam(BackboneConfig(preset=_arch(cfg, "sam")), image_size=cfg.model.sam_image_size, root=root)
    if p.sam_init == "pytorch":
        reset_to_pytorch_init(sam)
    classes = attribute_classes()
    train_seg = segmentation_samples(train_scenes, cfg.model.sam_image_size, classes)
    eval_seg = segmentation_samples(eval_scenes[: p.sam_eval_scenes], cfg.model.sam_image_size, classes)
    sam_metrics = train_segmenter(
        sam,
        train_seg,
        eval_seg,
        {a: len(classes[a]) for a in ATTRIBUTES},
        steps=p.sam_steps,
        batch_size=p.sam_batch_size,
        lr=p.sam_lr,
        prompts=p.sam_prompts,
        appearance_weight=p.sam_appearance_weight,
        seed=p.seed,
        per_image=p.sam_prompts_per_image,
        box_mask=cfg.model.sam_box_mask,
        dense_weight=p.sam_dense_weight,
        on_step=lambda s, v: _log(tracker, s, v),
    )
    sam.save_pretrained(stage / "sam2")
    sam_metrics["wall_seconds"] = time.perf_counter() - t0
    metrics["sam2"] = sam_metrics

    # Qwen2-VL: tokenizer on every text the workspace will feed it, then image-caption alignment.
    t0 = time.perf_counter()
    torch.manual_seed(p.seed + 1)
    vlm_dir = stage / "qwen2vl"
    tokenizer = train_tokenizer(tokenizer_corpus(root, cfg, train_scenes), vlm_dir)
    vlm = build_vlm(BackboneConfig(preset=_arch(cfg, "vlm")), root=root, attention=cfg.model.attention)
    processor_kwargs = dict(
        vlm_image_size=cfg.model.vlm_image_size,
        sam_image_size=cfg.model.sam_image_size,
        seg_tokens=cfg.model.seg_tokens,
        num_points=cfg.model.num_points,
    )
    params, encode, encode_images = vlm_encoder(vlm, tokenizer, **processor_kwargs)
    pairs = caption_pairs(train_scenes, p.vlm_captions, p.seed)
    eval_sets = eval_caption_sets(eval_scenes[: p.vlm_eval_images], p.vlm_captions, p.seed + 1)
    vc = vlm.config.vision_config
    grid = cfg.model.vlm_image_size // (vc.patch_size * vc.spatial_merge_size)
    vlm_metrics = train_aligner(
        params,
        encode,
        encode_images,
        pairs,
        eval_sets,
        steps=p.vlm_steps,
        batch_size=p.vlm_batch_size,
        lr=p.vlm_lr,
        temperature=p.vlm_temperature,
        seed=p.seed,
        dim=vlm.config.text_config.hidden_size,
        cells=image_cells([*train_scenes, *eval_scenes[: p.vlm_eval_images]], grid, classes),
        num_classes={a: len(classes[a]) for a in ATTRIBUTES},
        dense_weight=p.vlm_dense_weight,
        caption_weight=p.vlm_caption_weight,
        on_step=lambda s, v: _log(tracker, p.sam_steps + s, v),
    )
    vlm.save_pretrained(vlm_dir)
    vlm_image_processor(vlm.config.vision_config, cfg.model.vlm_image_size).save_pretrained(vlm_dir)
    vlm_metrics["wall_seconds"] = time.perf_counter() - t0
    metrics["qwen2vl"] = vlm_metrics
    metrics["wall_seconds"] = time.perf_counter() - start

    write_resolved(cfg, stage)
    write_json(stage / "metrics.json", metrics)
    # Replace the previous outputs only once everything is written.
    targets = {
        "sam2": _target(root, cfg.model.sam.path),
        "qwen2vl": _target(root, cfg.model.vlm.path),
        "config.yaml": out / "config.yaml",
        "metrics.json": out / "metrics.json",
    }
    for name, target in targets.items():
        if target.is_dir():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        (stage / name).replace(target)
    shutil.rmtree(stage, ignore_errors=True)
    if tracker is not None:
        tracker.log_metrics(_flat_numbers(metrics), p.sam_steps + p.vlm_steps)
    return out


def _flat_numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_numbers(v, f"{key}/"))
        elif isinstance(v, int | float):
            out[f"pretrain/{key}"] = float(v)
    return out


def pretrain_job(cfg: ExperimentConfig) -> dict:
    """The launcher's unit of work: pre-training tracked as its own run; returns metrics.json's content."""
    import json

    from ..orchestrate.tracking import open_tracker

    root = workspace_root()
    tracker = open_tracker(
        cfg, root / cfg.pretrain.output_dir, run_name=f"{cfg.name}-pretrain", tags={"stage": "pretrain"}
    )
    status = "FAILED"
    try:
        out = pretrain(cfg, tracker=tracker, root=root)
        status = "FINISHED"
    finally:
        tracker.close(status)
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
