"""The real page in headless Chromium: `virtue demo` runs as a subprocess on two micro runs (virtue, global);
a box drawn by mouse drag on the canvas shows, for each variant, the top-10 captions that the engine gives
for that box in Python, and another box updates them.

The eval query is chosen with the engine: the first whose ground-truth caption the virtue run ranks in its
top 10 under its true box. The micro runs train 4 steps from random backbones, so they rank about at random:
among SCaR-synth's 197 eval captions a true caption reached the top 10 for 0 to 2 of the 20 queries in trial
runs, too few to count on. The demo is therefore given a gallery file (--gallery) of the 20 true captions and
one distractor of each (39 distinct): about a 1 in 4 chance per query, none of the 20 qualifying with
probability about 0.75^20 (0.3%)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from timelimits import WAIT_S

from virtue.config import load_resolved
from virtue.demo.browser import (
    chrome,
    drag,
    free_port,
    have_chromium,
    select_image,
    wait_for_answers,
    wait_until_answering,
)
from virtue.demo.engine import build_engine
from virtue.demo.gallery import read_gallery
from virtue.numerics import scores_agree

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not have_chromium(),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver; "
        "scripts/browser.sh installs them)",
    ),
]


def _wait_until_answering(url: str, proc: subprocess.Popen, log: Path) -> float:
    try:
        return wait_until_answering(url, proc, WAIT_S)
    except RuntimeError as e:
        pytest.fail(f"{e}:\n{log.read_text()[-3000:]}")


def _shown(driver, answers: int) -> tuple[dict, dict[str, list[tuple[int, float, str, str]]]]:
    """After the page has rendered `answers` answers: (its prompt, {variant label: [(index, score, score as
    shown, caption)]})."""
    from selenium.webdriver.common.by import By

    wait_for_answers(driver, answers, WAIT_S)
    prompt = json.loads(driver.find_element(By.ID, "prompt").get_attribute("data-prompt"))
    columns = {}
    for col in driver.find_elements(By.CSS_SELECTOR, "#results .variant"):
        rows = []
        for li in col.find_elements(By.CSS_SELECTOR, "ol.captions li"):
            score = float(li.get_attribute("data-score"))
            shown = li.find_element(By.CLASS_NAME, "score").text
            text = li.find_element(By.CLASS_NAME, "text").text
            rows.append((int(li.get_attribute("data-index")), score, shown, text))
        columns[col.get_attribute("data-label")] = rows
    return prompt, columns


def _check_against_engine(columns: dict, answer: dict, engine) -> None:
    assert list(columns) == [v["label"] for v in answer["variants"]]
    for v in answer["variants"]:
        rows = columns[v["label"]]
        assert [r[0] for r in rows] == [c["index"] for c in v["captions"]]
        assert [r[3] for r in rows] == [c["text"] for c in v["captions"]]
        dtype = next(m.dtype for m in engine.models if m.label == v["label"])
        assert scores_agree(np.array([r[1] for r in rows]), np.array([c["score"] for c in v["captions"]]), dtype)
        assert all(r[2] == f"{r[1]:.4f}" for r in rows)


def test_box_drawn_in_the_browser_shows_the_engines_top10(micro_runs, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    runs = [micro_runs["virtue"], micro_runs["global"]]
    cache = tmp_path / "cache"
    queries = [q for im in read_gallery(load_resolved(runs[0] / "config.yaml")).images for q in im.queries]
    gallery = tmp_path / "gallery.txt"
    gallery.write_text("".join(f"{q.candidates[0].text}\n{q.candidates[1].text}\n" for q in queries))
    engine = build_engine(runs, gallery_file=gallery, cache_dir=cache)
    picked = None
    for i, im in enumerate(engine.gallery.images):
        for j, q in enumerate(im.queries):
            box = list(q.query.prompt.box)
            top = engine.answer(f"e{i}", {"kind": "box", "box": box})["variants"][0]["captions"]
            if picked is None and q.candidates[0].text in [c["text"] for c in top]:
                picked = (i, j)
    assert picked is not None, "no eval query has its true caption in the virtue run's top 10"
    i, j = picked
    im = engine.gallery.images[i]
    first = list(im.queries[j].query.prompt.box)
    second = next((list(q.query.prompt.box) for q in im.queries if list(q.query.prompt.box) != first), None)
    second = second or [0.0, 0.0, float(im.width), float(im.height)]

    port = free_port()
    log = tmp_path / "demo.log"
    cmd = [sys.executable, "-m", "virtue.cli.main", "demo", *(a for r in runs for a in ("--checkpoint", str(r)))]
    cmd += ["--gallery", str(gallery), "--cache-dir", str(cache), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # the threads of this process
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        _wait_until_answering(f"http://127.0.0.1:{port}/", proc, log)
        driver = chrome()
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            select_image(driver, f"e{i}", len(engine.gallery.images), WAIT_S)
            drag(driver, first, im.width)
            prompt, columns = _shown(driver, 1)
            assert prompt["box"] == first
            _check_against_engine(columns, engine.answer(f"e{i}", {"kind": "box", "box": first}), engine)
            virtue = columns[engine.models[0].label]
            assert im.queries[j].candidates[0].text in [r[3] for r in virtue]
            time.sleep(0.3)  # SAM-2's mask is drawn once its image has decoded
            screenshot = driver.get_screenshot_as_png()

            drag(driver, second, im.width)
            prompt, columns = _shown(driver, 2)
            assert prompt["box"] == second
            _check_against_engine(columns, engine.answer(f"e{i}", {"kind": "box", "box": second}), engine)
            assert columns[engine.models[0].label] != virtue  # the list follows the box

            drag(driver, [5, 5, 5, 5], im.width)  # a click without a drag: an empty box, told in the page
            WebDriverWait(driver, WAIT_S).until(lambda d: "empty prompt" in d.find_element(By.ID, "message").text)
        finally:
            driver.quit()
    finally:
        engine.close()
        proc.terminate()
        proc.wait(timeout=WAIT_S)
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert output.count("read from the cache") == 2, output  # the engine above encoded the gallery, once
    assert f"VIRTUE demo: http://127.0.0.1:{port}" in output
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n"  # the README's picture comes from scripts/demo_screenshot.py
