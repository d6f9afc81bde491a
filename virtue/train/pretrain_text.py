"""The labels of the caption heads (probes.CaptionHeads): linear classifiers that read every element of a
SCaR-grammar caption (the object's size, colour and shape, the predicate, the reference's size, colour and
shape, the sky and the ground) back from the caption's embedding. Image-caption alignment alone lets the tiny
LLM embed a caption by its last few words, the scene, which tell most of a batch apart; the heads make the
embedding keep the rest (docs/research/pretraining.md, finding 7). With weight 0 they train on detached
embeddings: a probe."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..data.synth.vocab import COLOURS, GROUNDS, PREDICATES, SHAPES, SIZES, SKIES, parse_caption

FIELDS: dict[str, tuple[str, ...]] = {
    "obj_size": SIZES,
    "obj_colour": tuple(COLOURS),
    "obj_shape": SHAPES,
    "predicate": PREDICATES,
    "ref_size": SIZES,
    "ref_colour": tuple(COLOURS),
    "ref_shape": SHAPES,
    "sky": tuple(SKIES),
    "ground": tuple(GROUNDS),
}
FIELD_CLASSES: dict[str, int] = {name: len(classes) for name, classes in FIELDS.items()}  # CaptionHeads' widths


def caption_labels(text: str) -> list[int] | None:
    """Class ids of the caption's elements in FIELDS order; None outside SCaR-synth's grammar."""
    cap = parse_caption(text)
    if cap is None:
        return None
    sky, ground = cap.scene.split(" ")
    values = [*_desc(cap.obj), cap.pred, *_desc(cap.ref), sky, ground]
    return [classes.index(v) for classes, v in zip(FIELDS.values(), values, strict=True)]


def _desc(d) -> tuple[str, str, str]:
    return d.size, d.colour, d.shape


def labelled(texts: Sequence[str]) -> tuple[list[int], Tensor | None]:
    """Indices of the texts in the grammar and their labels [n, F] (None if there are none)."""
    rows = [(i, lab) for i, t in enumerate(texts) if (lab := caption_labels(t)) is not None]
    if not rows:
        return [], None
    return [i for i, _ in rows], torch.tensor([lab for _, lab in rows])
