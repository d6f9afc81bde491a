"""Data that used to pass `virtue data check` (or the readers) and then gave wrong numbers or a traceback.
Each case: the readers refuse it with one line naming the file and row, `virtue data check` reports exactly
that line and exits 1, and nothing it did not read is reported as checked."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_readers import INSTR, _write, scar_eval_row

from virtue.data import read_scar_eval
from virtue.errors import UserError


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (40, 30), (90, 20, 30)).save(root / "b.png")
    return root


def eval_row(**kw):
    return scar_eval_row(qry_image_path="b.png", **kw)


def check(cli, folder, images):
    return cli("data", "check", str(folder), "--image-root", str(images), timeout=300)


def test_both_eval_file_names_for_one_subset_is_an_error_naming_both(tmp_path, images, cli):
    data = tmp_path / "scar"
    _write(data / "SCAR_X_val_filtered.parquet", [eval_row()])
    _write(data / "SCaR_eval_X.parquet", [eval_row(), eval_row()])
    with pytest.raises(UserError) as e:
        read_scar_eval(data, image_root=images)
    assert "SCAR_X_val_filtered.parquet" in str(e.value) and "SCaR_eval_X.parquet" in str(e.value)
    r = check(cli, data, images)
    assert r.returncode == 1
    assert "rows, 0 invalid" not in r.stdout  # neither file was read: neither is reported as checked
    assert "two eval files for subset 'X'" in r.stdout


def test_data_check_lists_a_file_no_reader_takes_as_not_read(tmp_path, images, cli):
    data = tmp_path / "scar"
    _write(data / "eval" / "SCaR_eval_X.parquet", [eval_row()])
    _write(data / "eval" / "notes.parquet", [{"a": 1}])
    r = check(cli, data, images)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "eval/SCaR_eval_X.parquet: 1 rows, 0 invalid" in r.stdout
    assert "eval/notes.parquet: not read" in r.stdout and "notes.parquet: 1 rows" not in r.stdout


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        # a list saved as its text: iterated, it became ten candidates of one character each
        ({"tgt_text": json.dumps(["the gt", "other"])}, "tgt_text: expected a list of strings"),
        # a distractor equal to the ground truth ties with it; ties count against the GT: never answerable
        ({"tgt_text": ["the gt", "distractor", "the gt"]}, "candidate 2 is the ground truth again"),
        ({"tgt_text": [7, 3]}, "expected a list of strings, found int"),
        # a malformed compressed RLE (the number never ends) used to escape as an IndexError
        ({"segmentation": json.dumps({"size": [30, 40], "counts": "0`"})}, "segmentation"),
        ({"segmentation": json.dumps({"size": [30, 40], "counts": [-5, 1205]})}, "must not be negative"),
    ],
)
def test_bad_rows_are_named(tmp_path, images, cli, change, needle):
    data = tmp_path / "scar"
    path = data / "SCaR_eval_X.parquet"
    _write(path, [eval_row(**change)])
    with pytest.raises(UserError) as e:
        read_scar_eval(data, image_root=images, prompt="mask" if "segmentation" in change else "box")
    msg = str(e.value)
    assert msg.startswith(f"{path}: row 0: ") and needle in msg and "\n" not in msg
    r = cli("data", "check", str(data), "--image-root", str(images), "--prompt",
                "mask" if "segmentation" in change else "box", timeout=300)  # fmt: skip
    assert r.returncode == 1 and needle in r.stdout, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_an_empty_file_is_an_error_not_nan_metrics(tmp_path, images, cli):
    data = tmp_path / "scar"
    data.mkdir()
    schema = pa.Table.from_pylist([eval_row()]).schema
    pq.write_table(schema.empty_table(), data / "SCaR_eval_X.parquet")
    with pytest.raises(UserError, match="SCaR_eval_X.parquet: the file has no rows"):
        read_scar_eval(data, image_root=images)
    r = check(cli, data, images)
    assert r.returncode == 1 and "the file has no rows" in r.stdout


def test_a_corrupt_parquet_under_data_check_is_reported_not_a_traceback(tmp_path, images, cli):
    data = tmp_path / "scar"
    _write(data / "eval" / "SCaR_eval_X.parquet", [eval_row()])
    (data / "eval" / "SCaR_eval_Y.parquet").write_bytes(b"PAR1 broken PAR1")
    r = check(cli, data, images)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "SCaR_eval_Y.parquet: not a readable parquet file" in r.stdout
    assert "SCaR_eval_X.parquet: 1 rows, 0 invalid" in r.stdout  # the good file is still checked


def test_a_truncated_image_fails_the_check(tmp_path, images, cli):
    arr = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(images / "c.png")
    whole = (images / "c.png").read_bytes()
    (images / "c.png").write_bytes(whole[: len(whole) // 2])  # the header is intact, the pixels are not
    data = tmp_path / "scar"
    _write(data / "SCaR_eval_X.parquet", [scar_eval_row(qry_image_path="c.png")])
    r = check(cli, data, images)
    assert r.returncode == 1 and "row 0: image" in r.stdout and "c.png is unreadable" in r.stdout, r.stdout


def test_a_decompression_bomb_is_one_line(tmp_path, images, cli):
    from virtue.data.images import load_rgb

    Image.new("L", (12000, 9000)).save(images / "huge.png")  # 108 MP: over Pillow's limit of 89 MP
    with pytest.raises(UserError, match="huge.png: cannot read image: too large"):
        load_rgb(images / "huge.png")
    data = tmp_path / "scar"
    _write(data / "SCaR_eval_X.parquet", [scar_eval_row(qry_image_path="huge.png", bbox=[1.0, 1.0, 5.0, 5.0])])
    r = check(cli, data, images)
    assert r.returncode == 1 and "huge.png is too large" in r.stdout and "Traceback" not in r.stderr


def test_sixteen_bit_greyscale_keeps_its_values():
    """PNG keeps 16-bit greyscale as mode I;16; Pillow's convert('RGB') clips it at 255 (all white)."""
    ramp = (np.arange(40 * 30, dtype=np.uint32).reshape(30, 40) * 54).astype(np.uint16)  # 0..64746
    im = Image.fromarray(ramp)
    assert im.mode.startswith("I;16")
    rgb = np.asarray(saved_and_loaded(im))
    assert rgb.shape == (30, 40, 3) and (rgb[..., 0] == (ramp >> 8)).all()
    assert rgb.min() == 0 and 240 < rgb.max() < 255  # not all white


def saved_and_loaded(im: Image.Image):
    import tempfile
    from pathlib import Path

    from virtue.data.images import load_rgb

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "deep.png"
        im.save(path)
        assert Image.open(path).mode.startswith("I")  # stored and read back as 16 bits
        return load_rgb(path)


def test_instruction_rows_still_read(tmp_path, images):
    """The checks above leave good rows alone: a release-style row reads as before."""
    data = tmp_path / "scar"
    _write(data / "SCaR_eval_X.parquet", [eval_row(qry_text=INSTR)])
    [q] = read_scar_eval(data, image_root=images)
    assert len(q.candidates) == 10 and q.candidates[0].text == "the gt"
