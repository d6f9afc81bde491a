"""`virtue sweep --study prompt_noise|point_sampling|i2i`: run an evaluation-only study on the main path's trained
runs and write reports/sweeps/<name>.json (the numbers, with a flat `metrics` block for `dvc metrics`),
<name>.csv (for `dvc plots`) and <name>.png."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.prompts import points_prompt
from ..data.types import EvalQuery, Side
from ..errors import UserError
from ..io import write_json, write_text
from ..paths import workspace_root
from . import engine, plots
from .spec import EvalStudySpec


def run_eval_study(spec: EvalStudySpec, out_dir: str | Path = "reports/sweeps") -> Path:
    root = workspace_root()
    out = root / out_dir
    t0 = time.perf_counter()
    torch.manual_seed(spec.seed)
    run = {"prompt_noise": _prompt_noise, "point_sampling": _point_sampling, "i2i": _i2i}[spec.study]
    data = run(spec, root)
    data = {"study": spec.name, "kind": "eval", "evaluation": spec.study, "description": spec.description, **data}
    data["wall_s"] = round(time.perf_counter() - t0, 1)
    path = out / f"{spec.name}.json"
    write_text(out / f"{spec.name}.csv", _csv(data))
    plots.draw(data, out / f"{spec.name}.png")
    write_json(path, data)  # last: the stage's metrics file exists only when everything else does
    return path


def rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _variants(spec: EvalStudySpec, root: Path, names) -> dict[str, engine.LoadedVariant]:
    runs = root / spec.runs
    return {v: engine.load_variant(runs, spec.experiment, v, root) for v in names}


# ------------------------------------------------------------------ prompt_noise


def _prompt_noise(spec: EvalStudySpec, root: Path) -> dict:
    from . import prompt_noise as pn

    variants = _variants(spec, root, spec.variants)
    scar_dir = root / next(iter(variants.values())).cfg.data.scar_dir
    rows = pn.read_rows(scar_dir, spec.queries_per_subset)
    if not rows:
        raise UserError(f"{scar_dir}: no SCaR eval rows with a segmentation: prompt_noise needs masks")
    conds = pn.box_conditions(rows, spec.ious, spec.scale_ious, spec.seed)
    conds += pn.mask_conditions(rows, spec.mask_iou) + pn.click_conditions(rows, spec.seed)
    wrong = pn.wrong_object_condition(rows, scar_dir)
    if wrong is not None:
        conds.append(wrong)
    total = sum(len(c.queries) for c in conds)
    _say(f"{spec.name}: {len(rows)} queries, {len(conds)} conditions, {len(variants)} variants "
         f"({total} prompted queries per variant; global skips the click family, whose text is unchanged)")  # fmt: skip
    outcomes: dict[str, dict[str, engine.Outcomes]] = {}
    for name, v in tqdm(variants.items(), desc=spec.name, unit="variant", file=sys.stderr):
        mine = {c.name: c.queries for c in conds if not (name == "global" and c.family == "click")}
        outcomes[name] = engine.score_conditions(v.encode, mine, batch_size=spec.batch_size, desc=name)
    by_name = {c.name: c for c in conds}
    results, comps = [], []
    for v, outs in outcomes.items():
        for cname, o in outs.items():
            c = by_name[cname]
            results.append({"variant": v, "condition": cname, "family": c.family, "iou": c.iou,
                            "p@1": o.p_at_1(), "n": len(o.hit)})  # fmt: skip
            if cname != c.baseline and cname != "other object":
                comps.append({"variant": v, "condition": cname, "against": c.baseline,
                              **engine.paired(o, outs[c.baseline], n_boot=spec.n_boot, seed=spec.seed)})  # fmt: skip
    for v, outs in outcomes.items():  # the prompt kinds against each other: mask and click against the box
        for kind in ("mask", "click"):
            if kind in outs and "box" in outs:
                pair = engine.paired(outs[kind], outs["box"], n_boot=spec.n_boot, seed=spec.seed)
                comps.append({"variant": v, "condition": kind, "against": "box", **pair})
    between = []
    for cname in by_name:
        for other in ("crop", "global"):
            if "virtue" in outcomes and other in outcomes and cname in outcomes[other] and cname != "other object":
                between.append({"condition": cname, "a": "virtue", "b": other,
                                **engine.paired(outcomes["virtue"][cname], outcomes[other][cname],
                                                n_boot=spec.n_boot, seed=spec.seed)})  # fmt: skip
    follow = {v: _follow(outs["other object"], spec) for v, outs in outcomes.items() if "other object" in outs}
    conditions = [{"name": c.name, "family": c.family, "baseline": c.baseline, "iou": c.iou, "n": len(c.queries),
                   "skipped": c.skipped,
                   "achieved_iou": (sum(c.achieved) / len(c.achieved)) if c.achieved else None}
                  for c in conds]  # fmt: skip
    data = {"runs": {v: rel(x.run_dir, root) for v, x in variants.items()}, "variants": list(variants),
            "queries": len(rows), "conditions": conditions, "results": results, "comparisons": comps,
            "between_variants": between, "follow": follow}  # fmt: skip
    data["metrics"] = {f"{r['variant']}.{r['condition'].replace(' ', '_')}.p@1": round(r["p@1"], 4) for r in results}
    data["summary"] = _noise_summary(data)
    data["intervals"] = (
        "paired over the same queries (bootstrap, stratified by subset); one trained run per variant (the main "
        "path's), so the intervals cover query sampling, not training seeds"
    )
    return data


def _follow(o: engine.Outcomes, spec: EvalStudySpec) -> dict:
    """Under the other object's box: how often the other object's caption ranks first (index 0) against how
    often the original ground truth still does (index 1), paired on the same queries."""
    follows = engine.Outcomes(o.qids, o.tasks, (o.top == 0).astype(float), o.top)
    stays = engine.Outcomes(o.qids, o.tasks, (o.top == 1).astype(float), o.top)
    return {"follows": follows.p_at_1(), "stays": stays.p_at_1(), "n": len(o.hit),
            **engine.paired(follows, stays, n_boot=spec.n_boot, seed=spec.seed)}  # fmt: skip


def _find(items: list[dict], **keys) -> dict | None:
    return next((x for x in items if all(x.get(k) == v for k, v in keys.items())), None)


def _pts(c: dict | None) -> str:
    return "n/a" if c is None else f"{100 * c['delta']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"


def _noise_summary(data: dict) -> str:
    """The paragraph the results page shows: what the numbers say to someone prompting a VIRTUE model."""
    res, comps = data["results"], data["comparisons"]

    def p1(cond: str, v: str = "virtue") -> str:
        r = _find(res, variant=v, condition=cond)
        return "n/a" if r is None else f"{100 * r['p@1']:.1f}"

    def d(cond: str) -> str:
        return _pts(_find(comps, variant="virtue", condition=cond))

    names = [c["name"] for c in data["conditions"]]
    moved = [n for n in names if n.startswith("moved")]
    scaled = [n for n in names if n.startswith(("shrunk", "grown"))]
    morphed = [n for n in names if n.startswith(("eroded", "dilated"))]
    clicks = [n for n in names if n.startswith("click ")]
    kinds = [_find(comps, variant="virtue", condition=k, against="box") for k in ("mask", "click")]
    box_best = all(k is not None and k["verdict"] == "worse" for k in kinds)
    text = (
        f"SCaR-synth P@1 x 100 of virtue with the exact box {p1('box')}, the object's mask {p1('mask')}, one central "
        f"click {p1('click')} (crop {p1('box', 'crop')} / {p1('mask', 'crop')} / {p1('click', 'crop')}, global "
        f"{p1('box', 'global')}). "
        + (
            "A box is the prompt to give this model, which was trained with boxes"
            if box_best
            else "The box is not clearly the best prompt for this model"
        )
        + f" (mask and click against the box: {_pts(kinds[0])} and {_pts(kinds[1])} points). "
        "Off by a known amount (points, 95% interval): "
        + "; ".join(f"box {n} {d(n)}" for n in moved + scaled)
        + "; "
        + "; ".join(f"mask {n} {d(n)}" for n in morphed)
        + "; "
        + "; ".join(f"{n} {d(n)}" for n in clicks)
        + "."
    )
    f = data["follow"].get("virtue")
    if f:
        text += (
            f" Given the box of another object of the image, virtue ranks that object's caption first in "
            f"{100 * f['follows']:.0f}% of the queries and the original object's in {100 * f['stays']:.0f}%: "
            + ("the embedding follows the prompt." if f["low"] > 0 else "it does not reliably follow the prompt.")
            + " (Most candidates then describe the original object, so naming the prompted one is enough: crop,"
            " which sees only the box, does that best.)"
        )
    return text


# ------------------------------------------------------------------ i2i


def _i2i(spec: EvalStudySpec, root: Path) -> dict:
    from .i2i import evaluate

    variants = _variants(spec, root, spec.variants)
    return {"runs": {v: rel(x.run_dir, root) for v, x in variants.items()}, **evaluate(spec, root, variants)}


# ------------------------------------------------------------------ point_sampling


def first_per_task(queries: list[EvalQuery], k: int) -> list[EvalQuery]:
    """The first k queries of each subset / task, in file order."""
    seen: dict[str, int] = {}
    out = []
    for q in queries:
        seen[q.task] = seen.get(q.task, 0) + 1
        if seen[q.task] <= k:
            out.append(q)
    return out


def _with_points(q: EvalQuery, points_for) -> EvalQuery:
    """The query with every unprompted image side (query and candidates) given the strategy's points."""

    def side(s: Side) -> Side:
        if s.image is None or s.prompt is not None:
            return s
        pts = points_for(s.image)
        return s if pts is None else replace(s, prompt=points_prompt(pts))

    return replace(q, query=side(q.query), candidates=tuple(side(c) for c in q.candidates))


def _point_sampling(spec: EvalStudySpec, root: Path) -> dict:
    from ..data import read_mmeb_eval, read_scar_eval
    from .points import PointPicker

    if "virtue" not in spec.variants:
        raise UserError(f"{spec.name}: variants must include virtue (the only variant that reads the points)")
    variants = _variants(spec, root, spec.variants)
    virtue = variants["virtue"]
    d = virtue.cfg.data
    scar = first_per_task(read_scar_eval(root / d.scar_dir, "none"), spec.queries_per_subset)
    evals = {"mmeb": read_mmeb_eval(root / d.mmeb_dir), "scar_unprompted": scar}
    picker = PointPicker(virtue.embedder, virtue.processor, virtue.cfg.model.num_points)
    _say(f"{spec.name}: strategies {', '.join(spec.strategies)} on MMEB-synth ({len(evals['mmeb'])} queries) and "
         f"SCaR-synth without its boxes ({len(scar)} queries); N = {picker.n}")  # fmt: skip
    outcomes: dict[str, dict[str, engine.Outcomes]] = {}
    for strategy in tqdm(spec.strategies, desc=spec.name, unit="strategy", file=sys.stderr):
        cache: dict[str, tuple | None] = {}

        def points_for(image: str, strategy=strategy, cache=cache):
            if image not in cache:
                cache[image] = picker.points(strategy, image)
            return cache[image]

        conds = {f"{e}|{strategy}": [replace(_with_points(q, points_for), qid=f"{q.qid}|{strategy}") for q in qs]
                 for e, qs in evals.items()}  # fmt: skip
        outcomes[f"virtue|{strategy}"] = engine.score_conditions(virtue.encode, conds, batch_size=spec.batch_size,
                                                                 desc=strategy)  # fmt: skip
    for name, v in variants.items():
        if name != "virtue":  # global reads no prompt, crop crops to the points: each once, unprompted
            conds = {f"{e}|none": [replace(q, qid=f"{q.qid}|none") for q in qs] for e, qs in evals.items()}
            outcomes[f"{name}|none"] = engine.score_conditions(v.encode, conds, batch_size=spec.batch_size, desc=name)
    results, comps = [], []
    for key, outs in outcomes.items():
        variant, strategy = key.split("|")
        for ckey, o in outs.items():
            ev = ckey.split("|")[0]
            results.append({"variant": variant, "strategy": strategy, "eval": ev, "p@1": o.p_at_1(), "n": len(o.hit)})
            base = outcomes["virtue|grid"][f"{ev}|grid"] if "virtue|grid" in outcomes else None
            if base is not None and key != "virtue|grid":
                comps.append({"variant": variant, "strategy": strategy, "eval": ev, "against": "virtue, grid",
                              **engine.paired(o, base, n_boot=spec.n_boot, seed=spec.seed)})  # fmt: skip
    data = {"runs": {v: rel(x.run_dir, root) for v, x in variants.items()}, "n_points": picker.n,
            "queries": {e: len(qs) for e, qs in evals.items()}, "results": results, "comparisons": comps,
            "trained_with_alternative": False}  # fmt: skip
    data["metrics"] = {f"{r['variant']}.{r['strategy']}.{r['eval']}.p@1": round(r["p@1"], 4) for r in results}
    data["summary"] = _points_summary(data)
    data["intervals"] = (
        "paired over the same queries (bootstrap, stratified by task / subset); the main path's one trained "
        "virtue run, so the intervals cover query sampling, not training seeds"
    )
    return data


def _points_summary(data: dict) -> str:
    comps = [c for c in data["comparisons"] if c["variant"] == "virtue"]
    if not comps:
        return ""
    parts = []
    for ev, label in (("mmeb", "MMEB-synth"), ("scar_unprompted", "SCaR-synth without boxes")):
        cs = [c for c in comps if c["eval"] == ev]
        if not cs:
            continue
        best = max(cs, key=lambda c: c["delta"])
        better = [c["strategy"] for c in cs if c["verdict"] == "better"]
        worse = [c["strategy"] for c in cs if c["verdict"] == "worse"]
        parts.append(
            f"on {label} the best alternative to the grid is {best['strategy']} "
            f"({100 * best['delta']:+.1f} points, {100 * best['low']:+.1f} to {100 * best['high']:+.1f}); "
            f"better than the grid: {', '.join(better) or 'none'}; worse: {', '.join(worse) or 'none'}"
        )
    return (
        "With no prompt from the user, " + "; ".join(parts) + ". The model was trained with the grid only, "
        "so an alternative has to beat the placement it learned; none was trained with here."
    )


def _csv(data: dict) -> str:
    """One row per result, for `dvc plots show` (templates in dvc.yaml)."""
    rows = data["results"]
    keys = [k for k in rows[0] if k != "n"] + ["n"] if rows else []
    lines = [",".join(keys)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else str(round(r[k], 4) if isinstance(r[k], float) else r[k])
                              for k in keys))  # fmt: skip
    return "\n".join(lines) + "\n"
