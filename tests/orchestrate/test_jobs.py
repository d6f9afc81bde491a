"""The main path's training job with in_cells (`virtue train --in-cells`, the DVC pipeline): it trains in
runs/cells/<key>, outside the stage's outputs, and copies the finished run into the run folder. A rerun after
the run folder was deleted (what `dvc repro` does to a stage's outputs before it runs the stage again) resumes
from the cell's checkpoints and ends with the weights of an uninterrupted run; another config trains in another
cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from virtue.cli.train_cmd import _progress
from virtue.config import load_experiment, load_resolved
from virtue.orchestrate.cells import cell_dir
from virtue.orchestrate.jobs import run_training
from virtue.train.checkpoint import WEIGHTS, checkpoints

from .test_trial import MICRO, tiny_workspace  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow


def _cfg(*extra: str):
    return load_experiment("tiny", [*MICRO, "train.steps=4", "tracking.enabled=false", "name=tiny-virtue",
                                    "train.output_dir=runs/train/{name}", *extra])  # fmt: skip


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / WEIGHTS)), load_file(str(b / WEIGHTS))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_in_cells_trains_in_the_cell_and_publishes_the_finished_run(tiny_workspace):  # noqa: F811
    plain = Path(run_training(_cfg("train.output_dir=runs/plain/{name}")))
    assert (plain / "checkpoints").is_dir()  # trained in its own folder, the run keeps its checkpoints there

    cfg = _cfg()
    out = Path(run_training(cfg, in_cells=True))
    cell = cell_dir(cfg)
    assert out == tiny_workspace / "runs" / "train" / "tiny-virtue"
    assert sorted(p.name for p in out.iterdir()) == ["cell.txt", "config.yaml", "metrics.jsonl", WEIGHTS]
    assert (out / "cell.txt").read_text().strip() == str(cell.relative_to(tiny_workspace))
    assert [p.name for p in checkpoints(cell / "checkpoints")][0] == "step-00000004"
    assert _same_weights(out, plain) and _same_weights(out, cell)  # where it trains does not change the weights
    assert _steps(out) == [1, 2, 3, 4]
    assert load_resolved(out / "config.yaml").train.output_dir == "runs/train/{name}"

    # A study evaluates the finished cell and appends its evaluation (step null) to the cell's log. The train
    # stage, rerun, publishes the training's log only, and its progress bar reads past that line.
    with (cell / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": None, "scar.overall.hit@1": 0.5}) + "\n")
    shutil.rmtree(out)
    assert _steps(Path(run_training(cfg, in_cells=True))) == [1, 2, 3, 4]
    bar, poll = _progress([cfg], in_cells=True)
    poll()
    assert bar.n == 4
    bar.close()

    # A job killed after step 2 leaves the cell with its step-2 checkpoint; DVC deletes the stage's outputs.
    for ckpt in checkpoints(cell / "checkpoints")[:-2]:
        shutil.rmtree(ckpt)
    (cell / WEIGHTS).unlink()
    shutil.rmtree(out)
    again = Path(run_training(cfg, in_cells=True))
    assert _same_weights(again, plain)  # resumed from step 2, same weights as the uninterrupted run
    assert _steps(again) == [1, 2, 3, 4]  # each step once: the log of steps 1-2 was kept in the cell

    other = _cfg("train.steps=3")
    assert cell_dir(other) != cell
    before = {p.name for p in checkpoints(cell / "checkpoints")}
    run_training(other, in_cells=True)  # into the same run folder, holding the published run of another config
    assert {p.name for p in checkpoints(cell / "checkpoints")} == before and (cell / WEIGHTS).is_file()
    assert _steps(again) == [1, 2, 3] and load_resolved(again / "config.yaml").train.steps == 3
