"""Caption heads: labels read a SCaR-grammar caption back element by element, and the heads can learn them
from caption embeddings."""

from __future__ import annotations

import torch

from virtue.data.synth.vocab import Caption, Desc
from virtue.train.pretrain_text import FIELD_CLASSES, FIELDS, caption_labels, labelled
from virtue.train.probes import CaptionHeads


def test_labels_name_each_element_of_the_caption():
    cap = Caption(Desc("small", "red", "circle"), "left of", Desc("large", "blue", "star"), "night desert")
    labels = caption_labels(cap.text())
    names = {f: classes[i] for (f, classes), i in zip(FIELDS.items(), labels, strict=True)}
    assert names == {
        "obj_size": "small",
        "obj_colour": "red",
        "obj_shape": "circle",
        "predicate": "left of",
        "ref_size": "large",
        "ref_colour": "blue",
        "ref_shape": "star",
        "sky": "night",
        "ground": "desert",
    }
    assert caption_labels("a night desert scene") is None
    rows, table = labelled(["a night desert scene", cap.text()])
    assert rows == [1] and table.tolist() == [labels]


def test_heads_learn_separable_embeddings():
    torch.manual_seed(0)
    labels = torch.stack([torch.randint(0, len(c), (64,)) for c in FIELDS.values()], dim=1)  # [64, F]
    codes = [torch.randn(len(c), 16) for c in FIELDS.values()]
    emb = sum(code[labels[:, k]] for k, code in enumerate(codes))  # [64, 16]: every field linearly present
    heads = CaptionHeads(16, FIELD_CLASSES)
    opt = torch.optim.Adam(heads.parameters(), lr=0.05)
    before = heads.loss(emb, labels).item()
    for _ in range(200):
        opt.zero_grad()
        heads.loss(emb, labels).backward()
        opt.step()
    assert heads.loss(emb, labels).item() < 0.2 * before
    assert min(heads.accuracy(emb, labels).values()) > 0.9
