"""The closed vocabulary of the synthetic world, and the one caption grammar (render + parse).

Scenes are (sky, ground) pairs. Every sky material appears in 4 scenes and every ground material in 4, so a
patch of background (which lies in the sky or on the ground, never both: objects never cross the horizon)
narrows the scene to 4 of 16; only the whole image (both halves) tells which."""

from __future__ import annotations

import re
from dataclasses import dataclass

SHAPES = ("circle", "square", "triangle", "diamond", "star", "ring", "cross", "hexagon")
COLOURS = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 230, 20),
    "green": (20, 190, 40),
    "cyan": (0, 220, 230),
    "blue": (20, 50, 230),
    "purple": (150, 40, 200),
    "pink": (255, 105, 190),
}
SIZES = ("small", "medium", "large")
SIZE_RANGE = {"small": (0.13, 0.17), "medium": (0.21, 0.26), "large": (0.30, 0.35)}  # of the image side
SKIES = {"sunny": (140, 195, 240), "dusky": (205, 150, 135), "night": (30, 35, 80), "cloudy": (160, 160, 165)}
GROUNDS = {"meadow": (105, 140, 75), "desert": (205, 180, 130), "snowy": (232, 232, 238), "marsh": (60, 110, 110)}
SCENES = tuple(f"{s} {g}" for s in SKIES for g in GROUNDS)  # "sunny meadow", ...
# (colour, shape) pairs that appear only in MMEB-synth's out-of-distribution tasks: every colour and every
# shape once, so an OOD object is a new COMBINATION of known words, never a new word.
HELD_OUT = frozenset((c, SHAPES[(3 * i + 1) % len(SHAPES)]) for i, c in enumerate(COLOURS))
PREDICATES = ("left of", "right of", "above", "below")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def scene_parts(scene: str) -> tuple[str, str]:
    sky, ground = scene.split(" ")
    return sky, ground


@dataclass(frozen=True, order=True)
class Desc:
    """What the captions say about one object."""

    size: str
    colour: str
    shape: str

    def text(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Caption:
    """The three elements a distractor may change: the object, the relation (predicate + reference), the scene."""

    obj: Desc
    pred: str
    ref: Desc
    scene: str

    def text(self) -> str:
        return f"a {self.obj.text()} {self.pred} a {self.ref.text()} in a {self.scene} scene"

    def elements(self) -> tuple:
        return (self.obj, (self.pred, self.ref), self.scene)


_WORD = {"size": "|".join(SIZES), "colour": "|".join(COLOURS), "shape": "|".join(SHAPES)}
_DESC = rf"({_WORD['size']}) ({_WORD['colour']}) ({_WORD['shape']})"
_CAPTION = re.compile(
    rf"^a {_DESC} ({'|'.join(PREDICATES)}) a {_DESC} in a ({'|'.join(SKIES)}) ({'|'.join(GROUNDS)}) scene$"
)


def parse_caption(text: str) -> Caption | None:
    """The inverse of Caption.text; None for text outside the grammar (e.g. a real SCaR caption)."""
    m = _CAPTION.match(text)
    if not m:
        return None
    g = m.groups()
    return Caption(Desc(*g[0:3]), g[3], Desc(*g[4:7]), f"{g[7]} {g[8]}")
