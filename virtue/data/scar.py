"""Readers for SCaR (real release or SCaR-synth, same schema) -> TrainPair / EvalQuery.

Train: one parquet per subset with qry, qry_image_path, pos_text, pos_image_path, bbox [x, y, w, h]
(+ optional segmentation, neg_text, category, image_id). Eval: qry_text, qry_image_path, tgt_text (GT first),
bbox (+ optional tgt_kind, segmentation). Eval files are named SCAR_<subset>_val_filtered.parquet (the
release's loader) or SCaR_eval_<subset>.parquet (its README); both are accepted."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import UserError
from .masks import StoredMaskPrompt, check_segmentation
from .prompts import VisualPrompt, box_prompt, points_prompt, sample_points
from .types import EvalQuery, Side, TrainPair
from .validate import (
    Images,
    ReadLog,
    RowError,
    check_bbox,
    check_candidates,
    check_mask,
    read_rows,
    string_list,
    strip_placeholder,
)

PromptArg = Literal["box", "mask", "points", "none"]
TRAIN_COLUMNS = ("qry", "qry_image_path", "pos_text", "bbox")
EVAL_COLUMNS = ("qry_text", "qry_image_path", "tgt_text", "bbox")
_EVAL_NAME = re.compile(r"^(?:SCAR_(?P<a>.+)_val_filtered|SCaR_eval_(?P<b>.+))\.parquet$")
_TRAIN_NAME = re.compile(r"^(?:SCaR_train_(?P<a>.+)|SCAR_(?P<b>.+)_train(?:_filtered)?|(?P<c>.+))\.parquet$")


def _subset(pattern: re.Pattern, name: str) -> str | None:
    m = pattern.match(name)
    return next((v for v in m.groupdict().values() if v), None) if m else None


def _by_subset(pattern: re.Pattern, files: list[Path], what: str) -> dict[str, Path]:
    """{subset: file}; two files for one subset (say both of the release's names) are an error naming both."""
    found: dict[str, Path] = {}
    for p in files:
        subset = _subset(pattern, p.name)
        if subset is None:
            continue
        if subset in found:
            raise UserError(f"{p.parent}: two {what} files for subset '{subset}': {found[subset].name} and {p.name}")
        found[subset] = p
    return found


def eval_files(folder: str | os.PathLike, split: str = "eval") -> dict[str, Path]:
    """{subset: file} for the eval parquet files in folder/<split> (or folder itself: a flat release folder;
    a validation split, val, is in the eval schema too and must be its own folder)."""
    root = _split_dir(folder, split) if split == "eval" else Path(folder) / split
    if not root.is_dir():
        raise UserError(f"{root}: no such split folder (data.synth.scar_val_per_subset makes one)")
    found = _by_subset(_EVAL_NAME, sorted(root.glob("*.parquet")), "eval")
    if not found:
        raise UserError(
            f"{root}: no SCaR eval files (SCAR_<subset>_val_filtered.parquet or SCaR_eval_<subset>.parquet)"
        )
    return found


def train_files(folder: str | os.PathLike) -> dict[str, Path]:
    root = _split_dir(folder, "train")
    files = [p for p in sorted(root.glob("*.parquet")) if not _EVAL_NAME.match(p.name)]
    found = _by_subset(_TRAIN_NAME, [p for p in files if not p.name.startswith("scenes_")], "train")
    if not found:
        raise UserError(f"{root}: no SCaR train parquet files")
    return found


def _split_dir(folder: str | os.PathLike, split: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such data folder")
    return folder / split if (folder / split).is_dir() else folder


def _image_root(folder: str | os.PathLike, image_root: str | os.PathLike | None) -> Path:
    return Path(image_root) if image_root is not None else Path(folder)


def make_prompt(
    kind: PromptArg, row: dict, size: tuple[int, int], key: str, check: bool = True
) -> tuple[VisualPrompt | None, tuple]:
    """The row's visual prompt in original pixels (+ the box, always checked). Points are one click drawn
    inside the mask (or the box without one) from a generator seeded by the row's id: same row, same click.
    The segmentation is read only where the prompt uses it, or where check=True (evaluation data, `virtue data
    check`) asks that a bad one be reported under any prompt; a mask prompt keeps it encoded (StoredMaskPrompt):
    decoded masks of every row would not fit in memory."""
    box = check_bbox(row.get("bbox"), size)
    seg = row.get("segmentation")
    seg = None if seg in (None, "", []) else seg
    if kind == "points":
        mask = check_mask(seg, size) if seg is not None else None  # decoded for the click, then dropped
        rng = np.random.default_rng(int(hashlib.sha1(key.encode()).hexdigest()[:12], 16))
        return points_prompt(sample_points(mask if mask is not None else box, 1, rng)), box
    if seg is not None and (check or kind == "mask"):
        try:
            check_segmentation(seg, height=size[1], width=size[0])
        except (ValueError, KeyError, TypeError) as e:
            raise RowError(f"segmentation: {e}") from e
    if kind == "none":
        return None, box
    if kind == "box":
        return box_prompt(*box), box
    if kind == "mask":
        if seg is None:
            raise RowError("prompt 'mask' needs a segmentation")
        return StoredMaskPrompt(seg, height=size[1], width=size[0]), box
    raise UserError(f"data.prompt: unknown prompt kind {kind!r} (box, mask, points, none)")


def _query_side(kind: PromptArg, row: dict, text_col: str, images: Images, key: str, check: bool) -> Side:
    path, size = images.resolve(row.get("qry_image_path"))
    prompt, _ = make_prompt(kind, row, size, key, check)
    text = strip_placeholder(row.get(text_col))
    if not text:
        raise RowError(f"empty {text_col}")
    return Side(text=text, image=str(path), prompt=prompt)


def _negatives(row: dict, column: str) -> list[str]:
    """neg_text / neg_kind: one string (the release's train files) or a list of strings."""
    value = row.get(column)
    return [value] if isinstance(value, str) else string_list(value, column)


def read_scar_train(
    folder: str | os.PathLike,
    prompt: PromptArg = "box",
    image_root: str | os.PathLike | None = None,
    skip_invalid: bool = False,
    report: ReadLog | None = None,
) -> list[TrainPair]:
    """Every train row of every subset; source = subset; negatives = neg_text (a string or a list), with
    their kinds from the optional neg_kind column (SCaR-synth writes it; the real release has none). Under
    box or none prompts the segmentation column is not read; with a ReadLog (`virtue data check`) it is checked."""
    images = Images(_image_root(folder, image_root), decode=report is not None)
    out: list[TrainPair] = []
    for subset, path in train_files(folder).items():

        def build(i: int, row: dict, subset=subset, path=path) -> TrainPair:
            query = _query_side(prompt, row, "qry", images, f"{path.name}:{i}", check=report is not None)
            pos_text = strip_placeholder(row.get("pos_text"))
            pos_img = images.resolve(row["pos_image_path"])[0] if row.get("pos_image_path") else None
            if not pos_text and pos_img is None:
                raise RowError("empty positive (pos_text and pos_image_path)")
            texts = _negatives(row, "neg_text")
            kinds = tuple(_negatives(row, "neg_kind"))
            if kinds and len(kinds) != len(texts):
                raise RowError(f"neg_kind has {len(kinds)} entries for {len(texts)} neg_text entries")
            keep = [j for j, t in enumerate(texts) if t]
            negs = tuple(Side(text=strip_placeholder(texts[j])) for j in keep)
            kinds = tuple(kinds[j] for j in keep) if kinds else ()
            return TrainPair(query, Side(pos_text, str(pos_img) if pos_img else None), negs, subset, kinds)

        out += read_rows(path, TRAIN_COLUMNS, build, skip_invalid, report)
    return out


def read_scar_eval(
    folder: str | os.PathLike,
    prompt: PromptArg = "box",
    image_root: str | os.PathLike | None = None,
    skip_invalid: bool = False,
    report: ReadLog | None = None,
    split: str = "eval",
) -> list[EvalQuery]:
    """Every eval query of every subset; task = subset; candidates = tgt_text (index 0 the GT)."""
    images = Images(_image_root(folder, image_root), decode=report is not None)
    out: list[EvalQuery] = []
    for subset, path in eval_files(folder, split).items():

        def build(i: int, row: dict, subset=subset, path=path) -> EvalQuery:
            qid = f"{path.name}:{i}"
            query = _query_side(prompt, row, "qry_text", images, qid, check=True)
            texts = check_candidates(row.get("tgt_text"))
            kinds = tuple(string_list(row.get("tgt_kind"), "tgt_kind"))
            if kinds and len(kinds) != len(texts):
                raise RowError(f"tgt_kind has {len(kinds)} entries for {len(texts)} candidates")
            cands = tuple(Side(text=strip_placeholder(t)) for t in texts)
            return EvalQuery(query, cands, subset, qid, kinds)

        out += read_rows(path, EVAL_COLUMNS, build, skip_invalid, report)
    return out
