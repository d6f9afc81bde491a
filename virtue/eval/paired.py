"""Paired comparisons of two configurations on the same evaluation queries.

Both configurations answered the same queries, so their difference is measured query by query: a query
that both get right (or both wrong) says nothing about the difference, which makes a paired interval far
narrower than two separate ones. Two sources of uncertainty are covered:
- query sampling: a paired bootstrap over queries, stratified by subset/task (the benchmarks' overall
  metric is the unweighted mean of their subsets or tasks, so each stratum is resampled within itself);
- training-seed variance: the variance of the metric between seeds of one configuration, pooled over
  every configuration trained with more than one seed (they share one variance: only the seed differs),
  scaled by 1/n_seeds for each side.
The two add (the bootstrap sees the seed-averaged outcomes, the seed term the spread of whole runs; the
small part of seed noise that both contain is counted twice, which widens the interval). The interval is
delta +- t * se, with t from Welch-Satterthwaite's degrees of freedom: few seeds, wider interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VERDICTS = ("better", "worse", "no difference at this resolution")


def macro_mean(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Unweighted mean over strata of the per-stratum means; values [..., Q], strata [Q] ints -> [...]."""
    means = [values[..., strata == k].mean(axis=-1) for k in np.unique(strata)]
    return np.mean(means, axis=0)


def seed_spread(runs: Sequence[np.ndarray], strata: np.ndarray) -> tuple[float, int]:
    """Pooled variance of the metric between seeds (and its degrees of freedom), from the configurations
    given as [S, Q] per-query outcomes; configurations with one seed contribute nothing."""
    ss, df = 0.0, 0
    for r in runs:
        r = np.asarray(r, np.float64)
        if r.shape[0] < 2:
            continue
        m = macro_mean(r, strata)  # [S]
        ss += float(((m - m.mean()) ** 2).sum())
        df += r.shape[0] - 1
    return (ss / df if df else 0.0), df


@dataclass(frozen=True)
class Comparison:
    delta: float  # metric(cell) - metric(reference), both averaged over their seeds
    low: float
    high: float
    se_query: float  # standard error from query sampling (paired bootstrap)
    se_seed: float  # standard error from seed variance
    df: float  # effective degrees of freedom of the interval
    verdict: str  # better | worse | no difference at this resolution (for the metric's direction)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_quantile(level: float, df: float) -> float:
    from scipy.stats import norm, t

    q = 0.5 + level / 2
    return float(norm.ppf(q) if not math.isfinite(df) else t.ppf(q, df))


def compare(
    cell: np.ndarray,
    reference: np.ndarray,
    strata: np.ndarray,
    *,
    seed_var: float = 0.0,
    seed_df: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
    maximize: bool = True,
    rng_seed: int = 0,
) -> Comparison:
    """cell [S1, Q] and reference [S2, Q]: per-query outcomes (e.g. hit@1 as 0/1) of each seed, the same
    queries in the same order; strata [Q]: subset/task index of each query."""
    a, b = np.atleast_2d(np.asarray(cell, np.float64)), np.atleast_2d(np.asarray(reference, np.float64))
    strata = np.asarray(strata)
    if a.shape[1] != b.shape[1] or a.shape[1] != strata.shape[0]:
        raise ValueError(f"the two configurations answered different queries ({a.shape[1]} vs {b.shape[1]})")
    d = a.mean(axis=0) - b.mean(axis=0)  # [Q] seed-averaged paired differences
    delta = float(macro_mean(d, strata))
    rng = np.random.default_rng(rng_seed)
    boot = np.zeros(n_boot)
    groups = [np.flatnonzero(strata == k) for k in np.unique(strata)]
    for ix in groups:  # stratified resampling: each stratum's mean from its own queries
        picks = ix[rng.integers(0, len(ix), (n_boot, len(ix)))]
        boot += d[picks].mean(axis=1)
    boot /= len(groups)
    se_q = float(boot.std(ddof=1)) if n_boot > 1 else 0.0
    se_s = math.sqrt(seed_var * (1 / a.shape[0] + 1 / b.shape[0])) if seed_var > 0 else 0.0
    se = math.hypot(se_q, se_s)
    # Welch-Satterthwaite: the query part has (practically) infinite degrees of freedom
    df = math.inf if se_s == 0 or seed_df == 0 else seed_df * (se / se_s) ** 4
    half = t_quantile(level, df) * se if se > 0 else 0.0
    low, high = delta - half, delta + half
    gain = delta if maximize else -delta
    resolved = low > 0 or high < 0
    verdict = VERDICTS[2] if not resolved else VERDICTS[0] if gain > 0 else VERDICTS[1]
    return Comparison(delta, low, high, se_q, se_s, df, verdict)
