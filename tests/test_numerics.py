"""The rounding bounds every numerical comparison in the tests (and the benchmark's agreement check) uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from virtue.numerics import close, relative_tolerance, score_tolerance, scores_agree


def unit_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rounding_to_the_dtype_is_within_tolerance_and_a_real_change_is_not(dtype):
    ref = unit_rows(8, 160)
    rounded = torch.nn.functional.normalize(ref.to(dtype).double(), dim=-1)  # one rounding of every element
    assert close(rounded, ref, dtype, rows=True) and close(rounded, ref, dtype)
    moved = ref.clone()
    moved[3] = unit_rows(1, 160, seed=1)[0]  # one embedding replaced: far beyond any rounding
    assert not close(moved, ref, dtype, rows=True) and not close(moved, ref, dtype)
    assert not close(ref[:4], ref, dtype)  # other shapes never agree


def test_tolerance_follows_the_dtype():
    assert relative_tolerance(torch.bfloat16) > 100 * relative_tolerance(torch.float32)
    assert relative_tolerance(torch.float32) < 1e-4  # float32 comparisons stay tight


def test_scores_agree_within_rounding_and_keep_the_order_of_separated_candidates():
    dtype = torch.bfloat16
    tol = score_tolerance(dtype)
    scores = np.array([0.9, 0.5, 0.1, -0.3])
    assert scores_agree(scores, scores, dtype)
    assert scores_agree(scores, scores + tol / 2, dtype)  # every score moved by rounding
    assert not scores_agree(scores, scores + [0, 0, 2 * tol, 0], dtype)  # one score moved further
    near = np.array([0.5, 0.5 + tol / 4, 0.1])
    assert scores_agree(near, near[[1, 0, 2]], dtype)  # a near-tie may swap: rounding
    far = np.array([0.5, 0.5 + 2.5 * tol])
    assert not scores_agree(far, far[::-1], dtype)  # separated candidates swapped: another ranking
    assert not scores_agree(scores, scores[:3], dtype)
