"""I2I-synth (visual-interactive image-to-image retrieval): what is on disk has the design's structure. Every
check reads the files back (eval parquet + scene graphs), as `virtue data stats` does: each distractor differs
from the positive in exactly the element its kind names, the positive shows a fact of the boxed object, the
oracles hold half the information each, and the reader refuses bad rows with one line naming file and row."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from virtue.data.i2i import read_i2i_eval
from virtue.data.synth.i2i import TASK, candidate_caption, eval_file, facts, relation, write_i2i
from virtue.data.synth.i2i_oracles import i2i_oracle_stats
from virtue.data.synth.stats import _scenes
from virtue.errors import UserError

N = 8
FIELD = {"object_in_image": "obj", "object_absent": "obj", "relation": "pred", "scene": "scene"}


def rows(folder):
    return pq.read_table(eval_file(folder)).to_pylist()


def boxed(scene, bbox):
    return next(o for o in scene.objects if list(o.bbox) == [int(v) for v in bbox])


def test_each_distractor_differs_from_the_positive_in_exactly_its_element(i2i_dir):
    scenes = _scenes(i2i_dir, "eval")
    table = rows(i2i_dir)
    assert len(table) == N
    for row in table:
        query = scenes[row["qry_image_id"]]
        subject = boxed(query, row["bbox"])
        caps = [candidate_caption(scenes[k]) for k in row["tgt_image_id"]]
        positive = caps[0]
        assert row["tgt_kind"][0] == "gt" and positive in facts(query, subject)  # the same object, relation, scene
        for kind, cap in zip(row["tgt_kind"][1:], caps[1:], strict=True):
            changed = {f for f in ("obj", "pred", "ref", "scene") if getattr(cap, f) != getattr(positive, f)}
            assert changed == {FIELD[kind]}, (kind, cap, positive)
        for k, kind in zip(row["tgt_image_id"][1:], row["tgt_kind"][1:], strict=True):
            cand = scenes[k]
            if kind == "object_in_image":  # another object of the query image, in the same relation there
                other = next(o for o in query.objects if o.desc == cand.objects[0].desc)
                ref = next(o for o in query.objects if o.desc == positive.ref)
                assert other is not subject and relation(query, other, ref) == positive.pred
            if kind.startswith("object"):  # the boxed object's description is nowhere in the image
                assert all(o.desc != subject.desc for o in cand.objects)
        assert {"object_in_image", "relation", "scene"} <= set(row["tgt_kind"])  # every query needs the box


def test_the_oracles_each_hold_half_of_the_information(i2i_dir):
    (stats,) = i2i_oracle_stats(i2i_dir).values()
    assert stats["n"] == N and stats["both"] == 100.0 and stats["both_solved"] == 100.0
    assert stats["global"] <= 50.0 and stats["crop"] < 50.0  # neither the image alone nor the box alone
    assert stats["neither_solved"] == 100.0
    ruled = stats["ruled_out"]
    assert ruled["global"]["object_in_image"] == 0.0  # only the box says which object the query is about
    assert ruled["crop"]["object_absent"] == 100.0 and ruled["crop"]["relation"] == 0.0


def test_data_stats_and_check_read_the_folder(i2i_dir, cli):
    r = cli("data", "stats", str(i2i_dir))
    assert r.returncode == 0, r.stderr
    assert f"| {TASK} | {N} |" in r.stdout
    r = cli("data", "check", str(i2i_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"eval/{TASK}.parquet: {N} rows, 0 invalid" in r.stdout and "image-to-image" in r.stdout


def test_the_reader_gives_box_prompted_queries_and_image_candidates(i2i_dir):
    qs = read_i2i_eval(i2i_dir)
    assert len(qs) == N
    for q, row in zip(qs, rows(i2i_dir), strict=True):
        x, y, w, h = row["bbox"]
        assert q.query.prompt.box == (x, y, x + w, y + h) and q.query.image.endswith(row["qry_img_path"])
        assert len(q.candidates) == 10 and all(c.image for c in q.candidates)
        assert q.candidate_kinds == tuple(row["tgt_kind"])


def test_the_same_seed_writes_the_same_set(i2i_dir, tmp_path):
    write_i2i(tmp_path / "again", seed=3, image_size=128, n_eval=N, progress=False)
    assert rows(tmp_path / "again") == rows(i2i_dir)
    assert (tmp_path / "again" / "images/eval/100.png").read_bytes() == (i2i_dir / "images/eval/100.png").read_bytes()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(tgt_text=r["tgt_text"][:3]), "tgt_text has 3 entries for 10 candidate images"),
        (lambda r: r.update(tgt_kind=r["tgt_kind"][:9]), "tgt_kind has 9 entries for 10 candidates"),
        (lambda r: r.update(tgt_img_path=[*r["tgt_img_path"][:9], "images/eval/missing.png"]), "missing.png"),
        (lambda r: r.update(bbox=[200.0, 10.0, 30.0, 30.0]), "bbox"),
    ],
)
def test_a_bad_row_is_one_line_naming_file_and_row(i2i_dir, tmp_path, cli, change, message):
    bad = tmp_path / "bad"
    shutil.copytree(i2i_dir, bad)
    table = rows(bad)
    change(table[2])
    pq.write_table(pq.read_table(eval_file(bad)).from_pylist(table), eval_file(bad))
    with pytest.raises(UserError) as e:
        read_i2i_eval(bad)
    line = str(e.value)
    assert "\n" not in line and f"{TASK}.parquet: row 2" in line and message in line, line
    r = cli("data", "check", str(bad))
    assert r.returncode == 1 and f"{TASK}.parquet: row 2" in r.stdout and message in r.stdout, r.stdout
    assert f"{N} rows, 1 invalid" in r.stdout
