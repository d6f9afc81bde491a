"""The real page in headless Chromium: `virtue demo` runs as a subprocess on two micro runs (virtue, global);
a box drawn by mouse drag on the canvas shows, for each variant, the top-10 captions that the engine gives
for that box in Python, and another box updates them. Saves docs/images/demo.png when it passes.

The eval query is chosen with the engine: the first whose ground-truth caption the virtue run ranks in its
top 10 under its true box. The micro runs train 4 steps from random backbones, so they rank about at random:
among SCaR-synth's 197 eval captions a true caption reached the top 10 for 0 to 2 of the 20 queries in trial
runs, too few to count on. The demo is therefore given a gallery file (--gallery) of the 20 true captions and
one distractor of each (39 distinct): about a 1 in 4 chance per query, none of the 20 qualifying with
probability about 0.75^20 (0.3%)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from timelimits import WAIT_S

from virtue.config import load_resolved
from virtue.demo.engine import build_engine
from virtue.demo.gallery import read_gallery
from virtue.io import write_bytes
from virtue.numerics import scores_agree

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "demo.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver; "
        "scripts/browser.sh installs them)",
    ),
]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _wait_until_answering(url: str, proc: subprocess.Popen, log: Path) -> float:
    """Seconds until the page answers; fails with the command's output if it exits first."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < WAIT_S:
        if proc.poll() is not None:
            pytest.fail(f"virtue demo exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"virtue demo did not answer within {WAIT_S} s:\n{log.read_text()[-3000:]}")


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)  # no selenium-manager


def _drag(driver, box: list[float], width: int) -> None:
    """Press at the box's first corner, move, release at the other: CSS pixels of the canvas's content, whose
    centre is where move_to_element_with_offset counts from."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "canvas")
    scale = driver.execute_script("return arguments[0].clientWidth", canvas) / width
    half_w = driver.execute_script("return arguments[0].clientWidth / 2", canvas)
    half_h = driver.execute_script("return arguments[0].clientHeight / 2", canvas)
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    dx, dy = x2 - x1, y2 - y1
    chain = ActionChains(driver).move_to_element_with_offset(canvas, x1 - half_w, y1 - half_h).click_and_hold()
    chain.move_by_offset(dx // 2, dy // 2).move_by_offset(dx - dx // 2, dy - dy // 2).release().perform()


def _shown(driver, answers: int) -> tuple[dict, dict[str, list[tuple[int, float, str, str]]]]:
    """After the page has rendered `answers` answers: (its prompt, {variant label: [(index, score, score as
    shown, caption)]})."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-answers") == str(answers)
    )
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
    from selenium.webdriver.support.ui import Select, WebDriverWait

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

    port = _free_port()
    log = tmp_path / "demo.log"
    cmd = [sys.executable, "-m", "virtue.cli.main", "demo", *(a for r in runs for a in ("--checkpoint", str(r)))]
    cmd += ["--gallery", str(gallery), "--cache-dir", str(cache), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # the threads of this process
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        _wait_until_answering(f"http://127.0.0.1:{port}/", proc, log)
        driver = _chrome()
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            WebDriverWait(driver, WAIT_S).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, "#image-select option")) == len(engine.gallery.images)
            )
            Select(driver.find_element(By.ID, "image-select")).select_by_value(f"e{i}")
            WebDriverWait(driver, WAIT_S).until(
                lambda d: d.find_element(By.ID, "status").get_attribute("data-image") == f"e{i}"
            )
            _drag(driver, first, im.width)
            prompt, columns = _shown(driver, 1)
            assert prompt["box"] == first
            _check_against_engine(columns, engine.answer(f"e{i}", {"kind": "box", "box": first}), engine)
            virtue = columns[engine.models[0].label]
            assert im.queries[j].candidates[0].text in [r[3] for r in virtue]
            time.sleep(0.3)  # SAM-2's mask is drawn once its image has decoded
            screenshot = driver.get_screenshot_as_png()

            _drag(driver, second, im.width)
            prompt, columns = _shown(driver, 2)
            assert prompt["box"] == second
            _check_against_engine(columns, engine.answer(f"e{i}", {"kind": "box", "box": second}), engine)
            assert columns[engine.models[0].label] != virtue  # the list follows the box

            _drag(driver, [5, 5, 5, 5], im.width)  # a click without a drag: an empty box, told in the page
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
    write_bytes(SCREENSHOT, screenshot)
