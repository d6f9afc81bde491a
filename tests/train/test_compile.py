"""train.compile: the decoder layers compiled for training on the real tiny model (random-weight presets)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from _fit_toy import SignalAt  # noqa: E402
from _tiny import micro_pairs, tiny_experiment  # noqa: E402

from virtue.config import load_experiment  # noqa: E402
from virtue.errors import TrainingInterrupted, UserError  # noqa: E402
from virtue.models import build_embedder  # noqa: E402
from virtue.train.compile import decoder_layers  # noqa: E402
from virtue.train.distributed import seed_everything  # noqa: E402
from virtue.train.loop import fit  # noqa: E402

needs_cxx = pytest.mark.skipif(shutil.which("c++") is None, reason="inductor needs a C++ compiler")


def _build(cfg):
    seed_everything(cfg.train.seed)
    return build_embedder(cfg.model, seed=cfg.train.seed)


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "trainable.safetensors"))


def test_auto_resolves_to_inductor_only_where_a_compiler_is_found(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert load_experiment("tiny", ["train.compile=auto"]).train.compile == "off"
    assert load_experiment("tiny").train.compile == "off"  # the schema's default: eager
    if shutil.which("c++"):
        monkeypatch.setenv("CXX", "c++")
        assert load_experiment("tiny", ["train.compile=auto"]).train.compile == "inductor"


def test_inductor_without_a_compiler_is_refused_before_the_run_folder_is_written(tmp_path, monkeypatch):
    cfg = tiny_experiment(tmp_path, "train.compile=inductor")
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(UserError, match="train.compile: inductor needs a C.. compiler"):
        fit(*_build(cfg), micro_pairs(tmp_path / "img"), cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@needs_cxx
@pytest.mark.slow  # compiles the tiny decoder (about 20 s a process on 2 cores)
def test_compiled_training_is_deterministic_resumable_and_close_to_eager(tmp_path):
    """Two compiled runs log the same losses and end with the same weights; a compiled run stopped after step 3
    and resumed ends where the uninterrupted one does; the on_step hook (an intermediate evaluation) and
    everything after fit see the eager layers; the losses stay within 2% of eager's."""
    pairs = micro_pairs(tmp_path / "img", n=8)
    cfg = tiny_experiment(tmp_path, "train.compile=inductor")
    eager_during_hook = []

    def hook(step, embedder, processor):
        eager_during_hook.append(all("forward" not in vars(layer) for layer in decoder_layers(embedder)))

    embedder, processor = _build(cfg)
    a = fit(embedder, processor, pairs, cfg, tmp_path / "a", on_step=hook)
    assert eager_during_hook == [True] * 4
    assert all("forward" not in vars(layer) for layer in decoder_layers(embedder))  # eager after fit
    b = fit(*_build(cfg), pairs, cfg, tmp_path / "b")
    assert _losses(a) == _losses(b)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    with pytest.raises(TrainingInterrupted):
        fit(*_build(cfg), pairs, cfg, tmp_path / "cut", tracker=SignalAt(3, signal.SIGTERM))
    cut = fit(*_build(cfg), pairs, cfg, tmp_path / "cut")  # resume: auto, from step 3 to 4
    wc = _weights(cut)
    assert wc.keys() == wa.keys() and all(torch.equal(wa[k], wc[k]) for k in wa)

    eager_cfg = tiny_experiment(tmp_path, "train.compile=off")
    eager = fit(*_build(eager_cfg), pairs, eager_cfg, tmp_path / "eager")
    assert _losses(a) == pytest.approx(_losses(eager), rel=0.02)
