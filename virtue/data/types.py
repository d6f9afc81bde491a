"""The records that flow from data to models, training and evaluation. Readers (real SCaR/MMEB and the
synthetic sets, which share the schemas) produce them; processors and protocols consume them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .prompts import VisualPrompt


@dataclass(frozen=True)
class Side:
    """One side of a pair, as the embedder reads it: text, an optional image, an optional region.
    `text` carries instruction + content without any image placeholder; the processor places the image.
    prompt=None with an image means "no user prompt": the model falls back to its N-point grid."""

    text: str
    image: str | None = None  # absolute path of the image file
    prompt: VisualPrompt | None = None  # original-image pixels


@dataclass(frozen=True)
class TrainPair:
    query: Side
    positive: Side
    negatives: tuple[Side, ...] = ()  # hard negatives (e.g. SCaR distractors)
    source: str = ""  # dataset / subset: a batch is drawn from one source
    negative_kinds: tuple[str, ...] = ()  # per negative, when the data says: "object_in_image", "scene", ...


@dataclass(frozen=True)
class EvalQuery:
    query: Side
    candidates: tuple[Side, ...]  # index 0 is the ground truth
    task: str  # SCaR subset or MMEB task
    qid: str = ""  # stable id (file:row)
    candidate_kinds: tuple[str, ...] = field(default=())  # per candidate: "gt", "object_in_image", ...
