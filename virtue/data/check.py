"""`virtue data check`: run the readers over a folder (SCaR or MMEB, real or synthetic) with every row
checked and every image decoded, and report per file read how many rows are valid and why the others are
not. Only what the readers read is reported: a parquet file whose name no reader takes is listed as ignored."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import UserError
from .i2i import read_i2i_eval
from .mmeb import read_mmeb_eval, read_mmeb_train
from .scar import _EVAL_NAME, read_scar_eval, read_scar_train
from .validate import ReadLog

SHOWN = 20  # invalid rows listed in full


@dataclass
class Report:
    folder: Path
    kind: str  # "SCaR" | "MMEB" | "image-to-image"
    log: ReadLog = field(default_factory=ReadLog)
    ignored: list[str] = field(default_factory=list)  # parquet files no reader took

    @property
    def rows(self) -> dict[str, int]:
        return self.log.rows

    @property
    def errors(self) -> list[str]:
        return self.log.errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        lines = [f"{self.kind} folder {self.folder}"]
        for f, n in sorted(self.rows.items()):
            bad = sum(e.startswith(f"{f}: ") for e in self.errors)
            lines.append(f"  {Path(f).relative_to(self.folder)}: {n} rows, {bad} invalid")
        for f in self.ignored:
            lines.append(f"  {Path(f).relative_to(self.folder)}: not read (no reader takes this file name)")
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s); the first {min(SHOWN, len(self.errors))}:")
            lines += [f"  {e}" for e in self.errors[:SHOWN]]
        lines.append("OK" if self.ok else "INVALID (readers fail on these rows unless data.skip_invalid=true)")
        return "\n".join(lines)


def _columns(path: Path) -> list[str]:
    try:
        return pq.read_schema(path).names
    except Exception:  # a damaged file: the readers report it; here it tells nothing about the folder
        return []


def _is_scar(files: list[Path]) -> bool:
    if any(_EVAL_NAME.match(p.name) for p in files):
        return True
    return any("bbox" in _columns(p) for p in files[:1])


def _is_i2i(files: list[Path]) -> bool:
    """Image-to-image rows: a box on the query and a list of candidate images."""
    return any({"bbox", "tgt_img_path"} <= set(_columns(p)) for p in files[:1])


def check_folder(folder: str | os.PathLike, prompt: str = "box", image_root: str | os.PathLike | None = None) -> Report:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such data folder")
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("scenes_"))
    i2i = _is_i2i(files)
    scar = not i2i and _is_scar(files)
    report = Report(folder, "image-to-image" if i2i else "SCaR" if scar else "MMEB")
    flat_eval = bool(files) and "tgt_text" in _columns(files[0])
    has_eval = (folder / "eval").is_dir() or (not (folder / "train").is_dir() and flat_eval)
    has_train = (folder / "train").is_dir() or (not (folder / "eval").is_dir() and not flat_eval)
    readers = []
    if i2i:
        readers.append(lambda **kw: read_i2i_eval(folder, prompt=prompt, **kw))
    elif scar:
        if has_eval or any(_EVAL_NAME.match(p.name) for p in files):
            readers.append(lambda **kw: read_scar_eval(folder, prompt=prompt, **kw))
        if has_train:
            readers.append(lambda **kw: read_scar_train(folder, prompt=prompt, **kw))
        if (folder / "val").is_dir():
            readers.append(lambda **kw: read_scar_eval(folder, prompt=prompt, split="val", **kw))
    else:
        if has_eval:
            readers.append(lambda **kw: read_mmeb_eval(folder, **kw))
        if has_train:
            readers.append(lambda **kw: read_mmeb_train(folder, **kw))
    for read in readers:
        try:
            read(image_root=image_root, skip_invalid=True, report=report.log)
        except UserError as e:
            report.errors.append(str(e))
    seen = set(report.rows) | {e.split(": ", 1)[0] for e in report.errors}
    report.ignored = [str(p) for p in files if str(p) not in seen]
    return report
