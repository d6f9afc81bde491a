"""Writing a generated set: PNG bytes fixed by the pixels (fixed compression, no metadata), parquet tables,
and the whole folder built beside its target and renamed into place, so a set is never half-written."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ...errors import UserError


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(rgb))


def write_parquet(path: Path, rows: list[dict]) -> None:
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, compression="zstd", compression_level=3)


class staged_folder:
    """`with staged_folder(target) as tmp:` write into tmp; on success tmp replaces target."""

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        self.tmp = self.target.with_name(f".{self.target.name}.tmp")

    def __enter__(self) -> Path:
        try:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)
        except OSError as e:
            raise UserError(f"{self.target}: cannot write: {e.strerror or e}") from e
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError):  # a full disk or a lost mount while writing: the old set stays as it was
                raise UserError(f"{self.target}: cannot write: {exc.strerror or exc}") from None
            return
        old = self.target.with_name(f".{self.target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        try:
            if self.target.exists():
                os.replace(self.target, old)
            os.replace(self.tmp, self.target)
        except OSError as e:
            raise UserError(f"{self.target}: cannot write: {e.strerror or e}") from None
        shutil.rmtree(old, ignore_errors=True)
