import base64
import json

import polars as pl
import pytest
from eval.fake_encoder import WordEncoder  # tests/ is on sys.path (rootdir import mode)

from virtue.data.types import EvalQuery, Side
from virtue.eval.run import run_protocols
from virtue.report.page import build_report

KINDS = ("gt", "object_in_image", "object_absent", "relation", "scene")
SUBSETS = ("crowded", "relations", "small")


def scar_queries():
    out = []
    for s, subset in enumerate(SUBSETS):
        for i in range(4):
            gt = f"c{i} s{s} r{i % 2} scene{i % 3}"
            cands = (
                gt,
                f"c{i + 1} s{s} r{i % 2} scene{i % 3}",
                f"x{i} s{s} r{i % 2} scene{i % 3}",
                f"c{i} s{s} r{1 - i % 2} scene{i % 3}",
                f"c{i} s{s} r{i % 2} scene{(i + 1) % 3}",
            )
            out.append(
                EvalQuery(
                    Side(f"q {i} {subset}", image=f"/i/{s}{i}.png"),
                    tuple(Side(c) for c in cands),
                    subset,
                    f"{subset}:{i}",
                    KINDS,
                )
            )
    return out


def mmeb_queries():
    q = []
    for t, task in enumerate(("Cls1", "Vqa1", "Ret1", "Grd1")):
        for i in range(3):
            q.append(
                EvalQuery(
                    Side(f"m{t} {i}"), (Side(f"a{t}{i}"), Side(f"b{t}{i}"), Side(f"c{t}{i}")), task, f"{task}:{i}"
                )
            )
    info = {"Cls1": ("cls", "IND"), "Vqa1": ("vqa", "IND"), "Ret1": ("ret", "OOD"), "Grd1": ("grd", "OOD")}
    return q, {k: {"meta_task": m, "split": s} for k, (m, s) in info.items()}


class VariantEncoder(WordEncoder):
    """Word overlap plus a variant-specific deterministic bias, so the three variants score differently."""

    def __init__(self, words, salt):
        super().__init__(words)
        self.salt = salt

    def __call__(self, sides):
        import hashlib

        import torch

        base = super().__call__(sides)
        noise = torch.tensor(
            [
                [int(hashlib.md5(f"{self.salt}{s.text}{j}".encode()).hexdigest(), 16) % 1000 / 1000 for j in range(4)]
                for s in sides
            ]
        )
        return torch.nn.functional.normalize(torch.cat([base, noise], dim=1), dim=-1)


@pytest.fixture
def workspace(tmp_path):
    scar = scar_queries()
    mmeb, tasks = mmeb_queries()
    words = [w for q in scar + mmeb for s in (q.query, *q.candidates) for w in s.text.split()]
    for k, variant in enumerate(("virtue", "global", "crop")):
        name = f"tiny-{variant}"
        run_protocols(
            VariantEncoder(words, variant),
            batch_size=8,
            out_dir=tmp_path / "runs" / "eval" / name,
            scar=scar,
            mmeb=mmeb,
            mmeb_tasks=tasks,
            meta={"experiment": name, "variant": variant},
        )
        curve = [json.dumps({"step": s, "loss": 3.0 / (1 + s + k), "lr": 0.001}) for s in range(0, 50, 10)]
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "metrics.jsonl").write_text("\n".join(curve) + "\n")
    # a run of another experiment that the prefix must leave out
    run_protocols(
        VariantEncoder(words, "other"),
        batch_size=8,
        out_dir=tmp_path / "runs" / "eval" / "other-virtue",
        scar=scar,
        meta={"experiment": "other-virtue", "variant": "virtue"},
    )
    return tmp_path


def cells(md: str, title_start: str) -> dict[str, list[str]]:
    """Rows of the first Markdown table under a heading that starts with title_start: label -> cells."""
    block = md.split(f"### {title_start}", 1)[1].split("Sources:", 1)[0]
    rows = [r for r in block.splitlines() if r.startswith("|") and not r.startswith("|---")]
    return {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows[1:]}


def metrics(ws, variant):
    return json.loads((ws / "runs" / "eval" / f"tiny-{variant}" / "metrics.json").read_text())


def test_page_numbers_equal_the_metrics_files(workspace):
    page = build_report(workspace / "runs", workspace / "reports", prefix="tiny")
    md = page.read_text()
    scar = cells(md, "SCaR-synth: precision@1")
    kinds = cells(md, "SCaR-synth per distractor kind")
    mmeb = cells(md, "MMEB-synth: precision@1")
    assert len(scar) == 3 and "other-virtue" not in md.split("## Published")[0]
    for variant in ("virtue", "global", "crop"):
        m = metrics(workspace, variant)
        label = f"{variant} (tiny-{variant})"
        expected = [f"{100 * m['scar']['subsets'][s]['hit@1']:.1f}" for s in SUBSETS]
        expected += [f"{100 * m['scar']['overall'][k]:.1f}" for k in ("hit@1", "hit@5", "mrr")]
        assert scar[label] == expected
        assert kinds[label][:4] == [
            f"{100 * m['scar']['kinds'][k]['accuracy']:.1f}"
            for k in ("object_in_image", "object_absent", "relation", "scene")
        ]
        mm = m["mmeb"]
        assert mmeb[label] == [f"{100 * mm['meta_tasks'][k]:.1f}" for k in ("cls", "vqa", "ret", "grd")] + [
            f"{100 * mm[k]:.1f}" for k in ("IND", "OOD", "overall")
        ]
        assert f"runs/eval/tiny-{variant}/metrics.json" in md
    # the different encoders really give different numbers, so the check above compares something
    assert len({tuple(v) for v in scar.values()}) == 3


def test_targets_shown_met_or_not(workspace):
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    rows = cells(md, "Result targets")
    v, g = metrics(workspace, "virtue"), metrics(workspace, "global")
    p1 = v["scar"]["overall"]["hit@1"]
    assert rows["VIRTUE SCaR-synth P@1"][0] == f"{p1:.3f}"
    assert rows["VIRTUE SCaR-synth P@1"][2] == ("met" if p1 >= 0.6 else "NOT met")
    d = v["mmeb"]["overall"] - g["mmeb"]["overall"]
    assert rows["VIRTUE - global, MMEB-synth overall"][0] == f"{d:+.3f}"
    assert rows["VIRTUE - global, MMEB-synth overall"][2] == ("met" if d >= -0.01 else "NOT met")


def test_paper_tables_labelled_and_html_embeds_plots(workspace):
    build_report(workspace / "runs", workspace / "reports", prefix="tiny")
    out = workspace / "reports"
    md, page = (out / "index.md").read_text(), (out / "index.html").read_text()
    assert "Published numbers on the real benchmarks (paper)" in md
    assert "| VIRTUE-2B +SCaR-train | 64.2 | 65.3 | 41.4 | 54.2 | 56.0 | 56.2 |" in md
    assert "| VIRTUE-7B | 65.6 | 60.4 | 71.8 | 87.3 | 74.4 | 61.4 | 68.6 |" in md
    assert "arXiv 2510.00523" in md
    for name in ("scar_subsets", "scar_kinds", "mmeb", "training_curves"):
        png = out / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png.read_bytes()).decode() in page
    assert "plots/" not in page.split("<h2>Plots</h2>")[1].replace("data:image/png", "")
    curves = pl.read_csv(out / "curves.csv")
    assert curves.columns == ["step", "virtue", "global", "crop"]
    assert curves["virtue"][0] == pytest.approx(3.0)


def test_sweep_studies_get_a_table_and_plot(workspace):
    sweeps = workspace / "reports" / "sweeps"
    sweeps.mkdir(parents=True)
    # the summary format of virtue.orchestrate.sweep_report: one row per cell, mean/std over seeds, values list
    rows = [
        {
            "connector_depth": str(d),
            "mean": 0.4 + 0.1234 * (d == 2),
            "std": 0.02,
            "n": 2,
            "seeds": [0, 1],
            "values": [0.39, 0.41],
        }
        for d in (1, 2, 3)
    ]
    summary = {"study": "connector_depth", "axis": "connector_depth", "metric": "scar.overall.hit@1", "rows": rows}
    (sweeps / "connector_depth.json").write_text(json.dumps(summary))
    (sweeps / "points.json").write_text(json.dumps({**summary, "study": "points"}))
    (sweeps / "points.png").write_bytes((workspace / "runs" / "eval" / "tiny-virtue" / "metrics.json").read_bytes())
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    assert "Sweep study `connector_depth`" in md and "reports/sweeps/connector_depth.json" in md
    table = cells(md, "Sweep study `connector_depth`")
    assert table["2"][:3] == ["2", "0.523", "0.020"]  # seeds, then fractions with 3 decimals
    assert (workspace / "reports" / "plots" / "sweep_connector_depth.png").is_file()
    # a study whose runner already drew its plot: that plot is used, not redrawn
    assert not (workspace / "reports" / "plots" / "sweep_points.png").exists()
    assert "(sweeps/points.png)" in md


def test_report_is_deterministic(workspace):
    build_report(workspace / "runs", workspace / "a", prefix="tiny")
    build_report(workspace / "runs", workspace / "b", prefix="tiny")
    for f in ("index.md", "index.html", "plots/scar_subsets.png", "curves.csv"):
        assert (workspace / "a" / f).read_bytes() == (workspace / "b" / f).read_bytes()


def test_each_plot_keeps_its_name_when_another_table_is_missing(tmp_path):
    # Issue 20: with no SCaR table, the MMEB plot was saved under the SCaR plot's name.
    mmeb, tasks = mmeb_queries()
    words = [w for q in mmeb for s in (q.query, *q.candidates) for w in s.text.split()]
    for variant in ("virtue", "global"):
        run_protocols(
            VariantEncoder(words, variant),
            batch_size=8,
            out_dir=tmp_path / "runs" / "eval" / f"tiny-{variant}",
            mmeb=mmeb,
            mmeb_tasks=tasks,
            meta={"experiment": f"tiny-{variant}", "variant": variant},
        )
    build_report(tmp_path / "runs", tmp_path / "reports", prefix="tiny")
    plots = sorted(p.name for p in (tmp_path / "reports" / "plots").glob("*.png"))
    assert "mmeb.png" in plots and not any(p.startswith("scar") for p in plots), plots


def test_cli_without_runs_writes_a_page_saying_so(tmp_path, run_cli):
    r = run_cli("report", "--runs", tmp_path / "runs", "--out", tmp_path / "reports")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "reports" / "index.md").read_text()
    assert "0 evaluated run(s)" in md and "no data" in md


def test_bench_results_get_a_table(workspace):
    reports = workspace / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    bench = {
        "results": {
            "gradcache_memory": {
                "status": "measured",
                "ratio": 0.8021,
                "target": "<= 1.3",
                "met": True,
                "optimised": {"label": "batch 256, chunks of 8", "median": 130.9, "unit": "MiB"},
                "baseline": {"label": "batch 8", "median": 163.2, "unit": "MiB"},
            },
            "feature_cache_sweep": {"status": "measured", "ratio": 0.9377, "target": "<= 0.4", "met": False},
            "dvc_repro_noop": {"status": "skipped", "reason": "no dvc.lock"},
            "dvc_repro_idle": {"status": "measured", "seconds": {"label": "nothing to do", "median": 1.8, "unit": "s"}},
            "dvc_repro_stages": {
                "status": "estimated",
                "minutes": {"synth": None, "train": 1.2},
                "total_minutes_after_first": 1.2,
            },
        }
    }
    (reports / "bench.json").write_text(json.dumps(bench))
    md = build_report(workspace / "runs", reports, prefix="tiny").read_text()
    table = cells(md, "Benchmarks")
    assert table["gradcache_memory"][2:] == ["0.802", "<= 1.3", "met"]
    assert table["gradcache_memory"][0].startswith("131 MiB")
    assert table["feature_cache_sweep"][-1] == "NOT met"
    assert table["dvc_repro_noop"][-1] == "no dvc.lock"
    assert table["dvc_repro_idle"][0] == "1.8 s (nothing to do)"
    assert table["dvc_repro_stages"][0] == "1.2 min (train 1.2)"
    assert "reports/bench.json" in md


def test_departures_from_the_paper_are_listed_from_the_run_configs(workspace):
    from virtue.config import load_experiment, write_resolved

    cfg = load_experiment("tiny", ["model.sam_trainable=decoder"])  # tiny also sets model.sam_box_mask
    write_resolved(cfg, workspace / "runs" / "eval" / "tiny-virtue")
    write_resolved(
        load_experiment("tiny", ["model.variant=global"]),
        workspace / "runs" / "eval" / "tiny-global",
    )
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    lines = [line for line in md.splitlines() if line.startswith("- tiny-")]
    assert len(lines) == 1, lines  # global has no segmentation stream; crop no config
    assert "model.sam_box_mask: True" in lines[0] and "model.sam_trainable: decoder" in lines[0]


def test_training_of_each_run_is_stated_from_its_run_folder(workspace):
    from virtue.config import load_experiment, write_resolved

    both = ["train.source=both", "train.steps=640", "train.batch_size=32", "train.hard_negatives=3"]
    both += ["train.hard_negative_kinds=[relation,scene]", "train.compile=inductor"]
    write_resolved(load_experiment("tiny", both), workspace / "runs" / "tiny-virtue")
    write_resolved(load_experiment("tiny", ["train.source=scar", "train.steps=7"]), workspace / "runs" / "tiny-global")
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    intro = md.split("Training of these runs:", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in intro.splitlines() if line.startswith("- tiny-")]
    assert len(lines) == 2, lines  # crop's training folder has no config
    assert lines[0].startswith("- tiny-virtue: 640 steps of 32 queries, 3 hard negatives")
    assert "SCaR and MMEB" in lines[0] and "(drawn from the kinds relation, scene)" in lines[0]
    assert lines[0].endswith("under torch.compile (inductor) while training")  # global's (eager) says nothing
    assert lines[1].startswith("- tiny-global: 7 steps") and lines[1].endswith("on the SCaR training set")


def test_paired_comparisons_and_the_papers_claim_are_on_the_page(workspace):
    sweeps = workspace / "reports" / "sweeps"
    sweeps.mkdir(parents=True)
    metric = "scar.overall.hit@1"

    def paired(delta, verdict):
        return {metric: {"delta": delta, "low": delta - 0.02, "high": delta + 0.02, "verdict": verdict}}

    rows = [
        {"connector_depth": "1", "mean": 0.30, "std": 0.01, "n": 2, "paired": paired(-0.05, "worse")},
        {"connector_depth": "2", "reference": True, "mean": 0.35, "std": 0.01, "n": 3, "paired": paired(0.0, "-"),
         "seeds": [0, 1, 2], "values": [0.34, 0.35, 0.36]},
        {"connector_depth": "3", "mean": 0.34, "std": 0.01, "n": 2, "paired": paired(-0.01, "no difference")},
    ]
    claim = {"text": "2 layers beat 1 and 3", "source": "Table 5", "verdict": "unresolved", "checks": [
        {"cell": "1", "than": "2", "expect": "worse", "delta": -0.05, "low": -0.07, "high": -0.03, "state": "holds"},
        {"cell": "3", "than": "2", "expect": "worse", "delta": -0.01, "low": -0.03, "high": 0.01,
         "state": "unresolved"}]}  # fmt: skip
    summary = {"study": "connector_depth", "axis": "connector_depth", "metric": metric, "rows": rows,
               "claim": claim, "seed_variance": {metric: {"std": 0.012, "df": 6, "from": ["1", "2", "3"]}},
               "queries": {metric: 2000}, "complete": True}  # fmt: skip
    (sweeps / "connector_depth.json").write_text(json.dumps(summary))
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    table = cells(md, "Sweep study `connector_depth`")
    assert table["1"][3:5] == ["-0.050 [-0.070, -0.030]", "worse"]
    assert table["2 (reference)"][3] == "reference"
    assert "2000 eval queries" in md and "seed std 0.012" in md
    claims = cells(md, "The paper's ablation findings")
    assert claims["connector_depth"][:3] == ["2 layers beat 1 and 3", "Table 5", "unresolved"]
    assert "1 vs 2: worse, -0.050 [-0.070, -0.030] (holds)" in claims["connector_depth"][3]
    spread = cells(md, "How much the headline moves with the training seed")
    assert spread["seed 2"] == ["36.0"] and spread["mean +- std over seeds"] == ["35.0 +- 1.0"]
    assert "seed 0 is the main path's own run" not in md  # its first seed was trained by the study

    first = workspace / "runs" / "cells" / "abc"
    first.mkdir(parents=True)
    (first / "main_path_run.txt").write_text("runs/train/tiny-virtue\n")
    rows[1]["runs"] = ["runs/cells/abc", "runs/cells/def", "runs/cells/ghi"]
    (sweeps / "connector_depth.json").write_text(json.dumps(summary))
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    assert "seed 0 is the main path's own run" in md  # copied in from the main path


def test_the_page_states_the_backbone_dtype_and_tolerates_a_config_it_cannot_read(workspace):
    from virtue.config import load_experiment, write_resolved

    write_resolved(load_experiment("tiny", ["model.dtype=float32"]), workspace / "runs" / "eval" / "tiny-virtue")
    # a config.yaml of another layout (an older run, a stand-in): the report still builds
    (workspace / "runs" / "eval" / "tiny-global" / "config.yaml").write_text('{"model.variant": "global"}\n')
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    assert "The frozen backbones ran in float32 (model.dtype" in md


def test_a_pipe_in_a_cell_does_not_split_the_row():
    import polars as pl

    from virtue.report.page import md_table
    from virtue.report.tables import Table

    t = Table("claims", pl.DataFrame({"study": ["seg_tokens"], "claim": ["more |S| helps"]}), ["x.json"])
    header, _, row = md_table(t).splitlines()[2:5]
    assert row.replace("\\|", "").count("|") == header.count("|") == 3
    assert "more \\|S\\| helps" in row


def test_paper_scale_settings_are_shown_against_the_release(workspace):
    md = build_report(workspace / "runs", workspace / "reports", prefix="tiny").read_text()
    rows = cells(md, "Paper-scale configs against the official release")
    # setting -> release, paper-2b, paper-7b, verdict, meaning
    assert rows["model.official_compat"][:4] == ["true", "false", "false", "DIFFERS"]
    assert rows["train.grad_clip"][:4] == ["1.0", "1.0", "1.0", "as the release"]
    assert rows["model.vlm_eval_stretch"][:4] == ["1344", "1344", "1344", "as the release"]
    assert list(rows)[0] == "model.official_compat"  # differences first
    assert "1 of " in md.split("### Paper-scale configs", 1)[1]


def test_an_edit_of_a_paper_config_shows_as_a_difference(tmp_path, monkeypatch):
    import shutil

    from virtue.paths import experiments_dir
    from virtue.report.release import release_rows

    shutil.copytree(experiments_dir(), tmp_path / "experiments")
    path = tmp_path / "experiments" / "paper-2b.yaml"
    text = path.read_text()
    assert "grad_clip: 1.0" in text and "source_mixing: uniform" in text
    path.write_text(text.replace("grad_clip: 1.0", "grad_clip: null").replace("mixing: uniform", "mixing: size"))
    monkeypatch.setenv("VIRTUE_ROOT", str(tmp_path))
    rows = {r["setting"]: r for r in release_rows(("paper-2b", "paper-7b"))}
    assert not rows["train.grad_clip"]["same"] and rows["train.grad_clip"]["paper-7b"] is None  # 7b inherits
    assert not rows["train.source_mixing"]["same"] and rows["train.source_mixing"]["paper-2b"] == "size"
    assert rows["train.lr"]["same"] and not rows["model.official_compat"]["same"]
