"""How far apart two computations of one quantity may lie when they differ only in rounding: another batch
shape or padding, chunked instead of whole, another CPU's kernels (AVX2, AVX-512, AMX block their sums
differently). Same code, same inputs, same machine and same shapes stay bit-identical; these bounds are for
everything else, derived from the compute dtype instead of measured on one processor.

Two sources of error, added up:
- rounding of results stored in the compute dtype: a few units of its machine epsilon, relative to the
  size of the quantity (bfloat16 keeps 8 bits: eps 7.8e-3; float32 eps 1.2e-7);
- float32 accumulation of long sums (matmuls accumulate in float32 even for bfloat16 inputs), which grows
  as sqrt(terms) * eps(float32) when the summation order changes.
Sizes are norms, not elements: a unit embedding compared as a whole vector, a gradient as a whole tensor.
Per element, values near zero would need an unbounded relative tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ULPS = 4  # rounding steps a value may differ by after a few layers of a network (measured: 0.6-1 on tiny)
REDUCTION = 1024  # terms in the long sums (hidden sizes 160-3584): sqrt -> 32


def eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def relative_tolerance(dtype: torch.dtype, *, reduction: int = REDUCTION) -> float:
    """Bound on |a - b| / |b| (norms) for two roundings of one quantity computed in `dtype`."""
    return ULPS * eps(dtype) + ULPS * math.sqrt(reduction) * eps(torch.float32)


def close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, *, rows: bool = False) -> bool:
    """Whether a and b agree within the rounding of `dtype`: ||a - b|| <= tol * ||b||, over the whole tensor,
    or with rows=True per row of a [N, D] matrix (each embedding on its own)."""
    if a.shape != b.shape:
        return False
    a, b = a.detach().double(), b.detach().double()
    tol = relative_tolerance(dtype)
    if rows:
        diff, size = (a - b).norm(dim=-1), b.norm(dim=-1)
        return bool((diff <= tol * size.clamp_min(torch.finfo(torch.float32).tiny)).all())
    return float((a - b).norm()) <= tol * max(float(b.norm()), torch.finfo(torch.float32).tiny)


def score_tolerance(dtype: torch.dtype) -> float:
    """Bound on the difference of one cosine similarity of unit embeddings computed twice: each side's
    embedding may move by relative_tolerance (its norm is 1), and |q.c - q'.c'| <= |q - q'| + |c - c'|."""
    return 2 * relative_tolerance(dtype)


def scores_agree(a: np.ndarray, b: np.ndarray, dtype: torch.dtype) -> bool:
    """Two computations of one query's candidate scores: every score within score_tolerance. That also fixes
    the ranking exactly where rounding cannot decide it: two candidates further apart than 2 * tolerance keep
    their order (their difference moves by at most 2 * tolerance); closer ones may swap."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and float(np.abs(a - b).max(initial=0.0)) <= score_tolerance(dtype)
