"""The results page's sections for the evaluation-only studies (reports/sweeps/<name>.json with kind: eval,
written by virtue/evalstudy): prompt_noise, point_sampling and i2i, each a table with paired intervals and
verdicts, the study's own plot, and its paragraph for someone choosing how to prompt a VIRTUE model."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..evalstudy.spec import evaluation_of
from .collect import rel
from .tables import Table, pct

TITLES = {
    "prompt_noise": "Prompt robustness (`prompt_noise`, beyond the paper)",
    "point_sampling": "Where the points of an unprompted query come from (`point_sampling`, beyond the paper)",
    "i2i": "Image-to-image search with a box (`i2i`, beyond the paper)",
}


def _iv(c: dict | None) -> str:
    if not c:
        return "-"
    return f"{100 * c['delta']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"


def _find(items: list[dict], **keys) -> dict | None:
    return next((x for x in items if all(x.get(k) == v for k, v in keys.items())), None)


def prompt_noise_tables(path: Path, data: dict, root: Path) -> list[Table]:
    variants = data.get("variants") or list(data["runs"])
    rows = []
    for c in data["conditions"]:
        row = {"prompt": c["name"], "family": c["family"], "n": c["n"],
               "IoU with the truth": "-" if c["achieved_iou"] is None else f"{c['achieved_iou']:.3f}"}  # fmt: skip
        for v in variants:
            r = _find(data["results"], variant=v, condition=c["name"])
            row[v] = pct(r["p@1"]) if r else None
        own = _find(data["comparisons"], variant="virtue", condition=c["name"], against=c["baseline"])
        if c["name"] == c["baseline"]:  # a family's baseline: against the exact box where it is not the box
            own = _find(data["comparisons"], variant="virtue", condition=c["name"], against="box")
        base = "box" if c["name"] == c["baseline"] else c["baseline"]
        row["virtue vs [95%]"] = "baseline" if c["name"] == "box" else f"{base}: {_iv(own)}"
        row["verdict"] = own["verdict"] if own else "-"
        row["virtue - crop [95%]"] = _iv(_find(data["between_variants"], condition=c["name"], b="crop"))
        rows.append(row)
    note = (
        f"{data.get('summary', '')} Intervals: {data.get('intervals', '')}. The 'other object' row scores the "
        "other object's caption as the ground truth; the table below says whether the embedding follows the box. "
        f"Study cost: {data.get('wall_s', '?')} s."
    )
    main = Table("SCaR-synth P@1 x 100 per prompt and variant",
                 pl.DataFrame(rows, infer_schema_length=None), [rel(path, root)], note=note)  # fmt: skip
    follow = [{"variant": v, "n": f["n"], "other object's caption first (%)": pct(f["follows"]),
               "original caption first (%)": pct(f["stays"]), "difference [95%]": _iv(f), "verdict": f["verdict"]}
              for v, f in data.get("follow", {}).items()]  # fmt: skip
    out = [main]
    if follow:
        note = "Paired per query: the other object's caption first minus the original one first."
        title = "Given the box of another object of the image, which caption ranks first"
        out.append(Table(title, pl.DataFrame(follow), [rel(path, root)], note=note))
    return out


def point_sampling_tables(path: Path, data: dict, root: Path) -> list[Table]:
    rows = []
    keys = list(dict.fromkeys((r["variant"], r["strategy"]) for r in data["results"]))  # virtue's strategies first
    for variant, strategy in keys:
        row = {"variant": variant, "points": strategy if variant == "virtue" else "(reads no prompt)"}
        for ev, label in (("mmeb", "MMEB-synth"), ("scar_unprompted", "SCaR-synth, no box")):
            r = _find(data["results"], variant=variant, strategy=strategy, eval=ev)
            c = _find(data["comparisons"], variant=variant, strategy=strategy, eval=ev)
            row[label] = pct(r["p@1"]) if r else None
            row[f"{label} vs grid [95%]"] = "baseline" if (variant, strategy) == ("virtue", "grid") else _iv(c)
            row[f"{label} verdict"] = c["verdict"] if c else "-"
        rows.append(row)
    q = data.get("queries", {})
    note = (
        f"{data.get('summary', '')} N = {data.get('n_points')} points, one prompt, for every image without a "
        f"user prompt (queries and image candidates); {q.get('mmeb', '?')} MMEB-synth and "
        f"{q.get('scar_unprompted', '?')} SCaR-synth queries. Intervals: {data.get('intervals', '')}. "
        f"Study cost: {data.get('wall_s', '?')} s."
    )
    return [Table("P@1 x 100 per placement of the N points", pl.DataFrame(rows, infer_schema_length=None),
                  [rel(path, root)], note=note)]  # fmt: skip


def i2i_tables(path: Path, data: dict, root: Path) -> list[Table]:
    rows = []
    for r in data["results"]:
        row = {"variant": r["variant"], "n": r["n"], "P@1": pct(r["p@1"])}
        row.update({f"first choice: {k.replace('_', ' ')} (%)": pct(r[f"top1 {k}"]) for k in
                    ("object_in_image", "object_absent", "relation", "scene")})  # fmt: skip
        rows.append(row)
    o = data["oracles"]
    for name in ("global", "crop", "both"):
        rows.append({"variant": f"oracle: {'image and box' if name == 'both' else f'{name} only'}",
                     "n": o["n"], "P@1": o[name]})  # fmt: skip
    comps = [{"comparison": f"{c['a']} - {c['b']}", "n": c["n"], "difference [95%]": _iv(c), "verdict": c["verdict"]}
             for c in data["comparisons"]]  # fmt: skip
    note = (
        f"{data.get('summary', '')} Oracles (`virtue data stats data/i2i-synth`): expected P@1 picking among "
        f"the candidates each cannot rule out, over all {o['n']} queries of the file. Intervals: "
        f"{data.get('intervals', '')}. Study cost: {data.get('wall_s', '?')} s."
    )
    src = [rel(path, root)]
    out = [Table("I2I-synth P@1 x 100 and where the first choice goes", pl.DataFrame(rows, infer_schema_length=None),
                 src, note=note),
           Table("Paired differences between the variants (P@1 x 100)", pl.DataFrame(comps), src)]  # fmt: skip
    steer = [{"comparison": f"{c['a']} - {c['b']}", "n": c["n"], "a (%)": pct(c["share_a"]), "b (%)": pct(c["share_b"]),
              "difference [95%]": _iv(c), "verdict": c["verdict"]} for c in data.get("other_object", [])]  # fmt: skip
    if steer:
        note = ("Lower means the box was followed: the query image holds another object in the same relation to the "
                "same neighbour, and only the box says it is not the one asked about.")  # fmt: skip
        out.append(Table("First choice on the image of the query's OTHER object (object_in_image)",
                         pl.DataFrame(steer), src, note=note))  # fmt: skip
    return out


MAKERS = {"prompt_noise": prompt_noise_tables, "point_sampling": point_sampling_tables, "i2i": i2i_tables}


def eval_study_sections(studies: list[tuple[Path, dict]], root: Path) -> tuple[list, list]:
    """([(heading, tables)], [(plot title, png)]) for the kind: eval summaries among `studies`."""
    sections, images = [], []
    for path, data in studies:
        if data.get("kind") != "eval":
            continue
        name = evaluation_of(data)
        sections.append((TITLES[name], MAKERS[name](path, data, root)))
        png = path.with_suffix(".png")
        if png.is_file():
            images.append((TITLES[name], png))
    return sections, images
