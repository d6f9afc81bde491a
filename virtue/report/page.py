"""The results page: reports/index.md and reports/index.html (plots embedded as base64), plus the PNG plots and
the CSV files that `dvc plots show` reads. Every table lists the files its numbers come from."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import polars as pl

from ..config.yamlfile import read_yaml_or_none
from ..io import write_text
from . import plots
from .collect import VARIANTS, deviations, find_runs, find_sweeps, read_curve, rel, training_lines
from .evalstudies import eval_study_sections
from .release import paper_configs, release_table
from .tables import (
    Table,
    bench_table,
    claims_table,
    kinds_table,
    mmeb_table,
    mmeb_tasks_table,
    paper_tables,
    scar_table,
    spread_table,
    sweep_table,
)
from .targets import Target, check_targets


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_cell(text: str) -> str:
    """A table cell's text with its pipes escaped (a claim about |S| would otherwise split the row)."""
    return text.replace("|", "\\|")


def md_table(t: Table) -> str:
    cols = [md_cell(c) for c in t.frame.columns]
    lines = [f"### {t.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_cell(fmt(v, t.digits)) for v in row) + " |" for row in t.frame.iter_rows()]
    lines += ["", "Sources: " + "; ".join(f"`{s}`" for s in t.sources)]
    if t.note:
        lines += ["", t.note]
    return "\n".join(lines) + "\n"


def html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v, t.digits))}</td>" for v in row) + "</tr>"
        for row in t.frame.iter_rows()
    )
    sources = "; ".join(f"<code>{html.escape(s)}</code>" for s in t.sources)
    return (
        f"<h3>{html.escape(t.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="src">Sources: {sources}</p>'
    )


def targets_table(targets: list[Target], runs, root: Path) -> Table:
    used = {name for t in targets for name in t.source.split(", ")}
    rows = [
        {
            "target": t.name,
            "measured": None if t.value is None else f"{t.value:+.3f}" if " - " in t.name else f"{t.value:.3f}",
            "required": t.required,
            "status": {True: "met", False: "NOT met", None: "no data"}[t.met],
        }
        for t in targets
    ]
    return Table(
        "Result targets of the embedded default (fractions, not x 100)",
        pl.DataFrame(rows),
        [rel(r.metrics_path, root) + " (scar.overall.hit@1, mmeb.overall)" for r in runs if r.name in used],
    )


def build_report(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, *, prefix: str | None = None) -> Path:
    """Write the results page from runs/eval/*/metrics.json (and training curves, sweep summaries)."""
    runs_dir, out = Path(runs_dir), Path(out_dir)
    root = out.resolve().parent
    runs = find_runs(runs_dir, prefix)
    named = (("scar_subsets", scar_table(runs, root)), ("scar_kinds", kinds_table(runs, root)),
             ("mmeb", mmeb_table(runs, root)))  # fmt: skip
    ours = [t for _, t in named if t]
    per_task = mmeb_tasks_table(runs, root)
    targets = targets_table(check_targets(runs), runs, root)
    images: list[tuple[str, Path]] = []
    for stem, t in named:  # each plot keeps its own file name whichever tables exist
        if t:
            images.append((t.title.split(":")[0], plots.grouped_bars(t, out / "plots" / f"{stem}.png")))

    curves = {r.name: c for r in runs if (c := read_curve(r.curve_path)) is not None}
    if curves:
        images.append(("Training curves", plots.training_curves(curves, out / "plots" / "training_curves.png")))
        write_curve_csv(curves, {r.name: r.variant for r in runs}, out / "curves.csv")

    sweeps = []
    found = find_sweeps(out / "sweeps")
    studies = [(p, d) for p, d in found if d.get("kind") != "eval"]  # evaluation-only studies: their own sections
    eval_sections, eval_images = eval_study_sections(found, root)
    images += eval_images
    claims = claims_table(studies, root)
    if claims:
        sweeps.append(claims)
    for path, data in studies:
        t = sweep_table(path, data, root)
        if t is None:
            continue
        sweeps.append(t)
        # the sweep runner draws its own plot beside the summary; draw one only where it is missing
        png = path.with_suffix(".png")
        if not png.is_file():
            png = plots.sweep_plot(
                data.get("study", path.stem), data, t.frame, out / "plots" / f"sweep_{path.stem}.png"
            )
        if png:
            images.append((t.title, png))

    bench_path = out / "bench.json"
    bench = bench_table(bench_path, json.loads(bench_path.read_text()), root) if bench_path.is_file() else None

    spread = spread_table(studies, runs, root)
    names = paper_configs()
    release = [release_table(root, names)] if names else []
    sections = [
        ("Result targets", [targets]),
        ("Our results on the synthetic benchmarks (SCaR-synth, MMEB-synth)", ours + ([per_task] if per_task else [])),
        ("How much these numbers move", [spread] if spread else []),
        ("Published numbers on the real benchmarks (paper)", paper_tables()),
        ("Sweep studies", sweeps),
        *eval_sections,
        ("Benchmarks", [bench] if bench else []),
        ("Paper scale: our configs against the official release", release),
    ]
    intro = (
        f"Generated by `virtue report` from {len(runs)} evaluated run(s) under `{rel(runs_dir, root)}/eval`. "
        "Numbers are precision@1 x 100 unless a table says otherwise. Our numbers are measured on the synthetic "
        "benchmarks; the paper's are on the real SCaR and MMEB and are shown for reference only."
    )
    machine = machine_line(runs)
    if machine:
        intro += f"\n\n{machine}"
    trained = training_lines(runs)
    if trained:
        intro += "\n\nTraining of these runs:\n\n" + "\n".join(f"- {line}" for line in trained)
    departs = deviations(runs)
    if departs:
        intro += "\n\nDepartures from the paper's recipe in these runs (docs/research/pretraining.md):\n\n" + "\n".join(
            f"- {line}" for line in departs
        )
    write_text(out / "index.md", render_md(sections, images, intro, out))
    write_text(out / "index.html", render_html(sections, images, intro))
    return out / "index.md"


def machine_line(runs) -> str:
    """Which dtype the frozen backbones ran in (model.dtype=auto picks it per machine) and on what CPU."""
    from ..config.machine import cpu_has_amx

    dtypes = set()
    for r in runs:
        dtype = recorded_dtype(r.metrics_path.parent / "config.yaml")
        if dtype:
            dtypes.add(dtype)
    if not dtypes:
        return ""
    cpu = "a CPU with AMX" if cpu_has_amx() else "a CPU without AMX"
    return (
        f"The frozen backbones ran in {', '.join(sorted(dtypes))} (model.dtype; the report was made on {cpu}). "
        "Numbers differ between float32 and bfloat16 runs and between CPUs by more than the rounding of either: "
        "the README lists what was measured where."
    )


def recorded_dtype(path: Path) -> str | None:
    """model.dtype of a run's config.yaml, or None where the file is absent or does not say (a report of
    older runs is still a report: this line is information, not a check)."""
    cfg = read_yaml_or_none(path)
    model = cfg.get("model") if isinstance(cfg, dict) else None
    dtype = model.get("dtype") if isinstance(model, dict) else None
    return dtype if dtype in ("float32", "bfloat16") else None


def write_curve_csv(curves: dict[str, pl.DataFrame], variants: dict[str, str], path: Path) -> None:
    """Wide table step, <variant or run>... for `dvc plots show` (one line per run)."""
    wide = None
    for name, df in curves.items():
        col = variants.get(name) if variants.get(name) in VARIANTS else name
        df = df.rename({"loss": col})
        wide = df if wide is None else wide.join(df, on="step", how="full", coalesce=True)
    write_text(path, wide.sort("step").write_csv())


def render_md(sections, images, intro: str, out: Path) -> str:
    parts = ["# VIRTUE Lab results", "", intro, ""]
    for heading, tables in sections:
        if tables:
            parts += [f"## {heading}", ""] + [md_table(t) for t in tables]
    parts += ["## Plots", ""] + [f"![{title}]({os.path.relpath(p, out)})\n" for title, p in images]
    return "\n".join(parts)


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.src{font-size:80%;color:#555}img{max-width:100%}"
)


def render_html(sections, images, intro: str) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>VIRTUE Lab results</title><style>{STYLE}</style>"
    ]
    parts += ["</head><body><h1>VIRTUE Lab results</h1>", f"<p>{html.escape(intro).replace(chr(10), '<br>')}</p>"]
    for heading, tables in sections:
        if tables:
            parts += [f"<h2>{html.escape(heading)}</h2>"] + [html_table(t) for t in tables]
    parts.append("<h2>Plots</h2>")
    for title, p in images:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(
            f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
