"""The demo's engine and HTTP routes on two micro runs (virtue, global), without a browser: answers equal the
Python embedder's for the same box, the gallery cache is used the second time, bad input is HTTP 400 with one
line, and the `virtue demo` command refuses bad arguments in one line."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import warnings

import numpy as np
import pytest
import torch
from faults.conftest import PRESETS, user_error  # tests/ is on sys.path (rootdir import mode)
from PIL import Image
from starlette.testclient import TestClient

from virtue.config import load_experiment, load_resolved
from virtue.data.types import Side
from virtue.demo.app import create_app
from virtue.demo.engine import build_engine
from virtue.demo.gallery import IMAGE_INSTRUCTION
from virtue.errors import UserError
from virtue.eval.run import load_weights
from virtue.models import build_embedder
from virtue.numerics import score_tolerance, scores_agree

# The engine builds and evaluates two micro runs first (about 15 s): make test runs this module, a plain pytest not.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(micro_runs, tmp_path_factory):
    cache = tmp_path_factory.mktemp("demo-cache")
    eng = build_engine([micro_runs["virtue"], micro_runs["global"]], cache_dir=cache)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def client(engine):
    return TestClient(create_app(engine))


def python_embedder(run):
    """The run's embedder as `virtue embed` loads it, called directly: sides -> [N, D]."""
    cfg = load_resolved(run / "config.yaml")
    embedder, processor = build_embedder(cfg.model, for_eval=True)
    load_weights(embedder, run, variant=cfg.model.variant)
    embedder.eval()

    def embed(sides: list[Side]) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([embedder(processor(sides[i : i + 32])) for i in range(0, len(sides), 32)]).float()

    return embed, embedder.vlm.visual.get_dtype()


def _same_top(shown: list[dict], ref: torch.Tensor, dtype: torch.dtype) -> None:
    """The engine's top-k are the reference's k best, with the reference's scores, up to rounding: every shown
    score agrees, and nothing left out scores above the k-th by more than rounding can decide."""
    idx = [r["index"] for r in shown]
    assert scores_agree(np.array([r["score"] for r in shown]), ref[idx].numpy(), dtype)
    rest = np.delete(ref.numpy(), idx)
    assert rest.size == 0 or rest.max() <= shown[-1]["score"] + 2 * score_tolerance(dtype)


def test_box_answers_equal_the_python_embedder(engine, micro_runs):
    g = engine.gallery
    picks = [(i, im.queries[0]) for i, im in enumerate(g.images)][:3]
    for variant, run in micro_runs.items():
        embed, dtype = python_embedder(run)
        captions = embed([Side(c) for c in g.captions])  # [N, D]
        images = embed([Side(IMAGE_INSTRUCTION, image=im.path) for im in g.images])  # [M, D]
        for i, q in picks:
            answer = engine.answer(f"e{i}", {"kind": "box", "box": list(q.query.prompt.box)})
            assert answer["text"] == q.query.text  # the very query the eval file holds for this box
            (col,) = [v for v in answer["variants"] if v["variant"] == variant]
            assert len(col["captions"]) == 10 and len(col["images"]) == 10
            query = embed([q.query])[0]
            _same_top(col["captions"], captions @ query, dtype)
            shown_images = [{**r, "index": int(r["id"][1:])} for r in col["images"]]
            _same_top(shown_images, images @ query, dtype)
            if variant == "virtue":  # SAM-2's mask of that box, at the image's size
                png = base64.b64decode(col["mask"].split(",", 1)[1])
                alpha = np.asarray(Image.open(io.BytesIO(png)).getchannel("A"))
                assert alpha.shape == (g.images[i].height, g.images[i].width)
                assert int((alpha > 0).sum()) == col["mask_pixels"]
            else:
                assert col["mask"] is None


def test_points_and_mask_prompts_answer(engine, client):
    im = engine.gallery.images[0]
    points = client.post("/api/query", json={"image": "e0", "prompt": {"kind": "points", "points": [[10, 12], [30, 5]],
                                                                       "labels": [1, 0]}})  # fmt: skip
    assert points.status_code == 200, points.text
    rgba = np.zeros((im.height, im.width, 4), dtype=np.uint8)
    rgba[5:20, 8:30, 3] = 255
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    mask = client.post("/api/query", json={"image": "e0", "prompt": {"kind": "mask", "mask": url}})
    assert mask.status_code == 200, mask.text
    assert mask.json()["prompt"]["region"] == [8, 5, 30, 20]  # the painted mask's bounding box, in the text
    assert "[8, 5, 30, 20]" in mask.json()["text"]


def test_gallery_cache_is_used_the_second_time(engine, micro_runs, tmp_path):
    first = engine.timings["gallery"]
    n_sides = len(engine.gallery.captions) + len(engine.gallery.images)
    assert [row["encoded"] for row in first] == [n_sides, n_sides]
    stamps = {row["cache"]: os.stat(row["cache"]).st_mtime_ns for row in first}
    cache_dir = os.path.dirname(first[0]["cache"])
    again = build_engine([micro_runs["virtue"], micro_runs["global"]], cache_dir=cache_dir)
    try:
        assert [row["encoded"] for row in again.timings["gallery"]] == [0, 0]  # nothing encoded again
        assert {row["cache"]: os.stat(row["cache"]).st_mtime_ns for row in again.timings["gallery"]} == stamps
        for a, b in zip(engine.embeddings, again.embeddings, strict=True):
            assert torch.equal(a.captions, b.captions) and torch.equal(a.images, b.images)
    finally:
        again.close()
    # another gallery is another key; a damaged cache file is encoded again and replaced
    other = tmp_path / "captions.txt"
    other.write_text("a red circle\n\na blue square\na red circle\n")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    third = build_engine([micro_runs["virtue"]], gallery_file=other, cache_dir=damaged)
    third.close()
    assert third.gallery.captions == ("a red circle", "a blue square")
    assert third.timings["gallery"][0]["encoded"] == 2 + len(third.gallery.images)
    path = third.timings["gallery"][0]["cache"]
    assert path not in stamps
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.warns(UserWarning, match="unreadable gallery cache"):
        fourth = build_engine([micro_runs["virtue"]], gallery_file=other, cache_dir=damaged)
    fourth.close()
    assert fourth.timings["gallery"][0]["encoded"] > 0 and torch.equal(fourth.embeddings[0].captions,
                                                                         third.embeddings[0].captions)  # fmt: skip


def test_a_bare_weights_file_takes_the_experiments_model(engine, micro_runs, tmp_path):
    """Weights without their run folder: the experiment names the model (and the data), the variant comes from
    --variant or the experiment, and the weights' own record of their variant is still checked."""
    bare = tmp_path / "global.safetensors"
    shutil.copy(micro_runs["global"] / "trainable.safetensors", bare)
    run_cfg = load_resolved(micro_runs["global"] / "config.yaml")
    experiment = load_experiment("tiny", [*PRESETS, "model.dtype=float32", f"data.scar_dir={run_cfg.data.scar_dir}"])
    with pytest.raises(UserError, match="name the EXPERIMENT"):
        build_engine([bare], cache_dir=tmp_path)
    with pytest.raises(UserError, match="trained as model.variant=global, but this model is virtue"):
        build_engine([bare], experiment=experiment, cache_dir=tmp_path)
    alone = build_engine([bare], variants=["global"], experiment=experiment, cache_dir=tmp_path)
    alone.close()
    box = {"kind": "box", "box": list(engine.gallery.images[0].queries[0].query.prompt.box)}
    (mine,) = alone.answer("e0", box)["variants"]
    (theirs,) = [v for v in engine.answer("e0", box)["variants"] if v["variant"] == "global"]
    assert mine["label"] == "global (global)" and mine["captions"] == theirs["captions"]


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _bad(response, *needles: str) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:500])
    error = response.json()["error"]
    assert "\n" not in error and "Traceback" not in error and error.strip() == error
    for needle in needles:
        assert needle in error, (needle, error)
    return error


def test_bad_uploads_and_prompts_are_400_with_one_line(engine, client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        huge = _png((5000, 4000), "L")  # 20 MP of zeros: a small file
    _bad(client.post("/api/upload", content=b"GIF89a but not really an image"), "not an image")
    _bad(client.post("/api/upload", content=b""), "empty")
    _bad(client.post("/api/upload", content=b"\0" * (engine.limits.max_bytes + 1)), "bytes, more than")
    _bad(client.post("/api/upload", content=huge), "5000x4000 pixels, more than")
    _bad(client.post("/api/upload", content=_png((64, 48))[:-40]), "upload:")  # truncated: a good header
    good = client.post("/api/upload", content=_png((64, 48)))
    assert good.status_code == 200 and good.json()["width"] == 64
    uid = good.json()["id"]
    ok = client.post("/api/query", json={"image": uid, "prompt": {"kind": "box", "box": [4, 4, 40, 30]}})
    assert ok.status_code == 200 and [v["variant"] for v in ok.json()["variants"]] == ["virtue", "global"]
    assert client.get(f"/api/image/{uid}").content == _png((64, 48))

    def query(prompt, image=uid):
        return client.post("/api/query", json={"image": image, "prompt": prompt})

    _bad(query({"kind": "box", "box": [4, 4, 65, 30]}), "outside the image", "64x48")
    _bad(query({"kind": "box", "box": [-1, 4, 20, 30]}), "outside the image")
    _bad(query({"kind": "box", "box": [10, 10, 10, 30]}), "empty prompt")
    _bad(query({"kind": "box", "box": [1, 2, 3]}), "expected 4 finite numbers")
    _bad(query(None), "empty prompt")
    _bad(query({"kind": "points", "points": []}), "empty prompt")
    _bad(query({"kind": "points", "points": [[70, 5]]}), "outside the image")
    _bad(query({"kind": "mask", "mask": base64.b64encode(_png((64, 48), "RGBA")).decode()}), "empty prompt")
    _bad(query({"kind": "mask", "mask": base64.b64encode(_png((32, 32), "RGBA")).decode()}), "32x32", "64x48")
    _bad(query({"kind": "mask", "mask": "not base64!"}), "not a PNG")
    _bad(query({"kind": "lasso"}), "expected box, points or mask")
    _bad(query({"kind": "box", "box": [1, 1, 5, 5]}, image="e999"), "no such image")
    _bad(client.post("/api/query", content=b"{not json"), "not JSON")
    _bad(client.get("/api/image/u123"), "no such image")


def test_demo_command_refuses_bad_arguments_in_one_line(cli, micro_runs, tmp_path):
    user_error(cli("demo", "--checkpoint", tmp_path / "nowhere"), "nowhere", "no such checkpoint")
    runs = [str(micro_runs["virtue"]), str(micro_runs["global"])]
    user_error(cli("demo", "--checkpoint", runs[0], "--checkpoint", runs[1], "--variant", "virtue"), "--variant")
    user_error(cli("demo", "--checkpoint", runs[1], "--variant", "crop", "--port", "0"), "--port 0")
    r = cli("demo", "--checkpoint", runs[1], "--variant", "crop", "--cache-dir", tmp_path / "c", "--port", _free_port())
    user_error(r, "trained as model.variant=global")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        user_error(cli("demo", "--checkpoint", runs[0], "--port", port), f"--port {port}", "cannot listen")
    gallery = tmp_path / "empty.txt"
    gallery.write_text("\n \n")
    r = cli("demo", "--checkpoint", runs[0], "--gallery", gallery, "--cache-dir", tmp_path, "--port", _free_port())
    user_error(r, "empty.txt", "no captions")


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]
