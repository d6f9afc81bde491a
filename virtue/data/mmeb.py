"""Readers for MMEB (V1 release or MMEB-synth, same schema) -> TrainPair / EvalQuery, and the task table.

Eval rows: qry_inst, qry_text, qry_img_path, tgt_inst, tgt_text (list), tgt_img_path (list); candidate 0 is
the answer. Train rows: qry, qry_image_path, pos_text, pos_image_path (+ optional neg_text, neg_image_path).
A task is either <split>/<task>.parquet or <split>/<task>/*.parquet (the release's per-task folders); the
split folder may be left out. MMEB rows have no user prompt: Side.prompt is None (the N-point grid)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UserError
from .types import EvalQuery, Side, TrainPair
from .validate import Images, ReadLog, RowError, check_candidates, read_rows, string_list, strip_placeholder

TRAIN_COLUMNS = ("qry", "qry_image_path", "pos_text", "pos_image_path")
EVAL_COLUMNS = ("qry_inst", "qry_text", "qry_img_path", "tgt_inst", "tgt_text", "tgt_img_path")

# The 36 image tasks of MMEB V1: meta-task and whether MMEB-train has them (IND) or not (OOD).
_REAL = {
    "cls": (
        "ImageNet-1K N24News HatefulMemes VOC2007 SUN397",
        "Place365 ImageNet-A ImageNet-R ObjectNet Country211",
    ),
    "vqa": ("OK-VQA A-OKVQA DocVQA InfographicsVQA ChartQA Visual7W", "ScienceQA VizWiz GQA TextVQA"),
    "ret": (
        "VisDial CIRR VisualNews_t2i VisualNews_i2t MSCOCO_t2i MSCOCO_i2t NIGHTS WebQA",
        "OVEN FashionIQ EDIS Wiki-SS-NQ",
    ),
    "grd": ("MSCOCO", "Visual7W-Pointing RefCOCO RefCOCO-Matching"),
}
REAL_TASKS: dict[str, dict[str, str]] = {
    t: {"meta_task": meta, "split": split}
    for meta, (ind, ood) in _REAL.items()
    for split, names in (("IND", ind), ("OOD", ood))
    for t in names.split()
}


def task_files(folder: str | os.PathLike, split: str) -> dict[str, list[Path]]:
    """{task: parquet files} of a split ("train" | "eval")."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such data folder")
    root = folder / split if (folder / split).is_dir() else folder
    found: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*.parquet")):
        if p.name.startswith("scenes_"):
            continue
        task = p.stem if p.parent == root else p.relative_to(root).parts[0]
        found.setdefault(task, []).append(p)
    if not found:
        raise UserError(f"{root}: no MMEB {split} parquet files (<task>.parquet or <task>/*.parquet)")
    return found


def _join(inst: str | None, text: str | None) -> str:
    """Instruction + content, without the image placeholder; the release often repeats the instruction."""
    inst, text = strip_placeholder(inst), strip_placeholder(text)
    if not inst or text.startswith(inst):
        return text
    return f"{inst} {text}".strip()


def read_mmeb_train(
    folder: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    skip_invalid: bool = False,
    report: ReadLog | None = None,
) -> list[TrainPair]:
    """Every train row of every task; source = task."""
    images = Images(Path(image_root) if image_root is not None else Path(folder), decode=report is not None)
    out: list[TrainPair] = []
    for task, paths in task_files(folder, "train").items():
        for path in paths:

            def build(i: int, row: dict, task=task) -> TrainPair:
                q_img = images.resolve(row["qry_image_path"])[0] if row.get("qry_image_path") else None
                p_img = images.resolve(row["pos_image_path"])[0] if row.get("pos_image_path") else None
                query = Side(strip_placeholder(row.get("qry")), str(q_img) if q_img else None)
                pos = Side(strip_placeholder(row.get("pos_text")), str(p_img) if p_img else None)
                if not (query.text or query.image) or not (pos.text or pos.image):
                    raise RowError("empty query or positive (no text and no image)")
                negs = ()
                if row.get("neg_text") or row.get("neg_image_path"):
                    n_img = images.resolve(row["neg_image_path"])[0] if row.get("neg_image_path") else None
                    negs = (Side(strip_placeholder(row.get("neg_text")), str(n_img) if n_img else None),)
                return TrainPair(query, pos, negs, task)

            out += read_rows(path, TRAIN_COLUMNS, build, skip_invalid, report)
    return out


def read_mmeb_eval(
    folder: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    skip_invalid: bool = False,
    report: ReadLog | None = None,
) -> list[EvalQuery]:
    """Every eval query of every task; task = task name; candidates in file order (index 0 the answer)."""
    images = Images(Path(image_root) if image_root is not None else Path(folder), decode=report is not None)
    out: list[EvalQuery] = []
    for task, paths in task_files(folder, "eval").items():
        for path in paths:

            def build(i: int, row: dict, task=task, path=path) -> EvalQuery:
                q_img = images.resolve(row["qry_img_path"])[0] if row.get("qry_img_path") else None
                query = Side(_join(row.get("qry_inst"), row.get("qry_text")), str(q_img) if q_img else None)
                if not (query.text or query.image):
                    raise RowError("empty query (no text and no image)")
                texts = row.get("tgt_text")
                imgs = string_list(row.get("tgt_img_path"), "tgt_img_path")
                texts = check_candidates(texts if texts is not None else [""] * len(imgs), imgs)
                if imgs and len(imgs) != len(texts):
                    raise RowError(f"tgt_img_path has {len(imgs)} entries for {len(texts)} candidates")
                cands = []
                for j, t in enumerate(texts):
                    img = images.resolve(imgs[j])[0] if imgs and imgs[j] else None
                    cands.append(Side(_join(row.get("tgt_inst"), t), str(img) if img else None))
                return EvalQuery(query, tuple(cands), task, f"{path.name}:{i}")

            out += read_rows(path, EVAL_COLUMNS, build, skip_invalid, report)
    return out


def mmeb_task_info(folder: str | os.PathLike) -> dict[str, dict[str, str]]:
    """{task: {"meta_task": cls|vqa|ret|grd, "split": IND|OOD}} for every eval task of the folder: from its
    tasks.json (the synthetic set writes one) or the 36 real MMEB tasks."""
    known = dict(REAL_TASKS)
    table = Path(folder) / "tasks.json"
    if table.is_file():
        try:
            extra = json.loads(table.read_text(encoding="utf-8"))
            known |= {t: {"meta_task": v["meta_task"], "split": v["split"]} for t, v in extra.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{table}: not a task table ({{task: {{meta_task, split}}}}): {e}") from e
    out = {}
    for task in task_files(folder, "eval"):
        if task not in known:
            raise UserError(f"{folder}: task {task}: unknown meta-task and split (add it to {table})")
        info = known[task]
        if info["meta_task"] not in ("cls", "vqa", "ret", "grd") or info["split"] not in ("IND", "OOD"):
            raise UserError(f"{table}: task {task}: meta_task must be cls|vqa|ret|grd and split IND|OOD")
        out[task] = info
    return out
