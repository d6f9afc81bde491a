"""Typed experiment configs: the schema (one module per section) and the loader."""

from .load import flatten, load_experiment, load_resolved, to_yaml, with_overrides, write_resolved
from .schema import ExperimentConfig

__all__ = [
    "ExperimentConfig",
    "flatten",
    "load_experiment",
    "load_resolved",
    "to_yaml",
    "with_overrides",
    "write_resolved",
]
