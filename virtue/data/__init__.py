"""Datasets: real-format readers and validation, visual prompts, the synthetic benchmark."""

from .corpus import corpus_texts
from .mmeb import mmeb_task_info, read_mmeb_eval, read_mmeb_train
from .scar import read_scar_eval, read_scar_train
from .scenes import read_scenes

__all__ = [
    "corpus_texts",
    "mmeb_task_info",
    "read_mmeb_eval",
    "read_mmeb_train",
    "read_scar_eval",
    "read_scar_train",
    "read_scenes",
]
