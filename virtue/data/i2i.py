"""Reader for visual-interactive image-to-image retrieval (I2I-synth, MMEB's image-to-image schema with a
visual prompt on the query) -> EvalQuery.

Eval rows (eval/<task>.parquet): qry_inst, qry_text, qry_img_path, bbox [x, y, w, h] (+ optional
segmentation), tgt_inst, tgt_text (list, may be null), tgt_img_path (list, candidate 0 the answer), optional
tgt_kind. Every candidate is an image; a row whose candidate lists disagree in length, whose box leaves the
image or whose image is missing is an error naming the file and the row."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from .mmeb import _join
from .scar import PromptArg, make_prompt
from .types import EvalQuery, Side
from .validate import Images, ReadLog, RowError, check_candidates, read_rows, string_list

EVAL_COLUMNS = ("qry_inst", "qry_text", "qry_img_path", "bbox", "tgt_inst", "tgt_img_path")


def i2i_files(folder: str | os.PathLike) -> dict[str, Path]:
    """{task: file} of the eval split (folder/eval/<task>.parquet)."""
    root = Path(folder) / "eval"
    if not root.is_dir():
        raise UserError(f"{root}: no such split folder (`virtue data synth --only i2i` makes one)")
    found = {p.stem: p for p in sorted(root.glob("*.parquet"))}
    if not found:
        raise UserError(f"{root}: no image-to-image eval files (<task>.parquet)")
    return found


def read_i2i_eval(
    folder: str | os.PathLike,
    prompt: PromptArg = "box",
    image_root: str | os.PathLike | None = None,
    skip_invalid: bool = False,
    report: ReadLog | None = None,
) -> list[EvalQuery]:
    """Every query of every task; the query carries its visual prompt, every candidate is an image."""
    images = Images(Path(image_root) if image_root is not None else Path(folder), decode=report is not None)
    out: list[EvalQuery] = []
    for task, path in i2i_files(folder).items():

        def build(i: int, row: dict, task=task, path=path) -> EvalQuery:
            qid = f"{path.name}:{i}"
            q_img, size = images.resolve(row.get("qry_img_path"))
            prompt_, _ = make_prompt(prompt, row, size, qid, check=True)
            query = Side(_join(row.get("qry_inst"), row.get("qry_text")), str(q_img), prompt_)
            paths = string_list(row.get("tgt_img_path"), "tgt_img_path")
            if not paths or not all(paths):
                raise RowError("tgt_img_path: every candidate needs an image")
            texts = row.get("tgt_text")
            texts = check_candidates(texts if texts is not None else [""] * len(paths), paths)
            if len(texts) != len(paths):
                raise RowError(f"tgt_text has {len(texts)} entries for {len(paths)} candidate images")
            kinds = tuple(string_list(row.get("tgt_kind"), "tgt_kind"))
            if kinds and len(kinds) != len(paths):
                raise RowError(f"tgt_kind has {len(kinds)} entries for {len(paths)} candidates")
            inst = row.get("tgt_inst")
            cands = tuple(Side(_join(inst, t), str(images.resolve(p)[0])) for t, p in zip(texts, paths, strict=True))
            return EvalQuery(query, cands, task, qid, kinds)

        out += read_rows(path, EVAL_COLUMNS, build, skip_invalid, report)
    return out
