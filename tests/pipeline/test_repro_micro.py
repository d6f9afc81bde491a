"""The whole pipeline with the real commands on a micro configuration, in a temporary copy of the workspace:
`dvc repro` builds data, backbones, three trained variants, their evaluations, one micro sweep study (real
trials in local subprocesses) and the report; the report's numbers equal the metrics files and the study's
summary equals its trials' own evaluations; `dvc status` is clean and a second `dvc repro` does nothing."""

from __future__ import annotations

import json

import pytest

from .workspace import copy_workspace, dvc, set_params

pytestmark = pytest.mark.slow

MICRO = """\
base: tiny
train: {batch_size: 8, warmup_steps: 0, checkpoint_every: 0, hard_negatives: 3}
pretrain: {sam: {batch_size: 4, eval_scenes: 2}, vlm: {batch_size: 4, eval_images: 4}}
tracking: {enabled: false}
eval: {batch_size: 16}
"""


def table_rows(md: str, title_start: str) -> dict[str, list[str]]:
    block = md.split(f"### {title_start}", 1)[1].split("Sources:", 1)[0]
    rows = [r for r in block.splitlines() if r.startswith("|") and not r.startswith("|---")]
    return {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows[1:]}


def test_dvc_repro_micro(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    (ws / "experiments" / "micro.yaml").write_text(MICRO)
    set_params(
        ws,
        experiment="micro",
        synth={
            "scar_train_per_subset": 16,
            "scar_eval_per_subset": 4,
            "mmeb_train_per_task": 8,
            "mmeb_eval_per_task": 4,
            "i2i_eval_queries": 3,
        },
        pretrain={"sam": {"steps": 2}, "vlm": {"steps": 2}},
        # params.yaml overrides micro.yaml; eager (compiling costs more than 2 steps: tests/train/test_compile.py)
        train={"steps": 2, "batch_size": 8, "warmup_steps": 0, "hard_negatives": 3, "compile": "off"},
        eval={"batch_size": 16},
        sweeps={"studies": ["connector_depth"], "steps": None, "seeds": 1, "trials": 1, "workers": 2},
        evalstudies=["prompt_noise"],
    )
    r = dvc(ws, "repro")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    md = (ws / "reports" / "index.md").read_text()
    scar, mmeb = table_rows(md, "SCaR-synth: precision@1"), table_rows(md, "MMEB-synth: precision@1")
    for variant in ("virtue", "global", "crop"):
        m = json.loads((ws / "runs" / "eval" / f"micro-{variant}" / "metrics.json").read_text())
        assert m["variant"] == variant and m["checkpoint"] == f"runs/train/micro-{variant}/trainable.safetensors"
        label = f"{variant} (micro-{variant})"
        assert scar[label][-3] == f"{100 * m['scar']['overall']['hit@1']:.1f}"  # Overall, hit@5, MRR
        assert mmeb[label][-1] == f"{100 * m['mmeb']['overall']:.1f}"
        assert (ws / "runs" / "eval" / f"micro-{variant}" / "predictions.parquet").is_file()
        assert list((ws / "runs" / "eval" / f"micro-{variant}" / "scar").glob("*_score.json"))
    assert "base64," in (ws / "reports" / "index.html").read_text()

    # the sweep stage: one trial per cell and seed (the reference cell: 3 seeds), trained and evaluated for real,
    # with the main path's recipe: its virtue run is the reference's first seed and is not trained again
    summary = json.loads((ws / "reports" / "sweeps" / "connector_depth.json").read_text())
    assert summary["completed_trials"] == 5 and summary["failed_trials"] == 0 and summary["complete"]
    sweep = table_rows(md, "Sweep study `connector_depth`")
    for row in summary["rows"]:
        values = []
        for run in row["runs"]:
            m = json.loads((ws / run / "eval" / "metrics.json").read_text())
            values.append(m["scar"]["overall"]["hit@1"])
            cfg = (ws / run / "config.yaml").read_text()  # the main path's budget reached the trial
            assert "steps: 2\n" in cfg and f"connector_depth: {row['connector_depth']}\n" in cfg
        assert row["values"] == values and sweep[row["connector_depth"].replace("2", "2 (reference)")][1] == (
            f"{row['mean']:.3f}"
        )
        assert "difference [95% interval]" in md and row["paired"]["scar.overall.hit@1"]["verdict"]
    reference = next(r for r in summary["rows"] if r["reference"])
    assert reference["n"] == 3
    trained_by = ws / reference["runs"][0] / "main_path_run.txt"
    assert trained_by.read_text().strip() == "runs/train/micro-virtue"  # trained once, by the main path
    assert (ws / "runs" / "train" / "micro-virtue" / "cell.txt").read_text().strip() == reference["runs"][0]
    assert summary["claim"]["verdict"] in ("reproduced", "contradicted", "unresolved")
    assert (ws / "reports" / "sweeps" / "connector_depth.png").stat().st_size > 1000

    # the evaluation-only study: the main path's three trained runs under perturbed prompts, on the page
    noise = json.loads((ws / "reports" / "sweeps" / "prompt_noise.json").read_text())
    assert noise["runs"] == {v: f"runs/train/micro-{v}" for v in ("virtue", "crop", "global")}
    assert noise["comparisons"] and all(c["verdict"] for c in noise["comparisons"])
    assert "Prompt robustness (`prompt_noise`" in md and "reports/sweeps/prompt_noise.json" in md

    # every stage's wall time, recorded by its own command (DVC names the stage): one record per stage, none
    # from the trials and jobs a stage starts
    from virtue.bench.pipeline import stage_minutes
    from virtue.cli.stage_clock import log_path

    stages = stage_minutes(ws)
    records = [json.loads(line) for line in log_path(ws).read_text().splitlines()]
    assert stages["status"] == "measured" and set(stages["source"].values()) == {"clock"}
    assert sorted(r["stage"] for r in records) == sorted(stages["minutes"])  # one each
    assert "sweep@connector_depth" in stages["minutes"] and all(r["exit"] == 0 for r in records)

    st = dvc(ws, "status")
    assert st.returncode == 0 and "up to date" in st.stdout, st.stdout
    again = dvc(ws, "repro")
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
