"""`virtue data preview`: a PNG grid of SCaR queries: the image with the box (red) and the mask (tinted),
under it the ground truth and one distractor of each kind, so a person can check the benchmark by eye."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io import atomic_path
from .scar import read_scar_eval

SCALE = 3
LINE = 12


def _tile(q_box, q_mask, font) -> Image.Image:
    img = Image.open(q_box.query.image).convert("RGB")
    w, h = img.size
    rgb = np.asarray(img, np.float32)
    if q_mask is not None and q_mask.query.prompt is not None:
        m = q_mask.query.prompt.mask[..., None]
        rgb = np.where(m, 0.55 * rgb + 0.45 * np.array([255, 255, 255], np.float32), rgb)
    big = Image.fromarray(rgb.astype(np.uint8)).resize((w * SCALE, h * SCALE), Image.NEAREST)
    x1, y1, x2, y2 = (v * SCALE for v in q_box.query.prompt.box)
    ImageDraw.Draw(big).rectangle((x1, y1, x2 - 1, y2 - 1), outline=(255, 0, 0), width=2)
    kinds = q_box.candidate_kinds or ("gt",) + ("distractor",) * (len(q_box.candidates) - 1)
    lines = [f"[{q_box.task}] {q_box.qid}"]
    shown = set()
    for kind, cand in zip(kinds, q_box.candidates, strict=False):
        if kind not in shown:
            shown.add(kind)
            lines += textwrap.wrap(f"{'GT' if kind == 'gt' else kind}: {cand.text}", width=w * SCALE // 6)
    tile = Image.new("RGB", (w * SCALE, h * SCALE + LINE * (len(lines) + 1)), (255, 255, 255))
    tile.paste(big, (0, 0))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        draw.text((2, h * SCALE + 2 + i * LINE), line, fill=(0, 0, 0), font=font)
    return tile


def preview(folder: str | os.PathLike, out: str | os.PathLike, n: int = 10, image_root=None, cols: int = 5) -> Path:
    """Draw the first queries of each subset in turn (deterministic) into one PNG."""
    boxes = read_scar_eval(folder, prompt="box", image_root=image_root, skip_invalid=True)
    masks = {q.qid: q for q in read_scar_eval(folder, prompt="mask", image_root=image_root, skip_invalid=True)}
    by_task: dict[str, list] = {}
    for q in boxes:
        by_task.setdefault(q.task, []).append(q)
    picked, i = [], 0
    while len(picked) < n and any(i < len(v) for v in by_task.values()):
        picked += [v[i] for v in by_task.values() if i < len(v)][: n - len(picked)]
        i += 1
    font = ImageFont.load_default()
    tiles = [_tile(q, masks.get(q.qid), font) for q in picked]
    tw, th = max(t.width for t in tiles), max(t.height for t in tiles)
    cols = min(cols, len(tiles))
    grid = Image.new("RGB", (cols * (tw + 4), -(-len(tiles) // cols) * (th + 4)), (200, 200, 200))
    for k, t in enumerate(tiles):
        grid.paste(t, ((k % cols) * (tw + 4), (k // cols) * (th + 4)))
    out = Path(out)
    with atomic_path(out) as tmp:
        grid.save(tmp, format="PNG")
    return out
