"""GradCache gives the gradients of the plain computation (within float32 rounding), dropout included."""

import torch
import torch.nn.functional as F
from torch import nn

from virtue.numerics import close, relative_tolerance
from virtue.train.gradcache import gradcache_backward
from virtue.train.loss import info_nce

TOL = relative_tolerance(torch.float32)


class Encoder(nn.Module):
    def __init__(self, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, 4))

    def forward(self, x):
        return F.normalize(self.net(x), dim=-1)


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def _loss(q, t, k=2):
    b = q.shape[0]
    return info_nce(q, t[:b], t[b:].view(b, k, -1), temperature=0.05, bidirectional=True)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 6, generator=g), torch.randn(8 + 16, 6, generator=g)


def test_equals_full_batch_without_dropout():
    torch.manual_seed(0)
    model = Encoder(dropout=0.0)
    xq, xt = _data()
    plain = _loss(model(xq), model(xt))
    plain.backward()
    ref = _grads(model)
    model.zero_grad()
    loss = gradcache_backward([(model, xq.split(3)), (model, xt.split(5))], _loss)
    assert abs(loss.item() - plain.item()) <= TOL * abs(plain.item())
    for a, b in zip(_grads(model), ref, strict=True):
        assert close(a, b, torch.float32)


def test_replays_dropout_masks():
    torch.manual_seed(0)
    model = Encoder(dropout=0.5)
    xq, xt = _data()
    chunks_q, chunks_t = xq.split(3), xt.split(5)

    torch.manual_seed(123)
    plain = _loss(torch.cat([model(c) for c in chunks_q]), torch.cat([model(c) for c in chunks_t]))
    plain.backward()
    ref = _grads(model)
    after_plain = torch.rand(1)

    model.zero_grad()
    torch.manual_seed(123)
    loss = gradcache_backward([(model, chunks_q), (model, chunks_t)], _loss)
    assert abs(loss.item() - plain.item()) <= TOL * abs(plain.item())
    for a, b in zip(_grads(model), ref, strict=True):
        assert close(a, b, torch.float32)
    assert torch.equal(torch.rand(1), after_plain)  # the RNG continues as after a plain step


def test_without_replay_dropout_would_differ():
    """Guards the test above: masks drawn afresh in the second pass give other gradients."""
    torch.manual_seed(0)
    model = Encoder(dropout=0.5)
    xq, xt = _data()
    torch.manual_seed(123)
    _loss(model(xq), model(xt)).backward()
    first = _grads(model)
    model.zero_grad()
    _loss(model(xq), model(xt)).backward()
    assert any(not close(a, b, torch.float32) for a, b in zip(_grads(model), first, strict=True))
