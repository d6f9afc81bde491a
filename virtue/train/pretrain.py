"""`virtue pretrain`: the embedded default's backbones, trained here because no checkpoint can be downloaded.

Writes <pretrain.output_dir>/sam2 and /qwen2vl with save_pretrained (the Qwen2-VL folder also holds the
tokenizer and the image processor), so the VIRTUE stage loads them through model.sam.path / model.vlm.path
exactly as it would load facebook/sam2.1-hiera-base-plus and Qwen/Qwen2-VL-2B-Instruct; plus metrics.json
(held-out mIoU, retrieval R@1, wall times) and the resolved config."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import ExperimentConfig, write_resolved
from ..config.model import BackboneConfig
from ..errors import UserError
from ..io import write_json
from ..models.backbones import build_sam, build_vlm, train_tokenizer, vlm_image_processor
from ..paths import in_workspace, workspace_root
from ..tracker import Tracker, tracked_run
from .pretrain_data import (
    ATTRIBUTES,
    SceneImage,
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

OnStep = Callable[[int, dict[str, float]], None]  # (step, values): what the tracker logs


def _arch(cfg: ExperimentConfig, what: str) -> str:
    spec = getattr(cfg.model, what)
    if not spec.arch:
        raise UserError(
            f"model.{what}.arch: required by virtue pretrain (the preset to build and train, e.g. sam2-tiny)"
        )
    if not spec.path:
        raise UserError(f"model.{what}.path: virtue pretrain needs the folder to save the trained backbone in")
    return spec.arch


def _log(tracker: Tracker | None, step: int, values: dict[str, float]) -> None:
    if tracker is not None:
        tracker.log_metrics(values, step)


def _scenes(root: Path, scenes_dir: str) -> tuple[list[SceneImage], list[SceneImage]]:
    """The train and eval scenes of pretrain.scenes_dir (both must hold some)."""
    folder = root / scenes_dir
    if not folder.is_dir():
        raise UserError(f"pretrain.scenes_dir: {folder}: no such folder (generate it first: virtue data synth)")
    train_scenes = load_scenes(folder, "train")
    eval_scenes = load_scenes(folder, "eval")
    if not train_scenes or not eval_scenes:
        raise UserError(f"pretrain.scenes_dir: {folder}: needs scenes in both the train and eval splits")
    return train_scenes, eval_scenes


def _pretrain_sam(
    cfg: ExperimentConfig, root: Path, scenes: tuple[list[SceneImage], list[SceneImage]], stage: Path, log: OnStep
) -> dict:
    """SAM-2: promptable segmentation + appearance heads on the image-side stream, saved in stage/sam2."""
    t0 = time.perf_counter()
    p, size = cfg.pretrain, cfg.model.sam_image_size
    train_scenes, eval_scenes = scenes
    torch.manual_seed(p.seed)
    sam = build_sam(BackboneConfig(preset=_arch(cfg, "sam")), image_size=size, root=root)
    if p.sam.init == "pytorch":
        reset_to_pytorch_init(sam)
    classes = attribute_classes()
    train_seg = segmentation_samples(train_scenes, size, classes)
    eval_seg = segmentation_samples(eval_scenes[: p.sam.eval_scenes], size, classes)
    num_classes = {a: len(classes[a]) for a in ATTRIBUTES}
    metrics = train_segmenter(
        sam, train_seg, eval_seg, num_classes, p.sam, seed=p.seed, box_mask=cfg.model.sam_box_mask, on_step=log
    )
    sam.save_pretrained(stage / "sam2")
    metrics["wall_seconds"] = time.perf_counter() - t0
    return metrics


def _pretrain_vlm(
    cfg: ExperimentConfig, root: Path, scenes: tuple[list[SceneImage], list[SceneImage]], stage: Path, log: OnStep
) -> dict:
    """Qwen2-VL: tokenizer on every text the workspace will feed it, then image-caption alignment; saved
    with the tokenizer and the image processor in stage/qwen2vl."""
    t0 = time.perf_counter()
    p, m = cfg.pretrain, cfg.model
    train_scenes, eval_scenes = scenes
    torch.manual_seed(p.seed + 1)
    vlm_dir = stage / "qwen2vl"
    tokenizer = train_tokenizer(tokenizer_corpus(root, cfg, train_scenes), vlm_dir)
    vlm = build_vlm(BackboneConfig(preset=_arch(cfg, "vlm")), root=root, attention=m.attention)
    params, encode, encode_images = vlm_encoder(
        vlm,
        tokenizer,
        vlm_image_size=m.vlm_image_size,
        sam_image_size=m.sam_image_size,
        seg_tokens=m.seg_tokens,
        num_points=m.num_points,
    )
    held_out = eval_scenes[: p.vlm.eval_images]
    pairs = caption_pairs(train_scenes, p.vlm.captions, p.seed)
    eval_sets = eval_caption_sets(held_out, p.vlm.captions, p.seed + 1)
    vc = vlm.config.vision_config
    grid = m.vlm_image_size // (vc.patch_size * vc.spatial_merge_size)
    classes = attribute_classes()
    metrics = train_aligner(
        params,
        encode,
        encode_images,
        pairs,
        eval_sets,
        p.vlm,
        seed=p.seed,
        dim=vlm.config.text_config.hidden_size,
        cells=image_cells([*train_scenes, *held_out], grid, classes),
        num_classes={a: len(classes[a]) for a in ATTRIBUTES},
        on_step=log,
    )
    vlm.save_pretrained(vlm_dir)
    vlm_image_processor(vlm.config.vision_config, m.vlm_image_size).save_pretrained(vlm_dir)
    metrics["wall_seconds"] = time.perf_counter() - t0
    return metrics


def _publish(cfg: ExperimentConfig, root: Path, out: Path, stage: Path, metrics: dict) -> None:
    """Write config and metrics into the staging folder, then replace the previous outputs with it."""
    write_resolved(cfg, stage)
    write_json(stage / "metrics.json", metrics)
    # Replace the previous outputs only once everything is written.
    targets = {
        "sam2": in_workspace(cfg.model.sam.path, root),
        "qwen2vl": in_workspace(cfg.model.vlm.path, root),
        "config.yaml": out / "config.yaml",
        "metrics.json": out / "metrics.json",
    }
    for name, target in targets.items():
        if target.is_dir():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        (stage / name).replace(target)
    shutil.rmtree(stage, ignore_errors=True)


def pretrain(cfg: ExperimentConfig, *, tracker: Tracker | None = None, root: Path | None = None) -> Path:
    """Train both backbones into model.sam.path and model.vlm.path (metrics and config into
    pretrain.output_dir); returns pretrain.output_dir. Same config and seed -> same weights."""
    root = root or workspace_root()
    p = cfg.pretrain
    out = in_workspace(p.output_dir, root)
    start = time.perf_counter()
    scenes = _scenes(root, p.scenes_dir)
    metrics: dict = {"scenes": {"train": len(scenes[0]), "eval": len(scenes[1])}}
    stage = out / ".staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    metrics["sam2"] = _pretrain_sam(cfg, root, scenes, stage, lambda s, v: _log(tracker, s, v))
    metrics["qwen2vl"] = _pretrain_vlm(cfg, root, scenes, stage, lambda s, v: _log(tracker, p.sam.steps + s, v))
    metrics["wall_seconds"] = time.perf_counter() - start
    _publish(cfg, root, out, stage, metrics)
    if tracker is not None:
        tracker.log_metrics(_flat_numbers(metrics), p.sam.steps + p.vlm.steps)
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
    run_dir = in_workspace(cfg.pretrain.output_dir, root)
    opened = open_tracker(cfg, run_dir, run_name=f"{cfg.name}-pretrain", tags={"stage": "pretrain"})
    with tracked_run(opened) as tracker:
        out = pretrain(cfg, tracker=tracker, root=root)
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
