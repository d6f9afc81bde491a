"""DVC sees every cell of a study: after one study parameter changes, `dvc metrics diff` lists each cell's
change (reports/sweeps/<study>.json holds them flat under `cells`, beside the `rows` list DVC cannot read).
A real git + DVC repository around the test workspace, the stage's command the real sweep driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # two `dvc repro` runs of a micro study: about half a minute

RUN_PY = Path(__file__).resolve().parents[2] / "sweeps" / "run.py"
DVC = Path(sys.executable).parent / "dvc"


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def _csv_plot(name: str) -> dict:
    """The per-cell data plot of the real dvc.yaml's sweep stage, for study `name`."""
    plots = yaml.safe_load((RUN_PY.parents[1] / "dvc.yaml").read_text())["stages"]["sweep"]["do"]["plots"]
    [props] = [p["reports/sweeps/${item}.csv"] for p in plots if "reports/sweeps/${item}.csv" in p]
    return {f"reports/sweeps/{name}.csv": {k: v.replace("${item}", name) if isinstance(v, str) else v
                                           for k, v in props.items()}}  # fmt: skip


def test_dvc_metrics_diff_lists_every_cell_and_dvc_plots_shows_them(workspace, study_file, importable):
    study = study_file()
    stage = {
        "cmd": f"{sys.executable} {RUN_PY} --study sweeps/studies/depth.yaml --executor debug --restart-on-change",
        "deps": ["sweeps/studies/depth.yaml"],
        "outs": [{"runs/sweeps/depth": {"persist": True, "cache": False}}],
        "metrics": [{"reports/sweeps/depth.json": {"cache": False}}],
        "plots": [_csv_plot("depth")],
    }
    (workspace / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"depth": stage}}))
    (workspace / ".gitignore").write_text("mlflow.db\nruns/\n")
    _run(["git", "init", "-q"], workspace)
    _run([str(DVC), "init", "-q"], workspace)
    _run([str(DVC), "repro", "-q"], workspace)
    _run(["git", "add", "-A"], workspace)
    _run(["git", "commit", "-qm", "one seed"], workspace)
    before = json.loads((workspace / "reports/sweeps/depth.json").read_text())["cells"]

    data = yaml.safe_load(study.read_text())
    study.write_text(yaml.safe_dump({**data, "seeds": 2}, sort_keys=False))  # one study parameter changes
    _run([str(DVC), "repro", "-q"], workspace)
    after = json.loads((workspace / "reports/sweeps/depth.json").read_text())["cells"]
    diff = json.loads(_run([str(DVC), "metrics", "diff", "--json"], workspace))["reports/sweeps/depth.json"]

    assert set(before) == set(after) == {"1", "2", "3"}
    for cell in ("1", "2", "3"):  # every cell's mean is listed, old and new as the two summaries hold them
        row = diff[f"cells.{cell}.mean"]
        assert row["old"] == pytest.approx(before[cell]["mean"]) and row["new"] == pytest.approx(after[cell]["mean"])
        assert row["old"] != row["new"]  # a second seed moves every cell's mean (the objective depends on it)
    shown = json.loads(_run([str(DVC), "plots", "show", "--json"], workspace))["data"]["reports/sweeps/depth.csv"]
    [plot] = shown
    values = plot["content"]["data"]["values"]  # DVC's vega spec, filled from the CSV
    assert plot["content"]["encoding"]["y"]["field"] == "cell" and plot["content"]["title"]["text"] == "depth"
    assert sorted(v["cell"] for v in values) == ["1", "2", "3"]
    assert {v["cell"]: float(v["mean"]) for v in values} == pytest.approx({c: after[c]["mean"] for c in after})
