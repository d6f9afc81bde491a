"""The training loop on the toy embedder: determinism, interrupt-and-resume identity, checkpoints,
metrics, GradCache inside the loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _fit_toy import SignalAt, run_toy  # noqa: E402

from virtue.numerics import close  # noqa: E402
from virtue.train.checkpoint import latest_checkpoint  # noqa: E402
from virtue.train.loop import TrainingInterrupted  # noqa: E402


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "trainable.safetensors"))


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_config_and_seed_bit_identical(tmp_path):
    a = weights(run_toy(tmp_path / "a", tmp_path))
    b = weights(run_toy(tmp_path / "b", tmp_path))  # second run reads the warm feature cache
    assert_identical(a, b)
    c = weights(run_toy(tmp_path / "c", tmp_path, seed=1))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_run_folder_contents_and_loss_falls(tmp_path):
    run = run_toy(tmp_path / "r", tmp_path, steps=30, checkpoint_every=10, lr=3e-2)
    assert (run / "config.yaml").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert all({"loss", "lr", "samples_per_s"} <= r.keys() for r in rows)
    first, last = sum(r["loss"] for r in rows[:5]) / 5, sum(r["loss"] for r in rows[-5:]) / 5
    assert last < first
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step-00000010", "step-00000020", "step-00000030"]
    assert latest_checkpoint(run / "checkpoints").name == "step-00000030"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2])
@pytest.mark.parametrize("gradcache_chunk", [0, 3])
def test_interrupt_and_resume_identical(tmp_path, signum, gradcache_chunk):
    opts = {"steps": 7, "checkpoint_every": 0, "gradcache_chunk": gradcache_chunk}
    ref = weights(run_toy(tmp_path / "ref", tmp_path, **opts))
    before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted) as info:
        run_toy(tmp_path / "cut", tmp_path, tracker=SignalAt(3, signum), **opts)
    assert info.value.checkpoint.name == "step-00000003"
    assert not (tmp_path / "cut" / "trainable.safetensors").exists()
    assert signal.getsignal(signum) == before  # the loop's handler is gone again
    assert_identical(weights(run_toy(tmp_path / "cut", tmp_path, **opts)), ref)


def test_gradcache_in_loop_matches_plain(tmp_path):
    plain = weights(run_toy(tmp_path / "p", tmp_path, steps=3, gradcache_chunk=0))
    cached = weights(run_toy(tmp_path / "g", tmp_path, steps=3, gradcache_chunk=3))
    for k in plain:  # chunked forwards may round differently; the optimizer turns that into tiny changes
        assert close(cached[k], plain[k], torch.float32), k


def _script(run_dir: Path, work: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(HERE / "_fit_toy.py"), str(run_dir), str(work), *overrides]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)]), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_identical(tmp_path):
    """A killed process (no chance to save) resumes from its last periodic checkpoint."""
    opts = ("steps=400", "checkpoint_every=50", "batch_size=4")
    ref = subprocess.run(_script(tmp_path / "ref", tmp_path, *opts), env=_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen(_script(tmp_path / "cut", tmp_path, *opts), env=_env(), stderr=subprocess.PIPE)
    ckpts = tmp_path / "cut" / "checkpoints"
    deadline = time.time() + 120
    while latest_checkpoint(ckpts) is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    assert latest_checkpoint(ckpts) is not None
    again = subprocess.run(_script(tmp_path / "cut", tmp_path, *opts), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_identical(weights(tmp_path / "cut"), weights(tmp_path / "ref"))


def test_schedule_warmup_then_decay():
    from virtue.config.train import TrainConfig
    from virtue.train.loop import lr_factor

    tc = TrainConfig(steps=10, warmup_steps=4, schedule="linear")
    f = [lr_factor(s, tc) for s in range(10)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0 and f[9] == pytest.approx(1 / 6)
    assert all(a > b for a, b in zip(f[4:], f[5:], strict=False))
    cos = TrainConfig(steps=10, warmup_steps=0, schedule="cosine")
    assert lr_factor(0, cos) == 1.0 and lr_factor(5, cos) == pytest.approx(0.5)
    assert lr_factor(9, TrainConfig(steps=10, warmup_steps=2, schedule="constant")) == 1.0


def test_connector_has_its_own_learning_rate(tmp_path):
    import json as _json

    run = run_toy(tmp_path / "r", tmp_path, steps=3, connector_lr=0.5, checkpoint_every=0)
    groups = torch.load(run / "checkpoints" / "step-00000003" / "state.pt", weights_only=True)["optimizer"]
    lrs = sorted(g["initial_lr"] for g in groups["param_groups"])
    assert lrs == [1e-2, 0.5]
    assert _json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["lr"] == pytest.approx(1e-2 / 2)


def test_connector_warmup_holds_the_adapters_still():
    from virtue.config.train import TrainConfig
    from virtue.train.loop import _optimizer, _schedule

    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"connector": torch.nn.Linear(4, 4), "vlm": torch.nn.Linear(4, 4)})
    tc = TrainConfig(steps=10, warmup_steps=0, lr=1e-2, connector_warmup_steps=3, schedule="constant")
    opt = _optimizer(model, tc)
    sched = _schedule(opt, tc)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def step() -> None:
        loss = model["vlm"](model["connector"](torch.ones(2, 4))).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    for _ in range(3):
        step()
    now = model.state_dict()
    assert torch.equal(now["vlm.weight"], start["vlm.weight"])  # held still for 3 steps
    assert not torch.equal(now["connector.weight"], start["connector.weight"])
    step()
    assert not torch.equal(model.state_dict()["vlm.weight"], start["vlm.weight"])  # then it learns
