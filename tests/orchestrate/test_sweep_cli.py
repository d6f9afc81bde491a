"""The sweep command line: `--set` overrides for every trial (the per-trial budget DVC passes from
params.yaml), their validation, and a study that refuses to continue, or starts over, when its inputs changed."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from virtue.cli.main import main
from virtue.config import load_experiment
from virtue.orchestrate.study import load_study
from virtue.orchestrate.sweep import storage_url
from virtue.orchestrate.worker import open_storage

from . import objectives


def values(workspace) -> dict[str, list[float]]:
    rows = json.loads((workspace / "reports" / "sweeps" / "depth.json").read_text())["rows"]
    return {r["connector_depth"]: r["values"] for r in rows}


def expected(depth: int, lr: float) -> float:
    cfg = load_experiment("micro", [f"model.connector_depth={depth}", f"train.lr={lr}", "train.seed=0"])
    return objectives.quadratic(cfg)["score"]


@pytest.mark.slow
def test_set_reaches_every_trial_and_a_changed_study_restarts_only_when_asked(workspace, study_file, capsys):
    path = str(study_file())
    assert main(["sweep", "--study", path, "--executor", "debug", "--set", "train.lr=0.01"]) == 0
    assert values(workspace) == {d: [pytest.approx(expected(int(d), 0.01))] for d in ("1", "2", "3")}
    assert expected(2, 0.01) != expected(2, 1e-3)  # the override changed the numbers, not only the config

    # the same study with another budget: the old trials answer another question
    capsys.readouterr()
    assert main(["sweep", "--study", path, "--executor", "debug", "--set", "train.lr=0.001"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "changed: configs" in err and "--restart-on-change" in err
    restart = ["sweep", "--study", path, "--executor", "debug", "--set", "train.lr=0.001", "--restart-on-change"]
    assert main(restart) == 0
    assert values(workspace) == {d: [pytest.approx(expected(int(d), 0.001))] for d in ("1", "2", "3")}
    spec = load_study(path)
    assert len(optuna.load_study(study_name=spec.name, storage=open_storage(storage_url(spec, None))).trials) == 3

    # unchanged inputs: the flag continues the study instead of discarding it
    assert main([*restart, "--seeds", "2"]) == 0
    assert len(optuna.load_study(study_name=spec.name, storage=open_storage(storage_url(spec, None))).trials) == 6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stepz=3", "--set train.stepz=3: .*train.stepz: unknown key"),
        ("train.steps=many", "--set train.steps=many: .*valid integer"),
        ("trainsteps", "--set trainsteps: .*expected dotted.key=value"),
        ("model.connector_depth=2", "--set model.connector_depth=2: .*what the study's cells vary"),
    ],
)
def test_bad_set_is_one_line_and_exit_2_before_anything_runs(workspace, study_file, capsys, override, message):
    import re

    path = str(study_file())
    assert main(["sweep", "--study", path, "--executor", "debug", "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (workspace / "runs" / "sweeps" / "depth").exists()  # nothing ran, no journal was made


def test_set_is_checked_against_the_study_experiment(workspace, study_file):
    from virtue.cli.sweep_cmd import apply_sets

    spec = apply_sets(load_study(study_file()), ["train.steps=7", "train.warmup_steps=1"])
    assert spec.overrides[-2:] == ["train.steps=7", "train.warmup_steps=1"]
    assert spec.cells[0].overrides == ["model.connector_depth=1"]  # the cells still come last


def test_a_study_is_not_continued_on_other_data(workspace, study_file, capsys):
    from virtue.config import ExperimentConfig

    data = workspace / ExperimentConfig(name="m").data.scar_dir
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text('{"q": 1}\n')
    path = str(study_file())
    assert main(["sweep", "--study", path, "--executor", "debug"]) == 0
    (data / "train.jsonl").write_text('{"q": 2}\n')  # regenerated data: the trials no longer describe it
    capsys.readouterr()
    assert main(["sweep", "--study", path, "--executor", "debug"]) == 2
    assert "changed: files" in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_plans_without_writing_and_sees_what_is_done(workspace, study_file, capsys):
    path = str(study_file(seeds=2))
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    args = ["sweep", "--study", path, "--dry-run", "--executor", "slurm", "--workers", "3", "--partition", "gpu",
            "--gpus", "1", "--time", "30"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before  # nothing written
    assert out.count("training + evaluation") == 6 and "jobs: 6 (6 to train, 0 to evaluate only)" in out
    assert "Slurm array, partition gpu, 3 at once; each task 1 GPU, 1 CPUs, 1 GB, time limit 30 min" in out
    assert "time unknown until a first trial has trained" in out

    assert main(["sweep", "--study", path, "--executor", "debug", "--seeds", "1"]) == 0  # seed 0 of each cell
    capsys.readouterr()
    assert main(["sweep", "--study", path, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("nothing (complete in the study)") == 3 and out.count("training + evaluation") == 3
    assert "jobs: 3 (3 to train, 0 to evaluate only)" in out and "1 at once" in out

    data = yaml.safe_load(Path(path).read_text())  # the study's definition changes: its trials answer another one
    Path(path).write_text(yaml.safe_dump({**data, "metric": "loss", "direction": "minimize"}, sort_keys=False))
    assert main(["sweep", "--study", path, "--dry-run"]) == 0
    assert "the driver refuses without --restart-on-change" in capsys.readouterr().out
    assert main(["sweep", "--study", path, "--dry-run", "--restart-on-change"]) == 0
    out = capsys.readouterr().out  # the study starts over; the cells trained so far keep their results
    assert "the study starts over" in out and out.count("nothing (result found in runs/cells)") == 3


def test_zero_workers_is_refused_in_a_dry_run_too(workspace, study_file, capsys):
    assert main(["sweep", "--study", str(study_file()), "--workers", "0", "--dry-run"]) == 2
    assert "--workers 0: must be at least 1" in capsys.readouterr().err
