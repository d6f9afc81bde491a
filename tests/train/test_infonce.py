"""InfoNCE: matches a direct reference formula; hard negatives and the reverse direction count."""

import math

import torch
import torch.nn.functional as F

from virtue.train.loss import info_nce


def _emb(*shape):
    return F.normalize(torch.randn(*shape), dim=-1)


def test_matches_reference_formula():
    torch.manual_seed(0)
    q, p = _emb(4, 8), _emb(4, 8)
    t = 0.05
    got = info_nce(q, p, temperature=t)
    ref = 0.0
    for i in range(4):
        s = [(q[i] @ p[j]).item() / t for j in range(4)]
        ref += -(s[i] - math.log(sum(math.exp(v) for v in s)))
    assert abs(got.item() - ref / 4) < 1e-5


def test_hard_negatives_are_candidates_of_every_query():
    torch.manual_seed(1)
    q, p, n = _emb(3, 8), _emb(3, 8), _emb(3, 2, 8)
    got = info_nce(q, p, n, temperature=0.1)
    cands = torch.cat([p, n.reshape(-1, 8)])
    ref = F.cross_entropy(q @ cands.T / 0.1, torch.arange(3))
    assert torch.allclose(got, ref)
    assert got > info_nce(q, p, temperature=0.1)  # more negatives, larger loss
    # a hard negative equal to the query's own positive makes that query maximally confused
    n2 = n.clone()
    n2[0, 0] = p[0]
    assert info_nce(q, p, n2, temperature=0.1) > got


def test_bidirectional_averages_both_directions():
    torch.manual_seed(2)
    q, p = _emb(5, 8), _emb(5, 8)
    one = info_nce(q, p, temperature=0.02)
    back = info_nce(p, q, temperature=0.02)
    both = info_nce(q, p, temperature=0.02, bidirectional=True)
    assert torch.allclose(both, (one + back) / 2)
    assert not torch.allclose(one, back)


def test_temperature_sharpens():
    q = F.normalize(torch.eye(4) + 0.3, dim=-1)
    assert info_nce(q, q, temperature=0.02) < info_nce(q, q, temperature=1.0)
