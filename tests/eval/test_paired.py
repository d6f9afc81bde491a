"""The paired statistics every study reports with, on constructed cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from virtue.eval.paired import compare, macro_mean, seed_spread


def queries(n_per: int = 400, k: int = 5) -> np.ndarray:
    return np.repeat(np.arange(k), n_per)  # stratum (subset) of each query


def test_identical_predictions_give_an_interval_of_exactly_zero():
    strata = queries()
    rng = np.random.default_rng(0)
    runs = (rng.random((3, strata.size)) < 0.6).astype(float)  # 3 seeds, each its own predictions
    var, df = seed_spread([runs, runs], strata)
    c = compare(runs, runs, strata, seed_var=0.0, seed_df=df)
    assert (c.delta, c.low, c.high, c.se_query) == (0.0, 0.0, 0.0, 0.0)
    assert c.verdict == "no difference at this resolution"
    assert var > 0  # the seeds do differ; identical configurations still differ by exactly nothing


def test_a_known_shift_is_detected_and_its_size_is_inside_the_interval():
    strata = queries()
    rng = np.random.default_rng(1)
    ref = (rng.random((2, strata.size)) < 0.5).astype(float)
    cell = ref.copy()
    wrong = np.flatnonzero(ref[0] == 0)[::4]  # about an eighth of the queries, turned right in both seeds
    cell[:, wrong] = 1.0
    truth = float(macro_mean(cell.mean(0) - ref.mean(0), strata))
    c = compare(cell, ref, strata)
    assert c.delta == pytest.approx(truth) and c.low < truth < c.high
    assert c.verdict == "better" and c.low > 0 and c.half_width < 0.03
    assert compare(cell, ref, strata, maximize=False).verdict == "worse"  # a loss that went up
    assert compare(ref, cell, strata).verdict == "worse"


def test_seed_variance_widens_the_interval_and_few_seeds_widen_it_more():
    strata = queries()
    rng = np.random.default_rng(2)
    ref = (rng.random((2, strata.size)) < 0.5).astype(float)
    cell = (rng.random((2, strata.size)) < 0.5).astype(float)
    plain = compare(cell, ref, strata)
    many = compare(cell, ref, strata, seed_var=1e-4, seed_df=50)
    few = compare(cell, ref, strata, seed_var=1e-4, seed_df=2)
    assert plain.half_width < many.half_width < few.half_width
    assert many.se_seed == pytest.approx(np.sqrt(1e-4 * (1 / 2 + 1 / 2)))


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """Simulated configurations with known per-query success probabilities; seeds redraw the outcomes."""
    strata = queries(200)
    rng = np.random.default_rng(3)
    p_ref = rng.beta(2, 2, strata.size)
    p_cell = np.clip(p_ref + rng.normal(0.02, 0.1, strata.size), 0, 1)
    truth = float(macro_mean(p_cell - p_ref, strata))
    covered = 0
    sims = 200
    for s in range(sims):
        # new eval queries each time (query sampling) and new training seeds (outcome noise)
        ix = np.concatenate([rng.choice(np.flatnonzero(strata == k), 200) for k in range(5)])
        ref = (rng.random((2, ix.size)) < p_ref[ix]).astype(float)
        cell = (rng.random((2, ix.size)) < p_cell[ix]).astype(float)
        var, df = seed_spread([ref, cell], strata[ix])
        c = compare(cell, ref, strata[ix], seed_var=var, seed_df=df, n_boot=300, rng_seed=s)
        covered += c.low <= truth <= c.high
    assert 0.9 <= covered / sims <= 1.0


def test_different_queries_are_refused():
    with pytest.raises(ValueError, match="different queries"):
        compare(np.zeros((1, 10)), np.zeros((1, 9)), np.zeros(10, int))
