"""SCaR-synth: determinism, schema, readers and oracles on a tiny generated set."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from virtue.data.corpus import corpus_texts
from virtue.data.scar import read_scar_eval, read_scar_train
from virtue.data.scenes import read_scenes
from virtue.data.synth.scar import SUBSETS, write_scar
from virtue.data.synth.stats import oracle_stats

SIZES = {"train": 6, "eval": 4}  # as in conftest.py


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, scar_dir):
    write_scar(tmp_path / "a", seed=3, image_size=128, per_subset=SIZES, progress=False)
    assert _digest(tmp_path / "a") == _digest(scar_dir)
    write_scar(tmp_path / "b", seed=4, image_size=128, per_subset=SIZES, progress=False)
    assert _digest(tmp_path / "b") != _digest(scar_dir)


def test_official_schemas_and_file_names(scar_dir):
    for s in SUBSETS:
        train = pq.read_table(scar_dir / "train" / f"SCaR_train_{s}.parquet")
        for c in (
            "qry",
            "qry_image_path",
            "pos_text",
            "pos_image_path",
            "bbox",
            "segmentation",
            "category",
            "image_id",
            "neg_text",
        ):
            assert c in train.column_names
        ev = pq.read_table(scar_dir / "eval" / f"SCaR_eval_{s}.parquet")
        for c in ("qry_text", "qry_image_path", "tgt_text", "bbox"):
            assert c in ev.column_names
        assert all(len(t) == 10 for t in ev.column("tgt_text").to_pylist())
        assert train.num_rows == SIZES["train"] and ev.num_rows == SIZES["eval"]


def test_readers_return_records_with_prompts(scar_dir):
    train = read_scar_train(scar_dir)
    assert len(train) == 5 * SIZES["train"]
    p = train[0]
    assert p.query.text.startswith("Find the caption") and "<|image" not in p.query.text
    assert p.query.text.splitlines()[-1].startswith("Referring object bbox: [")
    assert p.source in SUBSETS and len(p.negatives) == 9 and p.positive.text
    x1, y1, x2, y2 = p.query.prompt.box
    assert p.query.text.endswith(f"[{int(x1)}, {int(y1)}, {int(x2)}, {int(y2)}]")
    with Image.open(p.query.image) as im:
        assert im.size == (128, 128)

    ev = read_scar_eval(scar_dir, prompt="mask")
    assert len(ev) == 5 * SIZES["eval"] and {q.task for q in ev} == set(SUBSETS)
    q = ev[0]
    assert len(q.candidates) == 10 and q.candidate_kinds[0] == "gt"
    assert q.query.prompt.kind == "mask" and q.query.prompt.mask.shape == (128, 128)
    bx1, by1, bx2, by2 = read_scar_eval(scar_dir, prompt="box")[0].query.prompt.box
    ys, xs = np.nonzero(q.query.prompt.mask)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (bx1, by1, bx2, by2)
    pts = read_scar_eval(scar_dir, prompt="points")
    assert pts[0].query.prompt.points == read_scar_eval(scar_dir, prompt="points")[0].query.prompt.points
    x, y = pts[0].query.prompt.points[0]
    assert q.query.prompt.mask[int(y), int(x)]
    assert all(q.query.prompt is None for q in read_scar_eval(scar_dir, prompt="none"))


def test_scenes_and_corpus(scar_dir):
    scenes = read_scenes(scar_dir, "eval")
    assert scenes and all(2 <= len(s.objects) <= 6 for s in scenes)
    s = scenes[0]
    union = np.zeros((128, 128), int)
    for o in s.objects:
        union += o.mask
        x, y, w, h = o.bbox
        assert o.mask[y : y + h, x : x + w].sum() == o.mask.sum()
    assert union.max() == 1  # visible masks never overlap
    texts = corpus_texts(scar_dir)
    assert len(texts) == len(set(texts)) and any(t.startswith("Find the caption") for t in texts)


def test_oracles_split_the_information(scar_dir):
    stats = oracle_stats(scar_dir)
    assert set(stats) == set(SUBSETS)
    for r in stats.values():
        assert r["both"] == 100.0 and r["global"] < 100.0 and r["crop"] < 100.0
