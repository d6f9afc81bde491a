"""Every text of a set (queries, instructions, candidates), for training the tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import UserError
from .validate import strip_placeholder

TEXT_COLUMNS = ("qry", "qry_text", "qry_inst", "pos_text", "neg_text", "tgt_text", "tgt_inst")


def corpus_texts(folder: str | os.PathLike) -> list[str]:
    """Distinct non-empty texts of every parquet under folder, in a fixed order (file name, row, column)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("scenes_"))
    if not files:
        raise UserError(f"{folder}: no parquet files to read texts from")
    seen: set[str] = set()
    out: list[str] = []
    for path in files:
        schema = pq.read_schema(path)
        cols = [c for c in TEXT_COLUMNS if c in schema.names]
        for row in pq.read_table(path, columns=cols).to_pylist():
            for c in cols:
                values = row[c] if isinstance(row[c], list) else [row[c]]
                for v in values:
                    t = strip_placeholder(v)
                    if t and t not in seen:
                        seen.add(t)
                        out.append(t)
    return out
