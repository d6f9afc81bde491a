"""Training machinery on the real tiny VIRTUE model (Qwen2-VL + SAM-2 presets with random weights)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from _fit_toy import SignalAt  # noqa: E402
from _tiny import encode_twice_through_cache, micro_pairs, tiny_experiment  # noqa: E402

from virtue.errors import UserError  # noqa: E402
from virtue.models import build_embedder  # noqa: E402
from virtue.numerics import close, relative_tolerance  # noqa: E402
from virtue.train.distributed import seed_everything  # noqa: E402
from virtue.train.gradcache import gradcache_backward  # noqa: E402
from virtue.train.loop import Encoder, TrainingInterrupted, _step_loss, fit  # noqa: E402
from virtue.train.loss import info_nce  # noqa: E402
from virtue.train.sampler import Batch  # noqa: E402


def _build(cfg):
    seed_everything(cfg.train.seed)  # as train() does: the adapters' init draws from the global generator
    return build_embedder(cfg.model, seed=cfg.train.seed)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _loss(q, t):
    b = q.shape[0]
    return info_nce(q, t[:b], t[b:].view(b, 1, -1), temperature=0.05)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_gradcache_equals_plain_on_tiny_virtue(tmp_path, dropout):
    cfg = tiny_experiment(tmp_path, f"model.adapter.dropout={dropout}")
    embedder, processor = _build(cfg)
    embedder.train()
    pairs = micro_pairs(tmp_path / "img", n=6)
    queries, targets = [p.query for p in pairs], [p.positive for p in pairs] + [p.negatives[0] for p in pairs]
    enc = Encoder(embedder, processor, "cpu", None)
    q_chunks = [enc.prepare(queries[i : i + 2]) for i in range(0, 6, 2)]
    t_chunks = [enc.prepare(targets[i : i + 4]) for i in range(0, 12, 4)]

    torch.manual_seed(7)
    if dropout:  # dropout: the reference draws its masks chunk by chunk, as GradCache must replay them
        q = torch.cat([enc.forward(c) for c in q_chunks])
        t = torch.cat([enc.forward(c) for c in t_chunks])
    else:  # no dropout: the reference is one forward over the whole batch
        q, t = enc.forward(enc.prepare(queries)), enc.forward(enc.prepare(targets))
    plain = _loss(q, t)
    plain.backward()
    ref = _grads(embedder)
    embedder.zero_grad()

    torch.manual_seed(7)
    loss = gradcache_backward([(enc.forward, q_chunks), (enc.forward, t_chunks)], _loss)
    got = _grads(embedder)
    # chunks are other batch shapes: equal within the rounding of the backbones' dtype (bfloat16 in tiny)
    dtype = getattr(torch, cfg.model.dtype)
    assert abs(loss.item() - plain.item()) <= relative_tolerance(dtype) * abs(plain.item())
    assert ref.keys() == got.keys() and any("connector" in k for k in ref) and any("lora" in k for k in ref)
    for k in ref:
        assert close(got[k], ref[k], dtype), (k, (got[k] - ref[k]).norm() / ref[k].norm())


@pytest.mark.parametrize("variant", ["virtue", "global", "crop"])
def test_cached_equals_uncached_embeddings(tmp_path, variant):
    cfg = tiny_experiment(tmp_path, f"model.variant={variant}")
    ref, out, prepared, cache, n = encode_twice_through_cache(cfg, tmp_path)
    assert cache.hits == n - 1  # every image row; the text-only row is not cached
    inputs = prepared[0]
    assert inputs.pixel_values is None and inputs.sam_pixels is None  # a cache hit decodes no image
    assert inputs.image_grid_thw.tolist() == [[1, 12, 12]] * (n - 1)  # 96 px / patch 8, as with pixels
    assert torch.equal(out, ref)


def test_fit_resume_identity_and_shape_check(tmp_path):
    """4 steps uninterrupted == SIGTERM after step 3, resume to 4 (bit-identical); a checkpoint of another
    connector shape is refused with a UserError."""
    pairs = micro_pairs(tmp_path / "img", n=8)
    cfg = tiny_experiment(tmp_path, "model.adapter.dropout=0.1")
    ref = fit(*_build(cfg), pairs, cfg, tmp_path / "ref")
    with pytest.raises(TrainingInterrupted):
        fit(*_build(cfg), pairs, cfg, tmp_path / "cut", tracker=SignalAt(3, signal.SIGTERM))
    fit(*_build(cfg), pairs, cfg, tmp_path / "cut")  # resume: auto, from step 3 to 4
    a, b = load_file(str(ref / "trainable.safetensors")), load_file(str(tmp_path / "cut" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    other = tiny_experiment(tmp_path, "model.seg_tokens=4")
    with pytest.raises(UserError, match="another config"):  # the folder holds a run of seg_tokens 16
        fit(*_build(other), pairs, other, tmp_path / "cut")
    ckpt = tmp_path / "cut" / "checkpoints" / "step-00000004"
    other = tiny_experiment(tmp_path, "model.seg_tokens=4", f"train.resume={ckpt}")
    with pytest.raises(UserError, match="another model shape"):  # a checkpoint named explicitly: its shapes
        fit(*_build(other), pairs, other, tmp_path / "new")


def _micro_batch(pairs) -> Batch:
    return Batch(
        [p.query for p in pairs], [p.positive for p in pairs], [n for p in pairs for n in p.negatives], "micro"
    )


def test_the_loops_gradcache_step_equals_plain_on_tiny_virtue(tmp_path):
    """The training loop's GradCache branch (frozen features computed once per chunk, pixels dropped) gives
    the gradients of one plain forward over the batch."""
    cfg = tiny_experiment(tmp_path, "train.batch_size=8")
    embedder, processor = _build(cfg)
    embedder.train()
    enc = Encoder(embedder, processor, "cpu", None)
    batch = _micro_batch(micro_pairs(tmp_path / "img", n=8))
    plain = _step_loss(enc, batch, cfg.train.model_copy(update={"gradcache_chunk": 0}))
    ref = _grads(embedder)
    embedder.zero_grad()
    loss = _step_loss(enc, batch, cfg.train.model_copy(update={"gradcache_chunk": 3}))
    got = _grads(embedder)
    dtype = getattr(torch, cfg.model.dtype)
    assert abs(loss.item() - plain.item()) <= relative_tolerance(dtype) * abs(plain.item())
    assert ref.keys() == got.keys() and any("connector" in k for k in ref)
    for k in ref:
        assert close(got[k], ref[k], dtype), (k, (got[k] - ref[k]).norm() / ref[k].norm())


def test_a_gradcache_step_holds_features_not_pixels(tmp_path):
    """prepare(features=True) returns an image chunk's frozen features and no pixels; a text-only chunk is
    left for the forward (its features are zeros). So a GradCache step's peak grows by features, not pixels:
    16x the batch in chunks of 2 stays within 1.4x the peak of one chunk's batch (1.22x measured; 1.72x when
    every chunk's pixels were held until the second pass)."""
    from virtue.bench.memory import step_peak_bytes

    cfg = tiny_experiment(tmp_path)
    embedder, processor = _build(cfg)
    embedder.train()
    enc = Encoder(embedder, processor, "cpu", None)
    pairs = micro_pairs(tmp_path / "img", n=32)
    inputs, frozen = enc.prepare([p.query for p in pairs[:2]], features=True)
    assert inputs.pixel_values is None and inputs.sam_pixels is None
    with torch.no_grad():
        expected = embedder.frozen_features(processor([p.query for p in pairs[:2]]))
    assert frozen.keys() == expected.keys() and all(torch.equal(frozen[k], expected[k]) for k in expected)
    assert enc.prepare([p.positive for p in pairs[:2]], features=True)[1] is None

    chunked2 = cfg.train.model_copy(update={"gradcache_chunk": 2})
    step_peak_bytes(enc, _micro_batch(pairs[:2]), chunked2)  # warm-up: lazy initialisations stay out
    small = step_peak_bytes(enc, _micro_batch(pairs[:2]), chunked2)
    big = step_peak_bytes(enc, _micro_batch(pairs), chunked2)
    assert big <= 1.4 * small, (big, small)
