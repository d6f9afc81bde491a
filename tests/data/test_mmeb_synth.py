"""MMEB-synth: schema, readers, task table, held-out combinations."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from virtue.data import mmeb_task_info, read_mmeb_eval, read_mmeb_train, read_scenes
from virtue.data.mmeb import EVAL_COLUMNS, REAL_TASKS, TRAIN_COLUMNS
from virtue.data.synth.mmeb import TASKS
from virtue.data.synth.vocab import HELD_OUT, parse_caption


def test_every_meta_task_ind_and_ood(mmeb_dir):
    info = mmeb_task_info(mmeb_dir)
    assert set(info) == set(TASKS)
    assert {v["meta_task"] for v in info.values()} == {"cls", "vqa", "ret", "grd"}
    assert {v["split"] for v in info.values()} == {"IND", "OOD"}
    train_tasks = {p.stem for p in (mmeb_dir / "train").glob("*.parquet")}
    assert train_tasks == {t for t, v in info.items() if v["split"] == "IND"}  # OOD tasks have no train split


def test_schemas_and_readers(mmeb_dir):
    for t in TASKS:
        cols = pq.read_schema(mmeb_dir / "eval" / f"{t}.parquet").names
        assert set(EVAL_COLUMNS) <= set(cols)
    assert set(TRAIN_COLUMNS) <= set(pq.read_schema(mmeb_dir / "train" / "scene-cls.parquet").names)
    ev = read_mmeb_eval(mmeb_dir)
    assert len(ev) == 4 * len(TASKS)
    assert all(q.query.prompt is None and "<|image" not in q.query.text for q in ev)
    by_task = {q.task: q for q in ev}
    assert len(by_task["scene-cls"].candidates) == 16 and by_task["scene-cls"].query.image
    t2i = by_task["caption-t2i"]
    assert t2i.query.image is None and all(c.image for c in t2i.candidates) and len(t2i.candidates) == 10
    assert len({c.image for c in t2i.candidates}) == 10
    tr = read_mmeb_train(mmeb_dir)
    assert len(tr) == 3 * 5 and all(p.positive.text or p.positive.image for p in tr)


def test_held_out_combinations_only_in_ood(mmeb_dir, scar_dir):
    """No training image and no SCaR-synth caption holds a held-out (colour, shape) combination."""
    ev = read_mmeb_eval(mmeb_dir)
    shape_q = [q for q in ev if q.task == "shape-vqa"]
    for q in shape_q:
        colour = q.query.text.split("What shape is the ")[1].split()[0]
        assert (colour, q.candidates[0].text) in HELD_OUT
    for split in ("train", "eval"):
        for s in read_scenes(scar_dir, split):
            assert all((o.colour, o.shape) not in HELD_OUT for o in s.objects)
    for row in pq.read_table(scar_dir / "train" / "SCaR_train_mixed.parquet").to_pylist():
        for text in [row["pos_text"], *row["neg_text"]]:
            cap = parse_caption(text)
            assert (cap.obj.colour, cap.obj.shape) not in HELD_OUT


def test_task_info_knows_the_real_tasks(tmp_path):
    assert len(REAL_TASKS) == 36
    assert sum(v["split"] == "IND" for v in REAL_TASKS.values()) == 20
    counts = {m: sum(v["meta_task"] == m for v in REAL_TASKS.values()) for m in ("cls", "vqa", "ret", "grd")}
    assert counts == {"cls": 10, "vqa": 10, "ret": 12, "grd": 4}
    assert json.dumps(REAL_TASKS["RefCOCO"]) == '{"meta_task": "grd", "split": "OOD"}'
