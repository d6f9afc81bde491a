"""`virtue data check`: run the readers over a folder (SCaR or MMEB, real or synthetic) with every row
checked, and report per file how many rows are valid and why the others are not."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import UserError
from .mmeb import read_mmeb_eval, read_mmeb_train
from .scar import _EVAL_NAME, read_scar_eval, read_scar_train

SHOWN = 20  # invalid rows listed in full


@dataclass
class Report:
    folder: Path
    kind: str  # "SCaR" | "MMEB"
    rows: dict[str, int] = field(default_factory=dict)  # file -> rows
    errors: list[str] = field(default_factory=list)  # one line per invalid row or unreadable file

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        lines = [f"{self.kind} folder {self.folder}"]
        for f, n in sorted(self.rows.items()):
            bad = sum(e.startswith(f"{f}: ") for e in self.errors)
            lines.append(f"  {Path(f).relative_to(self.folder)}: {n} rows, {bad} invalid")
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s); the first {min(SHOWN, len(self.errors))}:")
            lines += [f"  {e}" for e in self.errors[:SHOWN]]
        lines.append("OK" if self.ok else "INVALID (readers fail on these rows unless data.skip_invalid=true)")
        return "\n".join(lines)


def _is_scar(folder: Path) -> bool:
    files = [p for p in folder.rglob("*.parquet") if not p.name.startswith("scenes_")]
    if any(_EVAL_NAME.match(p.name) for p in files):
        return True
    return any("bbox" in pq.read_schema(p).names for p in files[:1])


def check_folder(folder: str | os.PathLike, prompt: str = "box", image_root: str | os.PathLike | None = None) -> Report:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such data folder")
    scar = _is_scar(folder)
    report = Report(folder, "SCaR" if scar else "MMEB")
    for p in sorted(folder.rglob("*.parquet")):
        if not p.name.startswith("scenes_"):
            try:
                report.rows[str(p)] = pq.read_metadata(p).num_rows
            except Exception as e:  # a damaged file is reported, the rest still checked
                report.errors.append(f"{p}: not a readable parquet file ({type(e).__name__})")
    files = [p for p in folder.rglob("*.parquet") if not p.name.startswith("scenes_")]
    flat_eval = bool(files) and "tgt_text" in pq.read_schema(files[0]).names
    has_eval = (folder / "eval").is_dir() or (not (folder / "train").is_dir() and flat_eval)
    has_train = (folder / "train").is_dir() or (not (folder / "eval").is_dir() and not flat_eval)
    readers = []
    if scar:
        if has_eval or any(_EVAL_NAME.match(p.name) for p in files):
            readers.append(lambda **kw: read_scar_eval(folder, prompt=prompt, **kw))
        if has_train:
            readers.append(lambda **kw: read_scar_train(folder, prompt=prompt, **kw))
    else:
        if has_eval:
            readers.append(lambda **kw: read_mmeb_eval(folder, **kw))
        if has_train:
            readers.append(lambda **kw: read_mmeb_train(folder, **kw))
    for read in readers:
        try:
            read(image_root=image_root, skip_invalid=True, report=report.errors)
        except UserError as e:
            report.errors.append(str(e))
    return report
