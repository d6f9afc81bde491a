"""A study that needs backbones the main pipeline does not make (sam_backbone's SAM-2s of other capacities):
the driver pre-trains them, SAM-2 only, before the trials, once, on micro synthetic scenes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from virtue.cli.main import main
from virtue.orchestrate.study import load_study
from virtue.orchestrate.sweep import run_sweep

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MICRO = """\
base: tiny
tracking: {enabled: false}
pretrain: {sam: {batch_size: 4, eval_scenes: 2, steps: 2}}
"""


def test_study_backbones_are_pretrained_sam2_only_before_the_trials(workspace, study_file):
    shutil.copy(ROOT / "experiments" / "tiny.yaml", workspace / "experiments" / "tiny.yaml")
    (workspace / "experiments" / "micro.yaml").write_text(MICRO)
    sizes = [f"data.synth.{k}=2" for k in ("scar_train_per_subset", "scar_eval_per_subset")]
    sizes += [f"data.synth.{k}=2" for k in ("mmeb_train_per_task", "mmeb_eval_per_task")]
    assert main(["data", "synth", "micro", *sizes]) == 0
    path = "runs/sweeps/depth/backbones/sam2-tiny-s"
    unused = "runs/sweeps/depth/backbones/sam2-tiny-l"
    cells = [{"label": "s", "overrides": [f"model.sam.path={path}", "model.sam.arch=sam2-tiny-s"]}]
    cells += [{"label": str(d), "overrides": [f"model.connector_depth={d}"]} for d in (1, 2)]
    backbones = [{"path": path, "overrides": ["model.sam.arch=sam2-tiny-s"]},
                 {"path": unused, "overrides": ["model.sam.arch=sam2-tiny-l"]}]  # fmt: skip
    spec_path = study_file(backbones=backbones, cells=cells)
    (workspace / "experiments" / "micro.yaml").write_text(MICRO)  # study_file wrote its own micro.yaml

    assert run_sweep(load_study(spec_path), executor="debug").completed == 3
    assert not (workspace / unused).exists()  # no cell of this run reads it: not trained
    sam = workspace / path
    config = json.loads((sam / "config.json").read_text())
    assert config["vision_config"]["backbone_config"]["hidden_size"] == 16  # the sam2-tiny-s preset
    metrics = json.loads((workspace / f"{path}-pretrain" / "metrics.json").read_text())
    assert metrics["sam2"]["steps"] == 2 and "eval_box_miou" in metrics["sam2"]
    assert metrics["qwen2vl"]["steps"] == 0  # SAM-2 only: the VLM half was skipped
    assert not (workspace / "runs" / "backbones").exists()  # the main pipeline's backbones were not touched

    # a second run finds the backbone and does not train it again
    before = (sam / "model.safetensors").stat().st_mtime_ns
    assert run_sweep(load_study(spec_path), executor="debug").completed == 3
    assert (sam / "model.safetensors").stat().st_mtime_ns == before
