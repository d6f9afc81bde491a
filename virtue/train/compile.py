"""train.compile: the LLM's decoder layers compiled for training, eager everywhere else.

Each layer's `forward` is replaced by a compiled one as an attribute of the layer itself, so the module tree,
parameter names and state dicts (checkpoints, trainable.safetensors) are those of the eager model. The
compiled functions are kept while eager: leaving and re-entering compiled mode (around an intermediate
evaluation) compiles nothing again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..config.machine import cpp_compiler
from ..errors import UserError


def decoder_layers(embedder: Any) -> torch.nn.ModuleList:
    """The Qwen2-VL language model's decoder layers (with their LoRA adapters, when adapted)."""
    return embedder.vlm.language_model.layers


class CompiledLayers:
    """Compiled forwards for every decoder layer of `embedder`. mode: train.compile resolved, a torch.compile
    backend (inductor; aot_eager for the same graph capture without C++ code generation) or off (then every
    method here is a no-op). Dynamic shapes: the steps' sequence lengths vary. Nothing compiles until the
    first call inside `active()`."""

    def __init__(self, embedder: Any, mode: str):
        inductor_on_cpu = mode == "inductor" and next(embedder.parameters()).device.type == "cpu"
        if inductor_on_cpu and cpp_compiler() is None:
            raise UserError(
                "train.compile: inductor needs a C++ compiler on CPU and none was found ($CXX, c++, "
                "g++, clang++): install one, or set train.compile=off (auto: off where none is found)"
            )
        self.layers = [] if mode == "off" else list(decoder_layers(embedder))
        self.compiled = [torch.compile(layer.forward, backend=mode, dynamic=True) for layer in self.layers]

    def _use(self, compiled: bool) -> None:
        for layer, forward in zip(self.layers, self.compiled, strict=True):
            if compiled:
                layer.forward = forward
            else:
                del layer.forward  # the instance attribute: the class's eager forward again

    @contextmanager
    def active(self) -> Iterator[CompiledLayers]:
        """Compiled inside the block, eager again when it ends, however it ends."""
        self._use(True)
        try:
            yield self
        finally:
            self._use(False)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Eager inside an `active()` block (fit's on_step evaluation), compiled again after."""
        self._use(False)
        try:
            yield
        finally:
            self._use(True)
