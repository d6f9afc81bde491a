"""Shareable scores of one evaluation folder (`virtue export`, `virtue eval --export`).

Into the export folder go the VLM2Vec score files, `image/<task>_score.json` for every MMEB task (the layout
MMEB's leaderboard script reads: modality, then task) and `scar/<subset>_score.json` for every SCaR subset,
and `<model>.json`, a leaderboard-style submission: `metadata` (from the run's config.yaml and metrics.json)
and `metrics` (the score files by modality, MMEB grouped by meta-task and split, a SCaR section; primary
metric hit@1). Every input is read and checked against the others before anything is written, so a bad
evaluation folder leaves the export folder as it was."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..config import ExperimentConfig, load_resolved
from ..config.model import BackboneConfig
from ..errors import UserError
from ..eval.metrics import VLM2VEC_KS, VLM2VEC_NAMES
from ..eval.mmeb import SPLITS
from ..eval.outputs import safe_name
from ..io import write_json
from ..paths import in_workspace, workspace_root

PRIMARY = "hit@1"
SCORE_KEYS = ("num_queries", *(f"{name}@{k}" for k in VLM2VEC_KS for name in VLM2VEC_NAMES))
MODALITY = "image"  # MMEB's image tasks (all of MMEB-synth's); the leaderboard files them under this modality
CHECKED = ("hit@1", "hit@5")  # in both metrics.json and the score files, computed from the same ranks


@dataclass(frozen=True)
class Exported:
    submission: Path
    score_files: list[Path]


def export_scores(
    eval_dir: str | os.PathLike, out_dir: str | os.PathLike, *, model_name: str | None = None
) -> Exported:
    """Write the score files and the submission of the evaluation in `eval_dir` into `out_dir`."""
    eval_dir, out_dir = Path(eval_dir), Path(out_dir)
    if not eval_dir.is_dir():
        raise UserError(f"{eval_dir}: no such evaluation folder")
    metrics_path = eval_dir / "metrics.json"
    metrics = read_json(metrics_path)
    cfg = read_config(eval_dir / "config.yaml")
    if "scar" not in metrics and "mmeb" not in metrics:
        raise UserError(f"{metrics_path}: neither 'scar' nor 'mmeb' results")
    files: dict[Path, dict] = {}  # destination -> score file content
    sections: dict = {}
    if "mmeb" in metrics:
        tasks = field(metrics, "mmeb", "tasks", path=metrics_path)
        scores = task_scores(eval_dir / "mmeb", tasks, metrics_path, "mmeb.tasks")
        files.update({out_dir / MODALITY / f"{safe_name(t)}_score.json": s for t, s in scores.items()})
        sections[MODALITY] = scores
        sections["mmeb"] = mmeb_section(metrics["mmeb"], metrics_path)
    if "scar" in metrics:
        subsets = field(metrics, "scar", "subsets", path=metrics_path)
        scores = task_scores(eval_dir / "scar", subsets, metrics_path, "scar.subsets")
        files.update({out_dir / "scar" / f"{safe_name(s)}_score.json": v for s, v in scores.items()})
        sections["scar"] = scar_section(metrics["scar"], scores, metrics_path)
    meta = metadata(cfg, metrics, model_name or metrics.get("experiment") or eval_dir.name)
    submission = {"metadata": meta, "primary_metric": PRIMARY, "metrics": sections}
    for path, score in files.items():
        write_json(path, score)
    target = out_dir / f"{safe_name(meta['model_name'])}.json"
    write_json(target, finite(submission))  # last: a submission on disk means its score files are there
    return Exported(target, sorted(files))


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: missing (virtue eval writes it into the evaluation folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read JSON: {e}") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be an object")
    return data


def read_config(path: Path) -> ExperimentConfig:
    if not path.is_file():
        raise UserError(f"{path}: missing (virtue eval writes the resolved config beside metrics.json)")
    return load_resolved(path)


def field(data: dict, *keys: str, path: Path):
    """data[k1][k2]...; a missing key names the file and the dotted key."""
    node = data
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise UserError(f"{path}: no '{'.'.join(keys[: i + 1])}'")
        node = node[key]
    return node


def task_scores(folder: Path, expected: dict, metrics_path: Path, where: str) -> dict[str, dict]:
    """Each task's `<task>_score.json` from `folder`, checked to be a complete VLM2Vec score file of the same
    evaluation as metrics.json (its query count, hit@1 and hit@5)."""
    if not isinstance(expected, dict) or not expected:
        raise UserError(f"{metrics_path}: '{where}' holds no tasks")
    out = {}
    for task, summary in sorted(expected.items()):
        path = folder / f"{safe_name(task)}_score.json"
        score = read_json(path)
        for key in SCORE_KEYS:
            if not isinstance(score.get(key), int | float) or isinstance(score.get(key), bool):
                raise UserError(f"{path}: not a VLM2Vec score file: no number '{key}'")
        n = field(summary, "n", path=metrics_path)
        if score["num_queries"] != n:
            raise UserError(
                f"{path}: {score['num_queries']} queries, but {metrics_path} counts {n} for {where}.{task} "
                "(files of two evaluations?)"
            )
        for key in CHECKED:
            recorded = field(summary, key, path=metrics_path)
            if not math.isclose(score[key], recorded, rel_tol=0, abs_tol=1e-12):
                raise UserError(
                    f"{path}: {key} {score[key]}, but {metrics_path} has {recorded} for {where}.{task} "
                    "(files of two evaluations?)"
                )
        out[task] = {key: score[key] for key in SCORE_KEYS}
    return out


def mmeb_section(mmeb: dict, path: Path) -> dict:
    """Tasks grouped by meta-task and by split (IND/OOD) with their primary metric; the group means are the
    evaluation's own (unweighted over tasks)."""
    tasks = mmeb["tasks"]
    for name in tasks:
        for key in ("meta_task", "split"):
            field(mmeb, "tasks", name, key, path=path)
    meta_tasks = field(mmeb, "meta_tasks", path=path)
    if not isinstance(meta_tasks, dict):
        raise UserError(f"{path}: 'mmeb.meta_tasks' must be an object")

    def task_entry(name: str) -> dict:
        t = tasks[name]
        return {PRIMARY: t[PRIMARY], "meta_task": t["meta_task"], "split": t["split"], "num_queries": t["n"]}

    by_meta = {
        m: {PRIMARY: meta_tasks[m], "tasks": {t: task_entry(t) for t in sorted(tasks) if tasks[t]["meta_task"] == m}}
        for m in meta_tasks
    }
    unknown = sorted({tasks[t]["meta_task"] for t in tasks} - set(by_meta))
    if unknown:
        raise UserError(f"{path}: mmeb.meta_tasks has no mean for meta-task(s) {', '.join(unknown)}")
    splits = {
        s: {PRIMARY: field(mmeb, s, path=path), "tasks": sorted(t for t in tasks if tasks[t]["split"] == s)}
        for s in SPLITS
    }
    overall = {PRIMARY: field(mmeb, "overall", path=path), "tasks": len(tasks), "num_queries": mmeb.get("n")}
    return {"meta_tasks": by_meta, **splits, "overall": overall}


def scar_section(scar: dict, scores: dict[str, dict], path: Path) -> dict:
    """The subsets' score files, the overall means over subsets (the paper's table) and the accuracy per
    distractor kind."""
    overall = field(scar, "overall", path=path)
    return {
        "subsets": scores,
        "overall": {
            **{k: field(overall, k, path=path) for k in ("hit@1", "hit@5", "mrr")},
            "num_queries": overall.get("n"),
        },
        "kinds": scar.get("kinds", {}),
    }


def metadata(cfg: ExperimentConfig, metrics: dict, model_name: str) -> dict:
    notes = ["model_size: null, the parameter count is not recorded by virtue eval"]
    dim, why = embedding_dimension(cfg.model.vlm, workspace_root())
    if dim is None:
        notes.append(f"embedding_dimension: null, {why}")
    return {
        "model_name": model_name,
        "model_backbone": backbone(cfg.model.vlm),
        "sam_backbone": backbone(cfg.model.sam) if cfg.model.variant == "virtue" else None,
        "model_size": None,
        "embedding_dimension": dim,
        "variant": metrics.get("variant", cfg.model.variant),
        "experiment": metrics.get("experiment", cfg.name),
        "checkpoint": metrics.get("checkpoint"),
        "report_generated_date": datetime.now(UTC).isoformat(timespec="seconds"),
        "virtue_lab_version": __version__,
        "data_source": "Self-Reported",
        "notes": notes,
    }


def backbone(b: BackboneConfig) -> str:
    return b.path if b.path is not None else f"preset:{b.preset}"


def embedding_dimension(vlm: BackboneConfig, root: Path) -> tuple[int | None, str]:
    """The embedding's width, the LLM's hidden size: from the preset, or from the config.json of the folder
    (or of a hub id already in the local HF cache: nothing is downloaded). (None, why) where neither says."""
    if vlm.preset is not None:
        from ..models.presets import qwen2vl_config

        return int(qwen2vl_config(vlm.preset).text_config.hidden_size), ""
    local = in_workspace(vlm.path, root)
    if local.is_dir():
        config_json = local / "config.json"
    else:
        import huggingface_hub

        try:
            cached = huggingface_hub.try_to_load_from_cache(vlm.path, "config.json")
        except ValueError:
            cached = None
        if not isinstance(cached, str):
            return None, f"model.vlm.path {vlm.path}: no such folder and no config.json in the local HF cache"
        config_json = Path(cached)
    try:
        config = json.loads(config_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, f"{config_json}: unreadable"
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    size = text.get("hidden_size", config.get("hidden_size"))
    return (size, "") if isinstance(size, int) else (None, f"{config_json}: no hidden_size")


def finite(obj):
    """NaN (a group without tasks) as null: the submission is strict JSON."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
