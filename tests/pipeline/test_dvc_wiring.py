"""The DVC pipeline's wiring with a stand-in `virtue` command (tests/pipeline/fake_virtue.py): which stages run,
with which overrides, what a parameter change reruns, that a second repro does nothing, that `dvc metrics show`
and the report agree with the metrics files. The real commands are exercised in test_repro_micro.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from .workspace import copy_workspace, dvc, set_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    base = tmp_path_factory.mktemp("wiring")
    ws = copy_workspace(base / "ws")
    # data.dvc pins the README that the real `virtue data synth` writes; the stand-in does not write it
    # (test_repro_micro.py covers that with the real command)
    (ws / "data.dvc").unlink(missing_ok=True)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "virtue"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_virtue.py"} "$@"\n')
    shim.chmod(0o755)
    return ws, bin_dir, base / "calls.log"


def repro(ws, bin_dir, log: Path) -> list[str]:
    log.write_text("")
    r = dvc(ws, "repro", path_first=bin_dir, extra_env={"FAKE_VIRTUE_LOG": str(log)})
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in log.read_text().splitlines() if line]


def kinds(calls: list[str]) -> list[str]:
    return sorted(" ".join(c.split()[:2]) if c.startswith("data") else c.split()[0] for c in calls)


def test_full_run_then_noop_then_partial(ws):
    ws, bin_dir, log = ws
    calls = repro(ws, bin_dir, log)
    shipped = yaml.safe_load((ws / "params.yaml").read_text())
    studies, evals = shipped["sweeps"]["studies"], shipped["evalstudies"]  # both run `virtue sweep --study`
    main_path = ["data synth", "eval", "eval", "eval", "pretrain", "report"]
    # one stage trains every variant
    assert kinds(calls) == main_path + ["sweep"] * (len(studies) + len(evals)) + ["train"]
    (train,) = [c for c in calls if c.startswith("train")]
    params = yaml.safe_load((ws / "params.yaml").read_text())  # the shipped defaults
    assert "--variants-from params.yaml" in train and "name=tiny train.output_dir=runs/train/{name}" in train
    assert f"train.steps={params['train']['steps']}" in train
    assert sorted(p.name for p in (ws / "runs" / "train").iterdir()) == sorted(f"tiny-{v}" for v in params["variants"])
    kind = f"launcher.kind={params['launcher']['kind']}"
    assert all(kind in c for c in calls if c.split()[0] in ("pretrain", "train", "eval"))
    ev = next(c for c in calls if c.startswith("eval") and "variant=virtue" in c)
    assert "--checkpoint runs/train/tiny-virtue" in ev and "eval.output_dir=runs/eval/tiny-virtue" in ev

    # metrics: dvc reads the files the report shows
    shown = dvc(ws, "metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    m = json.loads((ws / "runs/eval/tiny-virtue/metrics.json").read_text())
    assert str(round(m["scar"]["overall"]["hit@1"], 6))[:5] in shown.stdout
    md = (ws / "reports/index.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| virtue (tiny-virtue) |"))
    assert row.split("|")[-4].strip() == f"{100 * m['scar']['overall']['hit@1']:.1f}"  # Overall column
    assert (ws / "reports/index.html").is_file() and (ws / "reports/plots/training_curves.png").is_file()

    # a sweep stage per study, its budget from params.yaml (steps: null = the main path's); the report shows
    # each study's summary
    sw = [c for c in calls if c.startswith("sweep") and c.split("--study ")[1].split()[0] in studies]
    assert sorted(c.split("--study ")[1].split()[0] for c in sw) == sorted(studies)
    assert all("--budget-from params.yaml" in c and "--restart-on-change" in c for c in sw)
    ev = [c for c in calls if c.startswith("sweep") and c not in sw]  # evaluation only: no budget, no trials
    assert sorted(c.split("--study ")[1].split()[0] for c in ev) == sorted(evals)
    assert all("--budget-from" not in c for c in ev)
    sets = json.loads((ws / "runs" / "sweeps" / studies[0] / "args.json").read_text())["sets"]
    assert f"train.steps={params['train']['steps']}" in sets
    for study in studies:
        summary = json.loads((ws / "reports" / "sweeps" / f"{study}.json").read_text())
        assert f"### Sweep study `{study}`" in md
        first = summary["rows"][0]
        assert f"| {first[summary['axis']]} | {first['n']} | {first['mean']:.3f} |" in md
        assert f"reports/sweeps/{study}.json" in shown.stdout  # dvc metrics show reads the summaries too

    # nothing changed: nothing runs, status clean
    assert repro(ws, bin_dir, log) == []
    st = dvc(ws, "status", path_first=bin_dir)
    assert st.returncode == 0 and "up to date" in st.stdout, st.stdout

    # a training parameter: training, evaluation, the studies (they train with the main path's recipe and
    # reuse its runs) and the report rerun; data and pre-training do not
    set_params(ws, train={"steps": 7})
    calls = repro(ws, bin_dir, log)
    assert kinds(calls) == ["eval", "eval", "eval", "report"] + ["sweep"] * (len(studies) + len(evals)) + ["train"]
    assert all("train.steps=7" in c for c in calls if c.startswith("train"))
    diff = dvc(ws, "params", "diff", "--json")
    assert diff.returncode == 0 and '"train.steps"' in diff.stdout, diff.stdout

    # the sweeps' budget: only the sweep stages and the report rerun (not the evaluation-only studies)
    set_params(ws, sweeps={"steps": 5})
    calls = repro(ws, bin_dir, log)
    assert kinds(calls) == ["report"] + ["sweep"] * len(studies)
    sets = json.loads((ws / "runs" / "sweeps" / studies[0] / "args.json").read_text())["sets"]
    assert "train.steps=5" in sets

    # plots render from the report's outputs
    plots = dvc(ws, "plots", "show", "-o", str(ws.parent / "plots-html"))
    assert plots.returncode == 0, plots.stderr

    # dvc exp run: the same pipeline as a named experiment with a parameter set on the command line. It runs
    # in the workspace like dvc repro (the stages that read train.steps, nothing else), and keeps what git and
    # the DVC cache hold: params, dvc.lock, the metrics files, and the cached outputs (runs/train, runs/eval).
    log.write_text("")
    r = dvc(ws, "exp", "run", "-n", "steps9", "-S", "train.steps=9", path_first=bin_dir,
            extra_env={"FAKE_VIRTUE_LOG": str(log)})  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    calls = [line for line in log.read_text().splitlines() if line]
    assert kinds(calls) == ["eval", "eval", "eval", "report"] + ["sweep"] * (len(studies) + len(evals)) + ["train"]
    assert all("train.steps=9" in c for c in calls if c.startswith("train"))
    shown = dvc(ws, "exp", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "steps9" in shown.stdout and '"steps": 9' in shown.stdout.replace(" ", " ")
    m = json.loads((ws / "runs/eval/tiny-virtue/metrics.json").read_text())
    assert str(round(m["scar"]["overall"]["hit@1"], 6))[:5] in shown.stdout  # the experiment's own metrics
