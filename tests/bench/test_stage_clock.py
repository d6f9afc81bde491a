"""The stage clock: a `virtue` command that DVC runs as a stage records its wall time; `virtue bench` reads
the records before guessing from output modification times."""

from __future__ import annotations

import json
import os

from virtue.bench.pipeline import stage_minutes
from virtue.cli.stage_clock import log_path, read_stage_times


def test_a_stage_command_records_its_time_once_and_failures_do_not_count(tmp_path, run_cli):
    env = {"DVC_STAGE": "synth", "DVC_ROOT": str(tmp_path)}
    assert run_cli("config", "show", "tiny", env=env).returncode == 0
    bad = run_cli("config", "show", "no-such-experiment", env={**env, "DVC_STAGE": "train"})
    assert bad.returncode == 2
    # a command a stage starts in turn (a trial of a sweep stage) inherits the marker and records nothing
    assert run_cli("config", "show", "tiny", env={**env, "VIRTUE_STAGE_CLOCKED": "synth"}).returncode == 0
    records = [json.loads(line) for line in log_path(tmp_path).read_text().splitlines()]
    assert [(r["stage"], r["exit"]) for r in records] == [("synth", 0), ("train", 2)]
    assert records[0]["seconds"] > 0
    assert abs(records[0]["seconds"] - (records[0]["end"] - records[0]["start"])) <= 0.002  # each rounded to ms
    assert set(read_stage_times(tmp_path)) == {"synth"}  # the failed stage's record is not a stage time
    assert run_cli("config", "show", "tiny", env={"DVC_ROOT": str(tmp_path)}).returncode == 0  # not a stage
    assert len(log_path(tmp_path).read_text().splitlines()) == 2


def _lock(root, stages):
    lock = {"schema": "2.0", "stages": {s: {"cmd": "x", "outs": [{"path": f"out/{s}"}]} for s in stages}}
    (root / "dvc.lock").write_text(json.dumps(lock))  # JSON is YAML
    (root / "out").mkdir()
    for i, s in enumerate(stages):
        (root / "out" / s).write_text(s)
        os.utime(root / "out" / s, (1000.0 + 60 * i, 1000.0 + 60 * i))  # a minute apart


def test_stage_minutes_take_the_clock_and_estimate_only_what_it_lacks(tmp_path):
    _lock(tmp_path, ["synth", "pretrain", "report"])
    log_path(tmp_path).parent.mkdir()
    rec = {"stage": "pretrain", "exit": 0, "start": 0.0, "end": 1060.0, "seconds": 300.0}
    log_path(tmp_path).write_text(json.dumps(rec) + "\nnot json\n")
    got = stage_minutes(tmp_path)
    assert got["status"] == "estimated" and got["total_minutes"] is None
    assert got["minutes"] == {"synth": None, "pretrain": 5.0, "report": 1.0}
    assert got["source"] == {"synth": "mtime", "pretrain": "clock", "report": "mtime"}

    with log_path(tmp_path).open("a") as f:
        for s, secs in (("synth", 30.0), ("report", 6.0)):
            f.write(json.dumps({"stage": s, "exit": 0, "start": 0.0, "end": 2000.0, "seconds": secs}) + "\n")
    got = stage_minutes(tmp_path)
    assert got["status"] == "measured" and got["minutes"] == {"synth": 0.5, "pretrain": 5.0, "report": 0.1}
    assert got["total_minutes"] == 5.6


def test_a_cmd_of_several_commands_sums_them_and_a_rerun_replaces_them(tmp_path):
    log_path(tmp_path).parent.mkdir()
    recs = [
        {"stage": "a", "exit": 0, "ppid": 7, "start": 0.0, "end": 10.0, "seconds": 10.0},
        {"stage": "a", "exit": 0, "ppid": 7, "start": 11.0, "end": 31.0, "seconds": 20.0},
        {"stage": "b", "exit": 0, "ppid": 8, "start": 40.0, "end": 50.0, "seconds": 10.0},
        {"stage": "b", "exit": 0, "ppid": 9, "start": 60.0, "end": 65.0, "seconds": 5.0},  # rerun of b
    ]
    log_path(tmp_path).write_text("".join(json.dumps(r) + "\n" for r in recs))
    got = read_stage_times(tmp_path)
    assert (got["a"]["seconds"], got["a"]["start"], got["a"]["end"], got["a"]["commands"]) == (30.0, 0.0, 31.0, 2)
    assert (got["b"]["seconds"], got["b"]["commands"]) == (5.0, 1)
