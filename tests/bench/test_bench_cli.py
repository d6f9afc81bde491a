"""`virtue bench` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from virtue.config import load_experiment

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _read_only(folder):
    """A folder this process cannot write (read-only tmpfs as root, else mode 0555); None if impossible."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        return None
    return lambda: subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_unwritable_out_fails_before_measuring(tmp_path, run_cli):
    folder = tmp_path / "ro"
    undo = _read_only(folder)
    if undo is None:
        pytest.skip("root without mount: cannot make a read-only folder")
    try:
        r = run_cli("bench", "--quick", "--out", str(folder / "bench.json"), timeout=120)
    finally:
        undo()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and str(folder / "bench.json") in lines[0], r.stderr[-2000:]
    assert "bench:" not in r.stderr  # nothing was measured


@pytest.mark.slow
def test_quick_bench_writes_json_and_table(tmp_path, run_cli):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--quick", "--out", str(out), env={"OMP_NUM_THREADS": "1"}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    res = report["results"]
    assert report["mode"] == "quick" and set(res) == {
        "gradcache_memory",
        "feature_cache_sweep",
        "train_throughput_cache",
        "eval_throughput_dedup",
        "train_step_dtype",
        "eval_feature_cache",
        "cell_dedup",
        "answered_cell_minutes",
        "train_step_profile",
        "train_step_compile",
        "dvc_repro_noop",
        "dvc_repro_stages",
    }
    comparisons = ("gradcache_memory", "feature_cache_sweep", "train_throughput_cache", "eval_throughput_dedup",
                   "train_step_dtype", "eval_feature_cache", "train_step_compile")  # fmt: skip
    for name in comparisons:
        r_ = res[name]
        assert r_["status"] == "measured" and r_["optimised"]["median"] > 0 and r_["baseline"]["median"] > 0
        assert r_["ratio"] == pytest.approx(r_["optimised"]["median"] / r_["baseline"]["median"])
    assert res["eval_throughput_dedup"]["scores_agree"] is True
    assert res["feature_cache_sweep"]["frozen_share_of_step"]["share"] > 0
    dedup = res["cell_dedup"]  # every study's reference cell is one: fewer distinct cells than trials
    assert 0 < dedup["distinct_cells"] < dedup["planned_trials"] and dedup["ratio"] < 1
    cost = res["answered_cell_minutes"]
    minutes = [x["minutes"] for x in cost["levers"]]
    assert len(minutes) == 6 and minutes[4] < minutes[0]  # the adopted levers together make a cell cheaper
    # the last row, torch.compile, scales the training part of the fifth by the compiled step's ratio; adopted
    # (in ratio_all_levers) where params.yaml's train.compile resolves to inductor, as the trials then train
    assert minutes[4] == pytest.approx(cost["parts"]["train"] + cost["parts"]["eval"])
    ratio = res["train_step_compile"]["ratio"]
    assert minutes[5] == pytest.approx(cost["parts"]["train"] * ratio + cost["parts"]["eval"])
    adopted = load_experiment("tiny", ["train.compile=" + yaml.safe_load(PARAMS.read_text())["train"]["compile"]])
    assert cost["levers"][5]["adopted"] is (adopted.train.compile == "inductor")
    last = minutes[5] if cost["levers"][5]["adopted"] else minutes[4]
    assert cost["ratio_all_levers"] == pytest.approx(last / minutes[0])
    assert ("not adopted" in r.stdout) is not cost["levers"][5]["adopted"]
    profile = res["train_step_profile"]  # the phases make up the step (quick: 2 timed steps, medians = means)
    assert sum(profile["phases_s"].values()) == pytest.approx(profile["step_s"], rel=0.05)
    assert all(v > 0 for v in profile["phase_share"].values()) and 0 <= profile["padding_share"] < 0.5
    assert res["train_step_compile"]["backend"] == "aot_eager"  # quick: graph capture without C++ code generation
    assert dedup["main_path_cells"] == 3  # the main path's virtue, global and crop runs are cells of the studies
    for name in res:
        assert name in r.stdout  # the table lists every benchmark
    assert not [p for p in tmp_path.iterdir() if p.name != "bench.json"]  # no temporary left beside it
