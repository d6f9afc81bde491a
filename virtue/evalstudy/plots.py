"""The plots of the evaluation-only studies: prompt_noise as P@1 against the prompt's IoU with the true box
(one line per variant; shrunk and grown boxes as markers) beside the mask and click families; point_sampling
as each strategy's difference from the grid with its 95% interval, per benchmark; i2i as where each variant's
first choice goes (stacked shares, the oracles as lines) beside the paired differences between variants."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io import write_bytes  # noqa: E402
from .spec import evaluation_of  # noqa: E402

COLOURS = {"virtue": "#1f77b4", "crop": "#ff7f0e", "global": "#7f7f7f"}


def draw(data: dict, path: Path) -> Path:
    fig = {"prompt_noise": _prompt_noise, "point_sampling": _point_sampling, "i2i": _i2i}[evaluation_of(data)](data)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    return path


def _prompt_noise(data: dict):
    res = data["results"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    variants = data.get("variants") or list(data["runs"])
    for v in variants:
        mine = [r for r in res if r["variant"] == v]
        moved = sorted([r for r in mine if r["condition"] == "box" or r["condition"].startswith("moved")],
                       key=lambda r: -r["iou"])  # fmt: skip
        c = COLOURS.get(v)
        ax.plot([r["iou"] for r in moved], [100 * r["p@1"] for r in moved], "o-", color=c, label=f"{v}: box moved")
        for prefix, marker in (("shrunk", "v"), ("grown", "^")):
            pts = [r for r in mine if r["condition"].startswith(prefix)]
            ax.plot([r["iou"] for r in pts], [100 * r["p@1"] for r in pts], marker, color=c, linestyle="none",
                    label=f"{v}: box {prefix}")  # fmt: skip
    ax.set_xlabel("IoU of the prompted box with the object's box")
    ax.set_ylabel("SCaR-synth P@1 x 100")
    ax.invert_xaxis()
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Boxes off by a known amount")
    names = [c["name"] for c in data["conditions"] if c["family"] in ("mask", "click")]
    width = 0.8 / max(len(variants), 1)
    for i, v in enumerate(variants):
        ys = [next((100 * r["p@1"] for r in res if r["variant"] == v and r["condition"] == n), 0.0) for n in names]
        bx.bar([k + i * width for k in range(len(names))], ys, width, color=COLOURS.get(v), label=v)
    bx.set_xticks([k + width * (len(variants) - 1) / 2 for k in range(len(names))], names, rotation=35,
                  ha="right", fontsize=8)  # fmt: skip
    bx.set_title("Masks and clicks")
    bx.legend(fontsize=7)
    return fig


def _point_sampling(data: dict):
    comps = [c for c in data["comparisons"] if c["variant"] == "virtue"]
    evals = sorted({c["eval"] for c in comps})
    fig, axes = plt.subplots(1, max(len(evals), 1), figsize=(5 * max(len(evals), 1), 3.6), squeeze=False)
    for ax, ev in zip(axes[0], evals, strict=False):
        cs = [c for c in comps if c["eval"] == ev]
        xs = range(len(cs))
        ys = [100 * c["delta"] for c in cs]
        err = [[100 * (c["delta"] - c["low"]) for c in cs], [100 * (c["high"] - c["delta"]) for c in cs]]
        ax.bar(xs, ys, yerr=err, capsize=4, color=COLOURS["virtue"])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(list(xs), [c["strategy"] for c in cs])
        ax.set_ylabel("P@1 difference from the grid x 100")
        ax.set_title(f"{ev}: where the {data.get('n_points', 'N')} points come from")
    return fig


KIND_COLOURS = {"gt": "#2ca02c", "object_in_image": "#d62728", "object_absent": "#ff9896", "relation": "#9467bd",
                "scene": "#c5b0d5"}  # fmt: skip


def _i2i(data: dict):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    res = data["results"]
    xs = range(len(res))
    bottom = [0.0] * len(res)
    for kind, colour in KIND_COLOURS.items():
        ys = [100 * r[f"top1 {kind}"] for r in res]
        label = "positive" if kind == "gt" else f"{kind.replace('_', ' ')} distractor"
        ax.bar(xs, ys, 0.6, bottom=bottom, color=colour, label=label)
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    for name, style in (("global", ":"), ("crop", "--")):
        ax.axhline(data["oracles"][name], color="black", linestyle=style, linewidth=1,
                   label=f"{name}-only oracle P@1")  # fmt: skip
    ax.set_xticks(list(xs), [r["variant"] for r in res])
    ax.set_ylabel("share of queries (%)")
    ax.set_title(f"Where the first choice goes ({data['queries']} queries, {data['candidates']} images each)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    comps, steer = data["comparisons"], data.get("other_object", [])
    for k, (items, colour, label) in enumerate(((comps, COLOURS["virtue"], "P@1"),
                                                (steer, KIND_COLOURS["object_in_image"], "first choice on the "
                                                 "other object (lower: box followed)"))):  # fmt: skip
        xs = [i + 0.4 * k for i in range(len(items))]
        ys = [100 * c["delta"] for c in items]
        err = [[100 * (c["delta"] - c["low"]) for c in items], [100 * (c["high"] - c["delta"]) for c in items]]
        bx.bar(xs, ys, 0.4, yerr=err, capsize=3, color=colour, label=label)
    bx.axhline(0, color="black", linewidth=0.8)
    bx.set_xticks([i + 0.2 for i in range(len(comps))], [f"{c['a']}\n- {c['b']}" for c in comps], fontsize=8)
    bx.set_ylabel("difference x 100 (95% interval)")
    bx.set_title("Paired on the same queries")
    bx.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
