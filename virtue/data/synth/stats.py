"""`virtue data stats`: the two oracles on every subset of a SCaR-synth split, computed from the files
(scene graphs + eval parquet, captions parsed back), so the numbers describe what is on disk."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ...errors import UserError
from ..scar import eval_files, train_files
from ..scenes import read_scenes
from ..validate import read_table
from .oracles import combined_survivors, crop_survivors, global_survivors, score
from .scene import Obj, Scene
from .vocab import Desc, parse_caption

ORACLES = {"global": global_survivors, "crop": crop_survivors, "both": combined_survivors}


def _scenes(folder: Path, split: str) -> dict[int, Scene]:
    out = {}
    for rec in read_scenes(folder, split):
        objs = [Obj(Desc(o.size, o.colour, o.shape), o.region, o.mask, int(o.mask.sum())) for o in rec.objects]
        out[rec.image_id] = Scene(rec.size, rec.scene, rec.horizon, objs)
    return out


def oracle_stats(folder: str | os.PathLike, split: str = "eval") -> dict[str, dict]:
    """{subset: {n, global, crop, both, *_solved, neither_solved, ruled_out: {oracle: {kind: share}}}}:
    scores are expected precision@1 (x100) of an oracle picking uniformly among the candidates it cannot rule out;
    *_solved is the share of queries where only the GT survives."""
    folder = Path(folder)
    scenes = _scenes(folder, split)
    files = eval_files(folder) if split == "eval" else train_files(folder)
    cand_col, kind_col = ("tgt_text", "tgt_kind") if split == "eval" else ("neg_text", "neg_kind")
    out = {}
    for subset, path in files.items():
        acc: dict[str, float] = defaultdict(float)
        ruled: dict[str, dict[str, list[int]]] = {o: defaultdict(lambda: [0, 0]) for o in ORACLES}
        table = read_table(path, ("image_id", cand_col))
        for i, row in enumerate(table):
            texts = row[cand_col] if split == "eval" else [row["pos_text"], *row[cand_col]]
            kinds = row.get(kind_col) or ["?"] * len(texts)
            kinds = kinds if split == "eval" else ["gt", *kinds]
            caps = tuple(parse_caption(t) for t in texts)
            scene = scenes.get(row["image_id"])
            if scene is None or any(c is None for c in caps):
                raise UserError(f"{path}: row {i}: not a SCaR-synth row (unknown image or caption grammar)")
            target = next((o for o in scene.objects if o.desc == caps[0].obj), None)
            if target is None:
                raise UserError(f"{path}: row {i}: the ground truth names no object of image {row['image_id']}")
            solved = {}
            for name, fn in ORACLES.items():
                surv = fn(caps, scene) if name == "global" else fn(caps, scene, target)
                p1, solved[name] = score(surv)
                acc[name] += p1
                acc[f"{name}_solved"] += solved[name]
                for k, s in zip(kinds[1:], surv[1:], strict=True):
                    ruled[name][k][0] += not s
                    ruled[name][k][1] += 1
            acc["neither_solved"] += not (solved["global"] or solved["crop"])
        n = len(table)
        res = {"n": n, **{k: round(100 * v / n, 1) for k, v in sorted(acc.items())}}
        res["ruled_out"] = {o: {k: round(100 * a / b, 1) for k, (a, b) in sorted(d.items())} for o, d in ruled.items()}
        out[subset] = res
    return out


def format_table(stats: dict[str, dict]) -> str:
    head = "| subset | queries | global-only P@1 | crop-only P@1 | both P@1 | global solves | crop solves | neither |"
    lines = [head, "|" + "---|" * 8]
    for s, r in stats.items():
        lines.append(
            f"| {s} | {r['n']} | {r['global']} | {r['crop']} | {r['both']} | {r['global_solved']} | "
            f"{r['crop_solved']} | {r['neither_solved']} |"
        )
    kinds = sorted({k for r in stats.values() for k in r["ruled_out"]["global"]})
    lines += ["", "distractors ruled out (%), global / crop:", "| subset | " + " | ".join(kinds) + " |"]
    lines.append("|" + "---|" * (len(kinds) + 1))
    for s, r in stats.items():
        g, c = r["ruled_out"]["global"], r["ruled_out"]["crop"]
        lines.append(f"| {s} | " + " | ".join(f"{g.get(k, '-')} / {c.get(k, '-')}" for k in kinds) + " |")
    return "\n".join(lines)
