"""The VIRTUE embedder: backbones, segmentation stream, connector, fusion through the LLM, baselines."""

from .build import build_embedder
from .embedder import Embedder, pool_last
from .processor import ModelInputs, Processor

__all__ = ["Embedder", "ModelInputs", "Processor", "build_embedder", "pool_last"]
