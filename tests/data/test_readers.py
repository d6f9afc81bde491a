"""Readers on hand-written parquet files in each real schema, and every validation error path."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from virtue.data import mmeb_task_info, read_mmeb_eval, read_mmeb_train, read_scar_eval, read_scar_train
from virtue.data.check import check_folder
from virtue.data.masks import decode_segmentation, encode_rle
from virtue.data.validate import ReadLog
from virtue.errors import UserError

INSTR = "<|image_1|>\nFind the caption that best describes the object in the bounding box."


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    (root / "coco").mkdir(parents=True)
    Image.new("RGB", (40, 30), (10, 20, 30)).save(root / "coco" / "a.jpg")
    Image.new("RGB", (40, 30), (90, 20, 30)).save(root / "coco" / "b.png")
    (root / "coco" / "broken.jpg").write_text("not an image")
    return root


def scar_train_row(**kw):
    row = {
        "qry": INSTR + "\nReferring object bbox: [1, 2, 11, 22]",
        "qry_image_path": "coco/a.jpg",
        "pos_text": "a man in a red shirt left of a dog in a park",
        "pos_image_path": "",
        "bbox": [1.0, 2.0, 10.0, 20.0],
        "segmentation": json.dumps([[1, 2, 11, 2, 11, 22, 1, 22]]),
        "category": "person",
        "image_id": 7,
        "neg_text": "a dog left of a man in a park",
    }
    return row | kw


def scar_eval_row(**kw):
    row = {
        "qry_text": INSTR + "\nReferring object bbox: [1, 2, 11, 22]",
        "qry_image_path": "coco/b.png",
        "tgt_text": ["the gt"] + [f"distractor {i}" for i in range(9)],
        "bbox": [1.0, 2.0, 10.0, 20.0],
    }
    return row | kw


def test_real_scar_schema_both_eval_names(tmp_path, images):
    data = tmp_path / "scar"
    _write(data / "train" / "RefCOCOg.parquet", [scar_train_row()])
    _write(data / "eval" / "SCAR_RefCOCOg_val_filtered.parquet", [scar_eval_row()])
    _write(data / "eval" / "SCaR_eval_ADE20K.parquet", [scar_eval_row(), scar_eval_row(qry_image_path="coco/a.jpg")])
    train = read_scar_train(data, prompt="mask", image_root=images)
    assert len(train) == 1 and train[0].source == "RefCOCOg"
    p = train[0]
    assert p.query.text.startswith("Find the caption") and p.query.image == str(images / "coco" / "a.jpg")
    assert p.query.prompt.mask.shape == (30, 40) and p.query.prompt.mask[10, 5]
    assert [n.text for n in p.negatives] == ["a dog left of a man in a park"]
    ev = read_scar_eval(data, image_root=images)
    assert sorted({q.task for q in ev}) == ["ADE20K", "RefCOCOg"] and len(ev) == 3
    assert ev[0].query.prompt.box == (1.0, 2.0, 11.0, 22.0) and ev[0].candidates[0].text == "the gt"
    assert ev[0].candidate_kinds == ()
    # the files may also sit directly in the folder
    flat = tmp_path / "flat"
    _write(flat / "SCaR_eval_VG.parquet", [scar_eval_row()])
    assert read_scar_eval(flat, prompt="points", image_root=images)[0].task == "VG"


def test_real_mmeb_schema(tmp_path, images):
    data = tmp_path / "mmeb"
    cls = {
        "qry_inst": "<|image_1|> Represent the given image for classification",
        "qry_text": "<|image_1|> Represent the given image for classification",
        "qry_img_path": "coco/a.jpg",
        "tgt_inst": "",
        "tgt_text": ["cat", "dog", "car"],
        "tgt_img_path": ["", "", ""],
    }
    t2i = {
        "qry_inst": "Find me an everyday image that matches the given caption:",
        "qry_text": "a dog on a sofa",
        "qry_img_path": "",
        "tgt_inst": "<|image_1|> Represent the given image.",
        "tgt_text": ["", ""],
        "tgt_img_path": ["coco/a.jpg", "coco/b.png"],
    }
    _write(data / "eval" / "ImageNet-1K" / "test-00000-of-00001.parquet", [cls])
    _write(data / "eval" / "MSCOCO_t2i" / "test-00000-of-00001.parquet", [t2i])
    _write(
        data / "train" / "ImageNet_1K" / "original.parquet",
        [{"qry": "<|image_1|> Represent", "qry_image_path": "coco/a.jpg", "pos_text": "cat", "pos_image_path": ""}],
    )
    ev = read_mmeb_eval(data, image_root=images)
    by = {q.task: q for q in ev}
    assert by["ImageNet-1K"].query.text == "Represent the given image for classification"
    assert [c.text for c in by["ImageNet-1K"].candidates] == ["cat", "dog", "car"]
    assert by["MSCOCO_t2i"].query.text == "Find me an everyday image that matches the given caption: a dog on a sofa"
    assert by["MSCOCO_t2i"].candidates[1].image == str(images / "coco" / "b.png")
    assert all(q.query.prompt is None for q in ev)
    assert mmeb_task_info(data) == {
        "ImageNet-1K": {"meta_task": "cls", "split": "IND"},
        "MSCOCO_t2i": {"meta_task": "ret", "split": "IND"},
    }
    tr = read_mmeb_train(data, image_root=images)
    assert len(tr) == 1 and tr[0].source == "ImageNet_1K" and tr[0].positive.text == "cat"


BAD_ROWS = [
    ({"qry_image_path": "coco/missing.jpg"}, "does not exist"),
    ({"qry_image_path": "coco/broken.jpg"}, "unreadable"),
    ({"bbox": [30.0, 2.0, 20.0, 5.0]}, "outside the 40x30 image"),
    ({"bbox": [-1.0, 2.0, 5.0, 5.0]}, "outside"),
    ({"bbox": [1.0, 2.0, 0.0, 5.0]}, "degenerate bbox"),
    ({"bbox": [1.0, 2.0, 5.0]}, "bbox must be"),
    ({"tgt_text": []}, "empty candidate list"),
    ({"tgt_text": ["", "a", "b"]}, "ground truth"),
    ({"segmentation": json.dumps(encode_rle(np.ones((20, 40), bool)))}, "mask is 40x20 but the image is 40x30"),
    ({"segmentation": "{not json"}, "segmentation"),
    ({"tgt_kind": ["gt"]}, "tgt_kind has 1 entries"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ROWS)
def test_scar_eval_row_errors_name_file_and_row(tmp_path, images, change, message, caplog):
    data = tmp_path / "scar"
    path = data / "SCaR_eval_X.parquet"
    good = scar_eval_row(segmentation=None, tgt_kind=None)
    _write(path, [good, good | change])
    with pytest.raises(UserError) as e:
        read_scar_eval(data, image_root=images)
    assert str(e.value).startswith(f"{path}: row 1: ") and message in str(e.value)
    assert "\n" not in str(e.value)
    report = ReadLog()
    with caplog.at_level(logging.WARNING, logger="virtue.data"):
        ok = read_scar_eval(data, image_root=images, skip_invalid=True, report=report)
    assert len(ok) == 1 and len(report.errors) == 1 and message in report.errors[0]
    assert report.rows == {str(path): 2}
    assert "skipped 1 invalid row(s) of 2" in caplog.text


def test_scar_train_errors(tmp_path, images):
    data = tmp_path / "scar"
    _write(data / "train" / "A.parquet", [scar_train_row(pos_text="")])
    with pytest.raises(UserError, match=r"A\.parquet: row 0: empty positive"):
        read_scar_train(data, image_root=images)
    _write(data / "train" / "A.parquet", [scar_train_row(segmentation=None)])
    with pytest.raises(UserError, match="row 0: prompt 'mask' needs a segmentation"):
        read_scar_train(data, prompt="mask", image_root=images)
    assert read_scar_train(data, prompt="points", image_root=images)[0].query.prompt.kind == "points"
    _write(data / "train" / "A.parquet", [scar_train_row(neg_text=["x", "y"], neg_kind=["relation"])])
    with pytest.raises(UserError, match=r"A\.parquet: row 0: neg_kind has 1 entries for 2 neg_text entries"):
        read_scar_train(data, image_root=images)


def test_scar_train_negative_kinds_stay_with_their_negatives(tmp_path, images):
    data = tmp_path / "scar"
    row = scar_train_row(
        neg_text=["a cat left of a man", "", "a dog right of a man"], neg_kind=["object", "x", "relation"]
    )
    _write(data / "train" / "A.parquet", [row, scar_train_row(neg_text=["a dog left of a man"])])
    with_kinds, without = read_scar_train(data, image_root=images)
    assert [n.text for n in with_kinds.negatives] == ["a cat left of a man", "a dog right of a man"]
    assert with_kinds.negative_kinds == ("object", "relation")  # the empty negative's kind goes with it
    assert without.negative_kinds == ()


def test_file_level_errors(tmp_path, images):
    data = tmp_path / "scar"
    row = scar_eval_row()
    del row["bbox"]
    _write(data / "SCaR_eval_X.parquet", [row])
    with pytest.raises(UserError, match=r"SCaR_eval_X\.parquet: missing column\(s\) bbox"):
        read_scar_eval(data, image_root=images, skip_invalid=True)
    (data / "SCaR_eval_X.parquet").write_text("garbage")
    with pytest.raises(UserError, match="not a readable parquet file"):
        read_scar_eval(data, image_root=images)
    with pytest.raises(UserError, match="no SCaR eval files"):
        read_scar_eval(tmp_path / "images", image_root=images)
    with pytest.raises(UserError, match="no such data folder"):
        read_scar_eval(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no MMEB eval parquet"):
        read_mmeb_eval(tmp_path / "images")


def test_mmeb_errors(tmp_path, images):
    data = tmp_path / "mmeb"
    row = {
        "qry_inst": "q",
        "qry_text": "q",
        "qry_img_path": "coco/a.jpg",
        "tgt_inst": "",
        "tgt_text": ["", ""],
        "tgt_img_path": ["coco/a.jpg"],
    }
    _write(data / "eval" / "Mine.parquet", [row])
    with pytest.raises(UserError, match=r"Mine\.parquet: row 0: tgt_img_path has 1 entries for 2 candidates"):
        read_mmeb_eval(data, image_root=images)
    _write(data / "eval" / "Mine.parquet", [row | {"tgt_img_path": ["coco/nope.jpg", "coco/a.jpg"]}])
    with pytest.raises(UserError, match="row 0: image .*nope.jpg does not exist"):
        read_mmeb_eval(data, image_root=images)
    _write(data / "eval" / "Mine.parquet", [row | {"tgt_text": [], "tgt_img_path": []}])
    with pytest.raises(UserError, match="row 0: empty candidate list"):
        read_mmeb_eval(data, image_root=images)
    with pytest.raises(UserError, match="task Mine: unknown meta-task"):
        mmeb_task_info(data)
    (data / "tasks.json").write_text(json.dumps({"Mine": {"meta_task": "ret", "split": "OOD"}}))
    assert mmeb_task_info(data) == {"Mine": {"meta_task": "ret", "split": "OOD"}}
    (data / "tasks.json").write_text(json.dumps({"Mine": {"meta_task": "zzz", "split": "OOD"}}))
    with pytest.raises(UserError, match="meta_task must be"):
        mmeb_task_info(data)


def test_check_folder_reports_invalid_rows(tmp_path, images):
    data = tmp_path / "scar"
    _write(data / "eval" / "SCaR_eval_X.parquet", [scar_eval_row(), scar_eval_row(bbox=[0.0, 0.0, 0.0, 1.0])])
    _write(data / "train" / "X.parquet", [scar_train_row()])
    report = check_folder(data, image_root=images)
    assert not report.ok and len(report.errors) == 1 and "row 1: degenerate bbox" in report.errors[0]
    text = report.text()
    assert "eval/SCaR_eval_X.parquet: 2 rows, 1 invalid" in text and "train/X.parquet: 1 rows, 0 invalid" in text


@pytest.mark.parametrize(
    "text", ["<|image_1|>\nWhat?", "<|vision_start|><|image_pad|><|vision_end|>What?", "<image> What?", "What?"]
)
def test_placeholders_are_stripped(text):
    from virtue.data.validate import strip_placeholder

    assert strip_placeholder(text) == "What?"


def _coco_compress(counts: list[int]) -> str:
    """COCO's string encoding of run lengths (written here from its description, for the decoder test)."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((x == 0 and not ch & 0x10) or (x == -1 and ch & 0x10))
            out.append(chr(ch + 48 + (0x20 if more else 0)))
    return "".join(out)


def test_masks_round_trip_all_encodings():
    rng = np.random.default_rng(0)
    m = rng.random((13, 17)) > 0.6
    rle = encode_rle(m)
    assert (decode_segmentation(rle, 13, 17) == m).all()
    assert (decode_segmentation(json.dumps(rle), 13, 17) == m).all()
    compressed = {"size": rle["size"], "counts": _coco_compress(rle["counts"])}
    assert (decode_segmentation(compressed, 13, 17) == m).all()
    poly = decode_segmentation([[2, 2, 10, 2, 10, 8, 2, 8]], 13, 17)
    assert poly[5, 5] and not poly[0, 0]
    with pytest.raises(ValueError, match="image is 17x12"):
        decode_segmentation(rle, 12, 17)
