"""The evaluation-only studies through their real entry point (`virtue sweep --study FILE`) on micro trained
runs, and the parts whose answer is known: the wrong-object condition's ground truth, the point strategies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from virtue.data.synth.captions import true_for
from virtue.data.synth.stats import _scenes
from virtue.data.synth.vocab import parse_caption
from virtue.evalstudy import prompt_noise as pn


def test_the_other_objects_caption_becomes_the_ground_truth(micro_data):
    rows = pn.read_rows(micro_data["scar"], per_subset=6)
    cond = pn.wrong_object_condition(rows, micro_data["scar"])
    assert cond is not None and cond.queries, "the micro set has object_in_image distractors true for others"
    scenes = _scenes(micro_data["scar"], "eval")
    clean = {r.query.qid: r for r in rows}
    for q in cond.queries:
        row = clean[q.qid.split("|")[0]]
        scene = scenes[row.image_id]
        new_gt, old_gt = parse_caption(q.candidates[0].text), parse_caption(q.candidates[1].text)
        assert old_gt == parse_caption(row.query.candidates[0].text)  # the original answer moved to index 1
        assert q.candidate_kinds[0] == "object_in_image" and set(q.candidates) == set(row.query.candidates)
        x1, y1, x2, y2 = q.query.prompt.box
        prompted = next(o for o in scene.objects if o.bbox == (x1, y1, x2 - x1, y2 - y1))
        assert true_for(new_gt, scene, prompted) and not true_for(old_gt, scene, prompted)
        assert q.query.text.endswith(f"[{int(x1)}, {int(y1)}, {int(x2)}, {int(y2)}]")  # the text states it too
    assert len(cond.queries) + cond.skipped == len(rows)


def test_every_point_strategy_gives_n_points_inside_the_image(micro_data, tmp_path, monkeypatch):
    from faults.conftest import PRESETS

    from virtue.config import load_experiment
    from virtue.data.images import image_size
    from virtue.evalstudy.points import STRATEGIES, PointPicker
    from virtue.models import build_embedder

    cfg = load_experiment("tiny", [*PRESETS, "model.dtype=float32"])
    embedder, processor = build_embedder(cfg.model, for_eval=True)
    picker = PointPicker(embedder.eval(), processor, n=9)
    images = sorted(str(p) for p in (micro_data["scar"] / "images" / "eval").rglob("*.png"))[:4]
    for image in images:
        w, h = image_size(image)
        for strategy in STRATEGIES:
            pts = picker.points(strategy, image)
            if strategy == "grid":
                assert pts is None  # the model's own fallback
                continue
            assert len(pts) == 9, strategy
            assert all(0 <= x <= w and 0 <= y <= h for x, y in pts), strategy
        assert picker.points("random", image) == picker.points("random", image)  # seeded by the image
    # ... by its path in the workspace: a clone elsewhere draws the same points
    root = micro_data["scar"].parent
    clone = tmp_path / "clone" / Path(images[0]).relative_to(root)
    clone.parent.mkdir(parents=True)
    shutil.copy(images[0], clone)
    monkeypatch.setenv("VIRTUE_ROOT", str(root))
    here = picker.points("random", images[0])
    monkeypatch.setenv("VIRTUE_ROOT", str(tmp_path / "clone"))
    assert picker.points("random", str(clone)) == here


def _study(tmp_path: Path, runs: Path, body: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(f"experiment: micro\nruns: {runs}\nqueries_per_subset: 3\nn_boot: 200\n{body}")
    return path


@pytest.mark.slow
def test_prompt_noise_end_to_end(micro_runs, tmp_path, cli):
    study = _study(tmp_path, micro_runs, "kind: eval\nstudy: prompt_noise\nvariants: [virtue, crop, global]\n")
    out = tmp_path / "out"
    r = cli("sweep", "--study", str(study), "--report-dir", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "study.json").read_text())
    names = {c["name"] for c in data["conditions"]}
    assert {"box", "moved 0.5", "shrunk 0.5", "grown 0.5", "mask", "eroded 0.75", "click", "other object"} <= names
    for c in data["conditions"]:
        if c["achieved_iou"] is not None and c["family"] == "box":
            assert abs(c["achieved_iou"] - c["iou"]) < 1e-5
    assert {r["variant"] for r in data["results"]} == {"virtue", "crop", "global"}
    assert not any(r["variant"] == "global" and r["family"] == "click" for r in data["results"])
    for c in data["comparisons"]:
        assert c["low"] <= c["delta"] <= c["high"] and c["verdict"]
    assert set(data["follow"]) == {"virtue", "crop", "global"}
    assert data["metrics"]["virtue.box.p@1"] == pytest.approx(
        next(r["p@1"] for r in data["results"] if r["variant"] == "virtue" and r["condition"] == "box"), abs=1e-4
    )
    assert (out / "study.png").stat().st_size > 1000 and (out / "study.csv").read_text().startswith("variant,")


@pytest.mark.slow
def test_point_sampling_end_to_end(micro_runs, tmp_path, cli):
    study = _study(tmp_path, micro_runs, "kind: eval\nstudy: point_sampling\nvariants: [virtue, global]\n")
    out = tmp_path / "out"
    r = cli("sweep", "--study", str(study), "--report-dir", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "study.json").read_text())
    strategies = {r["strategy"] for r in data["results"] if r["variant"] == "virtue"}
    assert strategies == {"grid", "random", "objectness", "saliency", "proposals"}
    assert {r["eval"] for r in data["results"]} == {"mmeb", "scar_unprompted"}
    grid = [c for c in data["comparisons"] if c["strategy"] == "grid"]
    assert not grid  # the grid is the baseline, not compared with itself
    assert all(np.isfinite(c["delta"]) for c in data["comparisons"])


@pytest.mark.slow
def test_i2i_end_to_end(micro_runs, micro_data, tmp_path, cli):
    study = _study(tmp_path, micro_runs, "kind: eval\nstudy: i2i\nvariants: [virtue, crop, global]\n")
    out = tmp_path / "out"
    r = cli("sweep", "--study", str(study), "--report-dir", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "study.json").read_text())
    assert data["evaluation"] == "i2i" and data["queries"] == 3 and data["candidates"] == 10
    assert {r["variant"] for r in data["results"]} == {"virtue", "crop", "global", "virtue, no box"}
    for r in data["results"]:  # every first choice is the positive or a distractor of a known kind
        shares = [r[f"top1 {k}"] for k in ("gt", "object_in_image", "object_absent", "relation", "scene")]
        assert sum(shares) == pytest.approx(1.0) and r["top1 gt"] == pytest.approx(r["p@1"])
    pairs = {(c["a"], c["b"]) for c in data["comparisons"]}
    assert pairs == {("virtue", "global"), ("virtue", "crop"), ("crop", "global"), ("virtue", "virtue, no box")}
    assert all(c["low"] <= c["delta"] <= c["high"] for c in data["comparisons"])
    assert data["oracles"]["both"] == 100.0 and data["oracles"]["n"] == 4  # the whole file, from `data stats`
    assert (out / "study.png").stat().st_size > 1000 and data["summary"].startswith("Image-to-image search")

    from virtue.report.evalstudies import eval_study_sections  # the page section reads the same file

    ((title, tables),), ((_, png),) = eval_study_sections([(out / "study.json", data)], tmp_path)
    assert "i2i" in title and png == out / "study.png"
    assert tables[0].frame.height == 4 + 3 and len(tables) == 3  # 3 variants and virtue without the box, 3 oracles
    assert {(c["a"], c["b"]) for c in data["other_object"]} == pairs


def test_a_bad_eval_study_file_is_one_line_naming_the_key(tmp_path, cli):
    study = tmp_path / "bad.yaml"
    study.write_text("kind: eval\nstudy: prompt_noise\nvariants: [virtue]\nious: [0.5]\nqueries_per_subsets: 3\n")
    r = cli("sweep", "--study", str(study))
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "bad.yaml" in line and "queries_per_subsets" in line
