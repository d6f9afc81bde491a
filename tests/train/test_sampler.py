"""The batch sampler: one source per batch, every pair once per epoch, a pure function of (seed, step)."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

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


def _uneven(tmp_path):
    """Three sources of very different sizes: 50, 10 and 2 full batches of 8."""
    sizes = {"big": 400, "mid": 80, "small": 16}
    return [p for src, n in sizes.items() for p in toy_pairs(tmp_path / src, n=n, sources=(src,), negatives=2)]


def test_uniform_mixing_draws_each_source_equally_whatever_its_size(tmp_path):
    pairs = _uneven(tmp_path)
    steps = 3000
    s = SourceBatchSampler(pairs, 8, seed=0, mixing="uniform")
    sources = [pairs[s.indices(t)[0]].source for t in range(steps)]
    bound = 5 * (steps * (1 / 3) * (2 / 3)) ** 0.5  # five binomial standard deviations
    for src in ("big", "mid", "small"):
        assert abs(sources.count(src) - steps / 3) < bound, (src, sources.count(src))
    for t in range(40):  # one source per batch, a full batch of distinct pairs
        idx = s.indices(t)
        assert len(idx) == len(set(idx.tolist())) == 8 and len({pairs[i].source for i in idx}) == 1
    small = [s.indices(t) for t in range(steps) if sources[t] == "small"]
    for e in range(3):  # each of the small source's own epochs shows each of its 16 pairs once
        assert sorted(int(i) for b in small[2 * e : 2 * e + 2] for i in b) == sorted(
            i for i, p in enumerate(pairs) if p.source == "small"
        )
    by_size = SourceBatchSampler(pairs, 8, seed=0)  # the default mixes by size: "small" is 2 of 62 batches
    sized = [pairs[by_size.indices(t)[0]].source for t in range(62 * 10)]
    assert sized.count("small") == 20 and sized.count("big") == 500
    weighted = SourceBatchSampler(pairs, 8, seed=0, mixing="uniform", weights={"big": 0.5})
    share = [pairs[weighted.indices(t)[0]].source for t in range(steps)].count("big") / steps
    assert abs(share - 0.2) < 5 * (0.2 * 0.8 / steps) ** 0.5  # weight 0.5 against 1 and 1


def test_uniform_mixing_is_a_function_of_seed_and_step(tmp_path):
    pairs = _uneven(tmp_path)
    a = SourceBatchSampler(pairs, 8, seed=3, hard_negatives=2, mixing="uniform")
    in_order = {t: a.batch(t) for t in range(2100)}  # across the draw blocks of 1024 steps
    b = SourceBatchSampler(pairs, 8, seed=3, hard_negatives=2, mixing="uniform")
    for t in (2099, 7, 1024, 1023, 0, 1500):  # any order, e.g. after a resume
        assert b.batch(t) == in_order[t]
        parts = [b.batch(t, rank=r, world_size=4) for r in range(4)]
        assert [q for p in parts for q in p.queries] == in_order[t].queries
        assert [n for p in parts for n in p.negatives] == in_order[t].negatives
    other = SourceBatchSampler(pairs, 8, seed=4, mixing="uniform")
    assert [other.indices(t).tolist() for t in range(5)] != [a.indices(t).tolist() for t in range(5)]
    with pytest.raises(UserError, match="source_mixing"):
        SourceBatchSampler(pairs, 8, seed=0, mixing="random")


def test_fit_mixes_sources_as_train_source_mixing_says(tmp_path):
    from _fit_toy import run_toy
    from safetensors.torch import load_file

    def weights(run):
        return load_file(str(run / "trainable.safetensors"))

    opts = {"steps": 2, "warmup_steps": 0, "checkpoint_every": 0}
    uniform = weights(run_toy(tmp_path / "uniform", tmp_path, source_mixing="uniform", **opts))
    by_size = weights(run_toy(tmp_path / "size", tmp_path, **opts))
    assert any(not torch.equal(uniform[k], by_size[k]) for k in uniform)  # other batches: the setting reaches fit


def test_the_cap_keeps_the_first_rows_of_each_source(tmp_path):
    from virtue.train.sampler import first_rows_per_source

    pairs = toy_pairs(tmp_path, n=30, sources=("a", "b", "c"))  # 10 each, interleaved a b c a b c ...
    pairs += toy_pairs(tmp_path / "d", n=3, sources=("d",))
    kept = first_rows_per_source(pairs, 4)
    assert {s: sum(p.source == s for p in kept) for s in "abcd"} == {"a": 4, "b": 4, "c": 4, "d": 3}
    assert kept == [p for p in pairs if p.source == "d" or int(p.positive.text.split()[2]) < 12]  # reading order
    assert first_rows_per_source(pairs, 4) == kept and first_rows_per_source(pairs, None) == pairs


def test_train_max_rows_per_source_caps_the_loaded_data(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from virtue.config import load_experiment
    from virtue.train.loop import load_train_data

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    for task, n in (("Big", 7), ("Small", 2)):
        rows = [{"qry": f"{task} {i}", "qry_image_path": "a.png", "pos_text": f"{i}", "pos_image_path": ""}
                for i in range(n)]  # fmt: skip
        (tmp_path / "mmeb" / "train").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mmeb" / "train" / f"{task}.parquet")
    over = [f"data.mmeb_dir={tmp_path / 'mmeb'}", f"data.image_root={tmp_path}", "train.source=mmeb"]
    pairs, _ = load_train_data(load_experiment("tiny", [*over, "train.max_rows_per_source=3"]))
    assert [p.query.text for p in pairs] == ["Big 0", "Big 1", "Big 2", "Small 0", "Small 1"]
    assert len(load_train_data(load_experiment("tiny", over))[0]) == 9  # the default keeps every row
    paper = load_experiment("paper-7b").train
    assert (paper.source_mixing, paper.max_rows_per_source) == ("uniform", 100000)  # as the release
