"""Evaluation under torchrun: 2 gloo ranks share the encoding and give the numbers of one process; rank 0
alone writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from _eval_worker import LONE, micro_config, sides_json, word_queries  # noqa: E402

from virtue.eval.encode import embed_sides  # noqa: E402
from virtue.eval.run import evaluate, run_protocols  # noqa: E402


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    from virtue.data.synth.build import synthesize

    (tmp_path / "experiments").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    shutil.copy(ROOT / "experiments" / "tiny.yaml", tmp_path / "experiments" / "tiny.yaml")
    monkeypatch.setenv("VIRTUE_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    synthesize(micro_config().data, tmp_path, progress=False)
    return tmp_path


@pytest.mark.slow
def test_two_gloo_ranks_evaluate_as_one_process(workspace):
    out = workspace / "two"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two = subprocess.Popen([*cmd, str(HERE / "_eval_worker.py"), str(out)], env=env, stderr=subprocess.PIPE, text=True)
    try:  # the one-process references meanwhile
        enc, scar, mmeb, tasks = word_queries()
        words = run_protocols(enc, batch_size=2, out_dir=workspace / "one", scar=scar, mmeb=mmeb, mmeb_tasks=tasks)
        model = evaluate(micro_config(), None, out_dir=workspace / "one-model")
    finally:
        _, stderr = two.communicate()
    assert two.returncode == 0, stderr[-3000:]

    # the word encoder: each rank encoded its own share of the distinct sides, the shares make up the whole
    ranks = [json.loads((out / f"words-rank{r}.json").read_text()) for r in (0, 1)]
    shares = [{tuple(s) for s in r["encoded"]} for r in ranks]
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == {tuple(s) for s in sides_json(enc.encoded)}
    assert all(len(share) >= len(enc.encoded) // 2 for share in shares)
    assert [r["metrics"] for r in ranks] == [json.loads(json.dumps(words))] * 2  # every rank gets the metrics
    assert (out / "words" / "rank0" / "metrics.json").read_bytes() == (workspace / "one" / "metrics.json").read_bytes()
    assert not (out / "words" / "rank1").exists()  # rank 1 writes nothing
    _, lone = embed_sides([LONE], word_queries()[0], batch_size=4, desc="")
    assert [r["lone"] for r in ranks] == [lone.tolist()] * 2  # a rank with nothing to encode still gets the rows

    # the real tiny model through the eval entry point: the same numbers to the bit, rank 0's outputs only
    ranks = [json.loads((out / f"model-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["metrics"] for r in ranks] == [json.loads(json.dumps(model))] * 2
    assert all(r["group_left"] for r in ranks)  # the group evaluate joined is gone when it returns
    for name in ("metrics.json", "predictions.parquet", "scar/relation_pred.jsonl"):
        assert (out / "model" / "rank0" / name).read_bytes() == (workspace / "one-model" / name).read_bytes(), name
    assert not (out / "model" / "rank1").exists()
