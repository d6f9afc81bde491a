"""train.init_from (the +SCaR-train stage: a finished run's weights, a fresh start, not a resume) on the real
tiny model, and train.grad_clip (global norm after averaging across ranks, logged before clipping)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _fit_toy import SignalAt, one_process_and_two_ranks, run_toy  # noqa: E402
from _tiny import micro_pairs, tiny_experiment  # noqa: E402

from virtue.models import build_embedder  # noqa: E402
from virtue.numerics import close, relative_tolerance  # noqa: E402
from virtue.train.distributed import seed_everything  # noqa: E402
from virtue.train.loop import TrainingInterrupted, fit  # noqa: E402


def _fit(tmp_path: Path, name: str, *overrides: str, tracker=None) -> Path:
    cfg = tiny_experiment(tmp_path, "model.adapter.dropout=0.1", *overrides)
    seed_everything(cfg.train.seed)
    embedder, processor = build_embedder(cfg.model, seed=cfg.train.seed)
    return fit(embedder, processor, micro_pairs(tmp_path / "img"), cfg, tmp_path / name, tracker=tracker)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "trainable.safetensors"))


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _state(run: Path, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step-{step:08d}" / "state.pt", weights_only=True)


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _differ(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_init_from_loads_weights_and_starts_at_step_0_with_a_fresh_optimizer(tmp_path):
    first = _fit(tmp_path, "first")  # 4 steps; linear decay leaves it at a third of the rate
    source = f"train.init_from={first}"

    zero = _fit(tmp_path, "zero", source, "train.steps=0")  # what the second stage starts from
    _assert_identical(_weights(zero), _weights(first))
    start = _state(zero, 0)
    assert start["optimizer"]["state"] == {} and start["scheduler"]["last_epoch"] == 0

    second = _fit(tmp_path, "second", source, "train.steps=2", "train.checkpoint_every=0")
    rows = _metrics(second)
    assert [r["step"] for r in rows] == [1, 2]
    lr = tiny_experiment(tmp_path).train.lr
    assert rows[0]["lr"] == pytest.approx(lr)  # warm-up's first rate (1 warm-up step), not the first run's last
    steps = {int(s["step"]) for s in _state(second, 2)["optimizer"]["state"].values()}
    assert steps == {2}  # Adam counts this run's 2 steps, not 4 + 2
    assert _differ(_weights(second), _weights(first))

    # interrupted, the second stage resumes from its own checkpoint, not from init_from's weights again
    with pytest.raises(TrainingInterrupted):
        _fit(tmp_path, "cut", source, "train.steps=2", "train.checkpoint_every=0", tracker=SignalAt(1, signal.SIGTERM))
    _fit(tmp_path, "cut", source, "train.steps=2", "train.checkpoint_every=0")
    _assert_identical(_weights(tmp_path / "cut"), _weights(second))


def test_clip_gradients_scales_to_the_global_norm_and_returns_it_before():
    from virtue.train.loop import clip_gradients

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert clip_gradients([a, b], None) is None and a.grad.tolist() == [3.0, 0.0]  # off: untouched
    assert clip_gradients([a, b], 10.0) == pytest.approx(5.0) and a.grad.tolist() == [3.0, 0.0]  # under the bound
    assert clip_gradients([a, b], 1.0) == pytest.approx(5.0)
    assert torch.cat([a.grad, b.grad]).norm().item() == pytest.approx(1.0)
    assert a.grad.tolist() == pytest.approx([0.6, 0.0]) and b.grad.tolist() == pytest.approx([0.8])


def test_grad_clip_in_the_loop(tmp_path):
    plain = run_toy(tmp_path / "plain", tmp_path, steps=3)
    loose = run_toy(tmp_path / "loose", tmp_path, steps=3, grad_clip=1e9)
    tight = run_toy(tmp_path / "tight", tmp_path, steps=3, grad_clip=1e-3)
    assert "grad_norm" not in _metrics(plain)[0]
    _assert_identical(_weights(loose), _weights(plain))  # a bound never reached changes nothing
    norms = [r["grad_norm"] for r in _metrics(tight)]
    assert len(norms) == 3 and norms[0] == _metrics(loose)[0]["grad_norm"] > 1e-3  # the norm before clipping
    assert _differ(_weights(tight), _weights(plain))


@pytest.mark.slow
def test_grad_clip_after_averaging_across_ranks(tmp_path):
    """2 gloo ranks clip the averaged gradient: the same pre-clip norms and weights as one process on the whole
    batch (a rank clipping its own shard's gradient would log that shard's norm)."""
    one_process_and_two_ranks(tmp_path, ["steps=3", "dropout=0.0", "grad_clip=0.01"])
    norms = [[r["grad_norm"] for r in _metrics(tmp_path / run)] for run in ("one", "two")]
    assert min(norms[0]) > 0.01  # every step clipped
    assert norms[1] == pytest.approx(norms[0], rel=relative_tolerance(torch.float32))
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        assert close(b[k], a[k], torch.float32), k
