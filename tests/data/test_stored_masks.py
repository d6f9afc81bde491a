"""SCaR segmentations stay encoded in the loaded rows: box prompts never read them, mask prompts decode one
only when its row is used (decoded masks of the ~958k real SCaR-train rows would hold hundreds of GB)."""

from __future__ import annotations

import gc
import json
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from test_readers import _coco_compress, _write, scar_eval_row, scar_train_row

import virtue.data.masks as masks
import virtue.data.validate as validate
from virtue.data import read_scar_eval, read_scar_train
from virtue.data.check import check_folder
from virtue.data.masks import decode_segmentation, encode_rle
from virtue.data.prompts import mask_prompt
from virtue.errors import UserError
from virtue.models.processor import crop_region


def _images(tmp_path, side: int):
    root = tmp_path / "images"
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (side, side), (10, 20, 30)).save(root / "a.png")
    return root


def _square(side: int) -> list[list[float]]:
    lo, hi = side / 4, 3 * side / 4
    return [[lo, lo, hi, lo, hi, hi, lo, hi]]


def _row(side: int, segmentation) -> dict:
    return scar_train_row(qry_image_path="a.png", bbox=[1.0, 1.0, side / 2, side / 2], segmentation=segmentation)


def _arrays(prompt) -> list[str]:
    """Names of the numpy arrays the prompt object holds."""
    return [k for k, v in vars(prompt).items() if isinstance(v, np.ndarray)]


def test_box_prompts_never_decode_or_parse_the_segmentation(tmp_path, monkeypatch):
    images = _images(tmp_path, 40)
    data = tmp_path / "scar"
    path = data / "train" / "A.parquet"
    _write(path, [_row(40, json.dumps(_square(40))), _row(40, "{not json")])
    calls = []
    for module in (masks, validate):
        real = module.decode_segmentation
        monkeypatch.setattr(module, "decode_segmentation", lambda *a, real=real, **k: calls.append(1) or real(*a, **k))
    for prompt in ("box", "none"):
        pairs = read_scar_train(data, prompt=prompt, image_root=images)
        assert len(pairs) == 2 and calls == []  # the unreadable segmentation was never even parsed
    assert pairs[0].query.prompt is None and read_scar_train(data, image_root=images)[1].query.prompt.kind == "box"
    # `virtue data check` still reads every segmentation, and names the file and row of the bad one
    report = check_folder(data, prompt="box", image_root=images)
    assert [e for e in report.errors if "segmentation" in e] == [
        f"{path}: row 1: segmentation: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    ]
    with pytest.raises(UserError, match=r"A\.parquet: row 1: segmentation"):
        read_scar_train(data, prompt="mask", image_root=images)


def test_mask_prompts_keep_the_segmentation_encoded_until_a_row_is_used(tmp_path):
    images = _images(tmp_path, 40)
    data = tmp_path / "scar"
    m = np.zeros((40, 40), bool)
    m[5:30, 8:20] = True
    m[33:36, 2:39] = True
    rle = encode_rle(m)
    stored = {
        "poly": json.dumps(_square(40)),
        "rle": rle,  # a parquet struct column: a dict with a list of run lengths
        "compressed": json.dumps({"size": rle["size"], "counts": _coco_compress(rle["counts"])}),
    }
    for subset, seg in stored.items():
        _write(data / "train" / f"{subset}.parquet", [_row(40, seg)])
    _write(data / "eval" / "SCaR_eval_X.parquet", [scar_eval_row(qry_image_path="a.png", segmentation=json.dumps(rle))])
    pairs = {p.source: p for p in read_scar_train(data, prompt="mask", image_root=images)}
    [query] = read_scar_eval(data, prompt="mask", image_root=images)
    assert sorted(pairs) == sorted(stored)
    for prompt, seg in [*((pairs[s].query.prompt, stored[s]) for s in stored), (query.query.prompt, rle)]:
        assert _arrays(prompt) == []  # loaded: no decoded mask
        eager = mask_prompt(decode_segmentation(seg, 40, 40))
        assert prompt.mask.dtype == bool and np.array_equal(prompt.mask, eager.mask)  # used: the same mask
        assert prompt.key() == eager.key() and prompt == eager  # the feature cache's key is unchanged
        assert crop_region(prompt, 40, 40) == crop_region(eager, 40, 40)
        assert _arrays(prompt) == []  # and after use it is not kept
    # a segmentation that would fail when its row is used fails at loading, naming file and row
    empty = encode_rle(np.zeros((40, 40), bool))
    for seg, what in ((empty, "segmentation: empty mask"), ({"size": [40, 40], "counts": [-5, 1605]}, "negative")):
        _write(data / "train" / "rle.parquet", [_row(40, rle), _row(40, seg)])
        with pytest.raises(UserError, match=rf"rle\.parquet: row 1: .*{what}"):
            read_scar_train(data, prompt="mask", image_root=images)


def _held_bytes(tmp_path, side: int, segmentation, rows: int = 40) -> int:
    """Python memory still held after loading `rows` mask-prompt rows on a side x side image."""
    images = _images(tmp_path / str(side), side)
    data = tmp_path / str(side) / "scar"
    _write(data / "train" / "A.parquet", [_row(side, segmentation)] * rows)
    read_scar_train(data, prompt="mask", image_root=images)  # imports and first-call caches, not measured
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pairs = read_scar_train(data, prompt="mask", image_root=images)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(pairs) == rows
    return held


def test_memory_of_mask_rows_does_not_grow_with_the_mask_resolution(tmp_path):
    small = _held_bytes(tmp_path, 32, json.dumps(_square(32)))
    large = _held_bytes(tmp_path, 512, json.dumps(_square(512)))  # 256x the pixels
    assert large < 1.25 * small + 16_000, (small, large)  # decoded masks would add 40 x 262 kB
    # an RLE grows with its runs (about 2 per column of the object), never with the pixel count
    square = np.zeros((512, 512), bool)
    square[128:384, 128:384] = True
    rle = _held_bytes(tmp_path / "rle", 512, json.dumps(encode_rle(square)))
    assert rle < 40 * square.size / 20, rle
