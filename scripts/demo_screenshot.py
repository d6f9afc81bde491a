"""The README's picture of the demo, and its start-up time: starts `virtue demo` on the given runs, opens the
page in headless Chromium, draws the true box of one eval query and saves a screenshot.

  .venv/bin/python scripts/demo_screenshot.py --checkpoint runs/train/tiny-virtue \\
      --checkpoint runs/train/tiny-global --checkpoint runs/train/tiny-crop --out docs/images/demo.png

Run it twice to see both start-up times: the first encodes the gallery, the second reads it from the cache.
Needs Debian's chromium and chromium-driver (scripts/browser.sh installs them)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
from virtue.demo.gallery import read_gallery
from virtue.io import write_bytes

TIMEOUT_S = 900.0  # the first start encodes the whole gallery


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, help="training run folder (repeatable)")
    p.add_argument("--out", type=Path, default=Path("docs/images/demo.png"))
    p.add_argument("--image", type=int, default=0, help="index of the eval image in the page's list")
    p.add_argument("--query", type=int, default=0, help="which of that image's eval queries gives the box")
    args = p.parse_args()
    if not have_chromium():
        print("demo_screenshot: needs /usr/bin/chromium and chromedriver (scripts/browser.sh)", file=sys.stderr)
        return 2
    gallery = read_gallery(load_resolved(Path(args.checkpoint[0]) / "config.yaml"))
    image = gallery.images[args.image]
    box = list(image.queries[args.query].query.prompt.box)

    port = free_port()
    cmd = [sys.executable, "-m", "virtue.cli.main", "demo", "--port", str(port)]
    cmd += [a for c in args.checkpoint for a in ("--checkpoint", c)]
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            try:
                wait_until_answering(f"http://127.0.0.1:{port}/", proc, TIMEOUT_S)
            except RuntimeError as e:
                log.seek(0)
                print(f"demo_screenshot: {e}\n{log.read()[-3000:]}", file=sys.stderr)
                return 1
            started = time.perf_counter() - t0
            driver = chrome()
            try:
                driver.get(f"http://127.0.0.1:{port}/")
                select_image(driver, f"e{args.image}", len(gallery.images), TIMEOUT_S)
                t1 = time.perf_counter()
                drag(driver, box, image.width)
                wait_for_answers(driver, 1, TIMEOUT_S)
                answered = time.perf_counter() - t1
                time.sleep(0.5)  # SAM-2's mask is drawn once its image has decoded
                write_bytes(args.out, driver.get_screenshot_as_png())
            finally:
                driver.quit()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        log.seek(0)
        lines = [x for x in log.read().splitlines() if "gallery" in x or "loaded" in x]
    print("\n".join(lines))
    print(f"page answering {started:.1f} s after the start; a box answered in {answered:.2f} s; saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
