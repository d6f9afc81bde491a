"""The paper's published tables (precision@1 x 100 on the REAL benchmarks), typed in as data.
Source: VIRTUE, arXiv 2510.00523, as transcribed in docs/virtue-reference.md section 4 (MMEB after
MMEB-train fine-tuning; SCaR eval set). They are never compared cell by cell with our synthetic results."""

from __future__ import annotations

SOURCE = "VIRTUE (arXiv 2510.00523), tables of MMEB and SCaR results; transcribed in virtue-reference.md section 4"

MMEB_COLUMNS = ("Cls", "VQA", "Ret", "Grd", "IND", "OOD", "Overall")
MMEB_ROWS: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("VLM2Vec-2B", (58.7, 49.3, 65.0, 72.9, 64.9, 53.3, 59.7)),
    ("VLM2Vec-7B", (62.7, 56.9, 69.4, 82.2, 71.4, 58.1, 65.5)),
    ("UniME-7B", (60.6, 52.9, 67.9, 85.1, 68.4, 57.9, 66.6)),
    ("MMRet-7B", (56.0, 57.4, 69.9, 83.6, 68.0, 59.1, 64.1)),
    ("VIRTUE-2B", (64.1, 55.7, 68.4, 78.7, 69.7, 58.8, 64.8)),
    ("VIRTUE-7B", (65.6, 60.4, 71.8, 87.3, 74.4, 61.4, 68.6)),
)

SCAR_COLUMNS = ("RefCOCO+", "RefCOCOg", "VG", "COCO-Stuff", "ADE20K", "Overall")
SCAR_ROWS: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("VLM2Vec-2B", (24.5, 29.5, 22.3, 19.4, 24.6, 24.1)),
    ("VLM2Vec-2B +Cropping", (22.3, 25.8, 17.1, 19.5, 22.5, 21.4)),
    ("VLM2Vec-2B +SCaR-train", (59.8, 55.5, 34.1, 40.8, 43.2, 46.7)),
    ("VIRTUE-2B", (28.8, 42.4, 24.4, 29.9, 27.5, 30.4)),
    ("VIRTUE-2B +Cropping", (24.4, 36.3, 14.2, 25.8, 23.4, 24.8)),
    ("VIRTUE-2B +SCaR-train", (64.2, 65.3, 41.4, 54.2, 56.0, 56.2)),
    ("UniME-7B +SCaR-train", (57.8, 59.3, 44.5, 41.9, 43.6, 49.4)),
    ("VIRTUE-7B", (33.0, 35.3, 19.6, 27.1, 23.8, 27.8)),
    ("VIRTUE-7B +SCaR-train", (63.2, 66.1, 48.2, 52.2, 54.9, 56.9)),
)
