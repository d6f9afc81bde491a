"""The `i2i` study: visual-interactive image-to-image retrieval on I2I-synth, zero-shot, with the main path's
trained runs. The query is an image with a box; the ten candidates are images (the positive shows the boxed
object in the same relation to the same neighbour in the same scene; each distractor changes one of these).

Every variant answers the same queries; the numbers are P@1, where each variant's first choice goes (the
positive or a distractor of each kind), paired differences between the variants, and the oracles of
`virtue data stats` on the same file (what knowing only the image, or only the box, can achieve)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.i2i import read_i2i_eval
from ..data.synth.i2i import eval_file
from ..errors import UserError
from . import engine
from .spec import EvalStudySpec

KINDS = ("gt", "object_in_image", "object_absent", "relation", "scene")
UNPROMPTED = "virtue, no box"  # virtue with the box withheld (its N-point grid; the text still states the box)
PAIRS = (("virtue", "global"), ("virtue", "crop"), ("crop", "global"), ("virtue", UNPROMPTED))


def evaluate(spec: EvalStudySpec, root: Path, variants: dict[str, engine.LoadedVariant]) -> dict:
    from ..data.synth.i2i_oracles import i2i_oracle_stats

    folder = root / next(iter(variants.values())).cfg.data.i2i_dir
    if not eval_file(folder).is_file():
        raise UserError(f"{eval_file(folder)}: no I2I-synth eval file (run `dvc repro synth` or "
                        "`virtue data synth --only i2i`)")  # fmt: skip
    queries = read_i2i_eval(folder, "box")[: spec.queries_per_subset]
    if not queries:
        raise UserError(f"{folder}: no image-to-image eval queries")
    conds = {"box": [replace(q, qid=f"{q.qid}|box") for q in queries]}
    unprompted = [replace(q, query=replace(q.query, prompt=None), qid=f"{q.qid}|none") for q in queries]
    print(f"{spec.name}: {len(queries)} queries x {len(queries[0].candidates)} candidate images, "
          f"variants {', '.join(variants)}", file=sys.stderr, flush=True)  # fmt: skip
    outcomes: dict[str, engine.Outcomes] = {}
    for name, v in tqdm(variants.items(), desc=spec.name, unit="variant", file=sys.stderr):
        mine = {**conds, "none": unprompted} if name == "virtue" else conds
        scored = engine.score_conditions(v.encode, mine, batch_size=spec.batch_size, desc=name)
        outcomes[name] = scored["box"]
        if "none" in scored:
            outcomes[UNPROMPTED] = scored["none"]
    results = []
    for name, o in outcomes.items():
        firsts = [q.candidate_kinds[int(t)] if q.candidate_kinds else "?" for q, t in zip(queries, o.top, strict=True)]
        share = {k: sum(f == k for f in firsts) / len(firsts) for k in KINDS}
        results.append({"variant": name, "p@1": o.p_at_1(), "n": len(o.hit),
                        **{f"top1 {k}": share[k] for k in KINDS}})  # fmt: skip
    comps = [{"a": a, "b": b, **engine.paired(outcomes[a], outcomes[b], n_boot=spec.n_boot, seed=spec.seed)}
             for a, b in PAIRS if a in outcomes and b in outcomes]  # fmt: skip
    other = {name: first_is(o, queries, "object_in_image") for name, o in outcomes.items()}
    steer = []
    for a, b in PAIRS:
        if a in other and b in other:
            c = engine.paired(other[a], other[b], n_boot=spec.n_boot, seed=spec.seed)
            c["verdict"] = {"better": "higher", "worse": "lower"}.get(c["verdict"], c["verdict"])  # a share
            steer.append({"a": a, "b": b, "share_a": other[a].p_at_1(), "share_b": other[b].p_at_1(), **c})
    oracles = next(iter(i2i_oracle_stats(folder).values()))
    data = {"variants": list(variants), "queries": len(queries), "candidates": len(queries[0].candidates),
            "results": results, "comparisons": comps, "other_object": steer, "oracles": oracles}  # fmt: skip
    data["metrics"] = {f"{r['variant']}.p@1": round(r["p@1"], 4) for r in results}
    data["summary"] = summary(data)
    data["intervals"] = (
        "paired over the same queries (bootstrap); one trained run per variant (the main path's), so the "
        "intervals cover query sampling, not training seeds"
    )
    return data


def first_is(o: engine.Outcomes, queries, kind: str) -> engine.Outcomes:
    """Per query, 1.0 where the first choice is a candidate of this kind (for paired shares)."""
    hit = np.array([float(bool(q.candidate_kinds) and q.candidate_kinds[int(t)] == kind)
                    for q, t in zip(queries, o.top, strict=True)])  # fmt: skip
    return engine.Outcomes(o.qids, o.tasks, hit, o.top)


def _find(items: list[dict], **keys) -> dict | None:
    return next((x for x in items if all(x.get(k) == v for k, v in keys.items())), None)


def summary(data: dict) -> str:
    """The results page's paragraph: what the numbers say to someone searching images with a box."""

    def p1(v: str) -> str:
        r = _find(data["results"], variant=v)
        return "n/a" if r is None else f"{100 * r['p@1']:.1f}"

    def d(a: str, b: str) -> str:
        c = _find(data["comparisons"], a=a, b=b)
        if c is None:
            return "n/a"
        return f"{100 * c['delta']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] ({c['verdict']})"

    o = data["oracles"]
    chance = 100 / data["candidates"]
    text = (
        f"Image-to-image search with a box, zero-shot (the models never trained on image candidates with a "
        f"prompted query): P@1 x 100 virtue {p1('virtue')} (without the box {p1(UNPROMPTED)}), crop "
        f"{p1('crop')}, global {p1('global')}; chance {chance:.0f}, oracles knowing only the image "
        f"{o['global']}, only the box {o['crop']}. "
        f"virtue - global {d('virtue', 'global')}, virtue - crop {d('virtue', 'crop')} points; the box "
        f"against no box for virtue {d('virtue', UNPROMPTED)}. "
    )
    st = _find(data.get("other_object", []), a="virtue", b="global")
    if st is not None:
        text += (
            f"The box's effect shows where the models go wrong: virtue's first choice shows the image's OTHER "
            f"object in the same relation in {100 * st['share_a']:.0f}% of the queries, global's in "
            f"{100 * st['share_b']:.0f}% ({100 * st['delta']:+.1f} [{100 * st['low']:+.1f}, "
            f"{100 * st['high']:+.1f}], {st['verdict']}): "
            + ("the box steers virtue away from the other object. " if st["high"] < 0 else "no sign here that "
               "the box steers virtue. ")  # fmt: skip
        )
    v = _find(data["results"], variant="virtue")
    if v is not None:
        wrong = max((k for k in KINDS if k != "gt"), key=lambda k: v[f"top1 {k}"])
        what = {"relation": "the right objects in another arrangement", "scene": "the right objects in another "
                "scene", "object_absent": "an image without the boxed object", "object_in_image": "the image's "
                "other object"}[wrong]  # fmt: skip
        text += (f"Its most frequent wrong first choice is a {wrong.replace('_', ' ')} distractor "
                 f"({100 * v[f'top1 {wrong}']:.0f}% of the queries): {what}. ")  # fmt: skip
        if v["p@1"] * 100 < o["crop"]:
            text += (
                "Zero-shot, none of these models is usable for image-to-image search with a box (below what the box "
                "alone allows): that takes training on image-to-image pairs with a prompted query, not run here."
            )
    return text
