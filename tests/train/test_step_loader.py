"""train.num_workers: DataLoader workers prepare each step's inputs; the real tiny model ends with the same
weights, bit for bit, as when the training process prepares them itself, with and without the frozen-feature
cache and GradCache, and through an interrupt and resume. The workers leave Slurm's stop signals to the
training process."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from _fit_toy import SignalAt  # noqa: E402
from _tiny import micro_pairs, tiny_experiment  # noqa: E402

from virtue.models import build_embedder  # noqa: E402
from virtue.train.batches import StepBatches  # noqa: E402
from virtue.train.loop import TrainingInterrupted, fit  # noqa: E402
from virtue.train.sampler import SourceBatchSampler  # noqa: E402


def _run(tmp_path: Path, name: str, workers: int, *overrides: str, tracker=None) -> Path:
    cfg = tiny_experiment(
        tmp_path,
        f"train.num_workers={workers}",
        f"train.feature_cache_dir={tmp_path / 'cache' / name}",  # each run fills its own: the same hits and misses
        "model.adapter.dropout=0.1",
        *overrides,
    )
    torch.manual_seed(cfg.train.seed)
    embedder, processor = build_embedder(cfg.model, seed=cfg.train.seed)
    return fit(embedder, processor, micro_pairs(tmp_path / "img"), cfg, tmp_path / name, tracker=tracker)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "trainable.safetensors"))


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# 8 pairs in batches of 4: 2 steps per epoch, so 4 steps see every image twice (cache misses, then hits)
@pytest.mark.parametrize(("cache", "chunk"), [(False, 0), pytest.param(True, 2, marks=pytest.mark.slow)])
def test_workers_give_the_weights_of_the_training_process(tmp_path, cache, chunk):
    opts = (f"train.feature_cache={cache}", f"train.gradcache_chunk={chunk}")
    ref = _run(tmp_path, "inline", 0, *opts)
    loaded = _run(tmp_path, "workers", 2, *opts)
    _assert_identical(_weights(loaded), _weights(ref))
    rows = [json.loads(line) for line in (loaded / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["data_wait_s"] >= 0 for r in rows)
    if cache:
        assert len(list((tmp_path / "cache" / "workers").rglob("*.safetensors"))) == 8  # one per (image, box) query


class SignalEveryone(SignalAt):
    """After step k, the stop signal goes to the DataLoader workers and the training process, as Slurm signals
    every process of a job: sent by another process (torch's workers exit quietly on a SIGTERM from their
    parent, but die of one from anybody else)."""

    def log_metrics(self, metrics, step=None):
        if step == self.k:
            workers = [str(p.pid) for p in multiprocessing.active_children()]
            assert workers, "no worker processes"
            subprocess.run(["kill", f"-{int(self.signum)}", *workers], check=True)
            time.sleep(0.2)  # let them die, if they do, while this step is still running
        super().log_metrics(metrics, step)


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_interrupted_run_with_workers_resumes_to_the_uninterrupted_weights(tmp_path):
    ref = _run(tmp_path, "ref", 0)
    with pytest.raises(TrainingInterrupted) as info:
        _run(tmp_path, "cut", 2, tracker=SignalEveryone(3, signal.SIGTERM))
    assert info.value.checkpoint.name == "step-00000003"
    assert not multiprocessing.active_children()  # the workers were shut down
    _run(tmp_path, "cut", 1)  # resume: auto, from step 3 (fewer workers: the same run)
    _assert_identical(_weights(tmp_path / "cut"), _weights(ref))


def test_a_step_is_cut_into_the_chunks_the_loss_encodes(tmp_path):
    cfg = tiny_experiment(tmp_path)
    _, processor = build_embedder(cfg.model, meta=True)
    sampler = SourceBatchSampler(micro_pairs(tmp_path / "img", n=8), 4, seed=0, hard_negatives=1)
    whole = StepBatches(sampler, processor, chunk=0, process=True)[1]
    chunked = StepBatches(sampler, processor, chunk=3, rank=1, world_size=2)[1]
    assert [len(c.sides) for c in whole.queries] == [4] and [len(c.sides) for c in whole.targets] == [8]
    assert whole.targets[0].sides == whole.batch.positives + whole.batch.negatives
    assert len(whole.queries[0].processed) == 4 and whole.queries[0].processed.pixel_values is not None
    assert chunked.batch.queries == whole.batch.queries[2:]  # rank 1's half
    assert [len(c.sides) for c in chunked.targets] == [3, 1] and chunked.targets[0].processed is None
