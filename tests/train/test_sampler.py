"""The batch sampler: one source per batch, every pair once per epoch, a pure function of (seed, step)."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _toy import toy_pairs  # noqa: E402

from virtue.errors import UserError  # noqa: E402
from virtue.train.sampler import SourceBatchSampler  # noqa: E402


def test_one_source_per_batch_and_each_pair_once_per_epoch(tmp_path):
    pairs = toy_pairs(tmp_path, n=40, sources=("a", "b"))  # 20 each -> 2 full batches of 8 per source
    s = SourceBatchSampler(pairs, batch_size=8, seed=0)
    assert s.batches_per_epoch == 4
    seen = []
    for step in range(4):
        idx = s.indices(step)
        assert len({pairs[i].source for i in idx}) == 1
        seen += list(idx)
    assert len(seen) == len(set(seen)) == 32
    assert sorted(seen) != sorted(s.indices(4).tolist() + s.indices(5).tolist() + seen[:16])  # epochs reshuffle


def test_deterministic_and_resumable(tmp_path):
    pairs = toy_pairs(tmp_path, n=40, sources=("a", "b"))
    a = SourceBatchSampler(pairs, 8, seed=3, hard_negatives=2)
    b = SourceBatchSampler(pairs, 8, seed=3, hard_negatives=2)
    late = [b.batch(s) for s in (9, 2, 5)]  # any order, e.g. after a resume
    assert [a.batch(s) for s in (9, 2, 5)] == late
    assert SourceBatchSampler(pairs, 8, seed=4).indices(0).tolist() != a.indices(0).tolist()


def test_rank_shards_make_the_global_batch(tmp_path):
    pairs = toy_pairs(tmp_path, n=40, sources=("a", "b"))
    s = SourceBatchSampler(pairs, 8, seed=0, hard_negatives=2)
    whole = s.batch(3)
    parts = [s.batch(3, rank=r, world_size=2) for r in range(2)]
    assert parts[0].queries + parts[1].queries == whole.queries
    assert parts[0].negatives + parts[1].negatives == whole.negatives
    assert len(whole.negatives) == 2 * len(whole.queries)
    with pytest.raises(UserError, match="divisible"):
        s.batch(0, rank=0, world_size=3)


def test_bad_settings_are_user_errors(tmp_path):
    pairs = toy_pairs(tmp_path, n=10, negatives=1)
    with pytest.raises(UserError, match="batch_size"):
        SourceBatchSampler(pairs, 64, seed=0)
    with pytest.raises(UserError, match="hard_negatives"):
        SourceBatchSampler(pairs, 4, seed=0, hard_negatives=2)


def test_a_source_without_distractors_gets_no_hard_negatives(tmp_path):
    with_negs = toy_pairs(tmp_path / "a", n=8, sources=("scar",), negatives=3)
    without = toy_pairs(tmp_path / "b", n=8, sources=("mmeb",), negatives=0)
    s = SourceBatchSampler([*with_negs, *without], 4, seed=0, hard_negatives=2)
    assert s.k_of == {"mmeb": 0, "scar": 2}
    for step in range(s.batches_per_epoch):
        batch = s.batch(step)
        assert len(batch.negatives) == (2 * 4 if batch.source == "scar" else 0)


def test_a_source_weight_keeps_its_share_of_batches_and_rotates_them(tmp_path):
    pairs = toy_pairs(tmp_path, n=128, sources=("scar", "mmeb"))  # 64 each -> 8 full batches of 8 per source
    s = SourceBatchSampler(pairs, 8, seed=0, weights={"mmeb": 0.25})
    assert s.batches_per_epoch == 8 + 2
    per_epoch = [[s.indices(e * 10 + i) for i in range(10)] for e in range(4)]
    for batches in per_epoch:
        assert sum(pairs[b[0]].source == "mmeb" for b in batches) == 2  # a quarter of MMEB's batches
        assert sum(pairs[b[0]].source == "scar" for b in batches) == 8  # all of SCaR's
    used = {int(i) for batches in per_epoch for b in batches if pairs[b[0]].source == "mmeb" for i in b}
    assert len(used) > 16  # other MMEB pairs in other epochs, not the same quarter again
    assert SourceBatchSampler(pairs, 8, seed=0).batches_per_epoch == 16
    with pytest.raises(UserError, match="unknown sources: other"):
        SourceBatchSampler(pairs, 8, seed=0, weights={"other": 0.5})


def test_hard_negatives_come_only_from_the_chosen_kinds(tmp_path):
    kinds = ("scene", "relation", "scene", "object_absent", "scene")
    pairs = [replace(p, negative_kinds=kinds) for p in toy_pairs(tmp_path, n=16, negatives=5)]
    s = SourceBatchSampler(pairs, 4, seed=0, hard_negatives=2, kinds=["relation", "object_absent"])
    allowed = {p.negatives[j].text for p in pairs for j in (1, 3)}
    drawn = [n.text for step in range(8) for n in s.batch(step).negatives]
    assert len(drawn) == 8 * 4 * 2 and set(drawn) <= allowed
    assert set(drawn) == allowed  # both allowed negatives of each query get drawn over two epochs
    everything = SourceBatchSampler(pairs, 4, seed=0, hard_negatives=2)
    assert {n.text for step in range(8) for n in everything.batch(step).negatives} - allowed  # scenes too
    with pytest.raises(UserError, match="has only 1 negatives of kind relation"):
        SourceBatchSampler(pairs, 4, seed=0, hard_negatives=2, kinds=["relation"])
    plain = toy_pairs(tmp_path, n=8)  # data without kinds (the real SCaR release): all negatives, and a warning
    with pytest.warns(UserWarning, match="no negative kinds in the data of a "):
        unkinded = SourceBatchSampler(plain, 4, seed=0, hard_negatives=2, kinds=["relation"])
    assert [n.text for n in unkinded.batch(0).negatives] == [
        n.text for n in SourceBatchSampler(plain, 4, 0, 2).batch(0).negatives
    ]
