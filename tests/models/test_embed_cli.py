"""`virtue embed` end to end on the preset (random-weight) tiny model."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from virtue.cli.main import main

PRESETS = ["model.vlm.path=null", "model.vlm.preset=qwen2vl-tiny", "model.sam.path=null", "model.sam.preset=sam2-tiny"]


def test_embed_writes_npy_and_parquet_and_ranks_candidates(images, tmp_path, capsys):
    out = tmp_path / "e.npy"
    args = ["--images", images["a"], images["b"], "--box", "10,10,60,50", "--text", "which object"]
    rc = main(["embed", "tiny", *PRESETS, *args, "--candidates", "red circle", "blue square", "--out", str(out)])
    assert rc == 0
    emb = np.load(out)
    assert emb.shape == (2, 160) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert capsys.readouterr().out.count("best:") == 2
    pq_out = tmp_path / "e.parquet"
    rc = main(["embed", "tiny", *PRESETS, "--images", images["a"], "--point", "5,5", "--point", "60,70",
               "--out", str(pq_out)])  # fmt: skip
    assert rc == 0
    table = pq.read_table(pq_out).to_pylist()
    assert table[0]["prompt"] == "points" and len(table[0]["embedding"]) == 160


def test_embed_bad_input_exits_2(images, tmp_path, capsys):
    out = tmp_path / "e.npy"
    assert main(["embed", "tiny", *PRESETS, "--images", images["a"], "--box", "1,2,3", "--out", str(out)]) == 2
    assert "expected 4 comma-separated numbers" in capsys.readouterr().err
    assert main(["embed", "tiny", *PRESETS, "--images", "nope.png", "--out", str(out)]) == 2
    assert main(["embed", "tiny", *PRESETS, "--images", images["a"], "--out", str(tmp_path / "e.csv")]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_embed_without_built_backbones_is_one_line(run_cli, images, tmp_path):
    r = run_cli("embed", "tiny", "model.vlm.path=runs/not-built/qwen2vl", "--images", images["a"],
                "--out", tmp_path / "e.npy")  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such folder" in r.stderr
