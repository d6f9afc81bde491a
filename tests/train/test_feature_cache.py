"""Frozen-feature cache: cached and uncached embeddings are equal, entries are reused, keys follow content."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _toy import ToyEmbedder, ToyProcessor, toy_pairs  # noqa: E402

from virtue.data.types import Side  # noqa: E402
from virtue.train.cache import FeatureCache  # noqa: E402
from virtue.train.loop import Encoder  # noqa: E402


def test_cached_equals_uncached_and_is_reused(tmp_path):
    torch.manual_seed(0)
    model = ToyEmbedder(dropout=0.0).eval()
    sides = [p.query for p in toy_pairs(tmp_path / "img", n=6)]
    cache = FeatureCache(tmp_path / "cache", model.frozen_fingerprint())
    plain = Encoder(model, ToyProcessor(), "cpu", None)
    cached = Encoder(model, ToyProcessor(), "cpu", cache)
    ref = plain.forward(plain.prepare(sides))
    first = cached.forward(cached.prepare(sides))  # computes and stores
    assert cache.misses == 6 and cache.hits == 0
    again = FeatureCache(tmp_path / "cache", model.frozen_fingerprint())  # another run or trial
    second = Encoder(model, ToyProcessor(), "cpu", again)
    out = second.forward(second.prepare(sides))
    assert again.hits == 6 and again.misses == 0
    assert torch.equal(first, ref) and torch.equal(out, ref)


def test_rows_without_image_are_zeros_and_not_stored(tmp_path):
    torch.manual_seed(0)
    model = ToyEmbedder(dropout=0.0).eval()
    sides = [p.query for p in toy_pairs(tmp_path / "img", n=3)] + [Side("text only")]
    cache = FeatureCache(tmp_path / "cache", model.frozen_fingerprint())
    enc = Encoder(model, ToyProcessor(), "cpu", cache)
    enc.prepare(sides)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 3
    _, frozen = enc.prepare(sides)  # all from disk
    _, fresh = Encoder(model, ToyProcessor(), "cpu", None).prepare(sides)
    assert cache.hits == 3 and torch.equal(frozen["vision"], model.frozen_features(ToyProcessor()(sides))["vision"])
    assert fresh is None
    assert enc.prepare([Side("only text"), Side("more text")])[1]["vision"].shape == (2, 16)


def test_key_follows_content_prompt_weights_and_settings(tmp_path):
    sides = [p.query for p in toy_pairs(tmp_path / "img", n=2)]
    c = FeatureCache(tmp_path, "fp")
    k = c.key(sides[0])
    assert FeatureCache(tmp_path, "fp2").key(sides[0]) != k
    Path(sides[0].image).write_bytes(b"changed image")
    assert c.key(sides[0]) != k


def test_flag_off_writes_nothing(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from _fit_toy import run_toy

    run_toy(tmp_path / "run", tmp_path, steps=2, feature_cache=False)
    assert not (tmp_path / "cache").exists()
    run_toy(tmp_path / "run2", tmp_path, steps=2, feature_cache=True)
    assert any((tmp_path / "cache").rglob("*.safetensors"))
