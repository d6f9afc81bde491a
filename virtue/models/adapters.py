"""The freeze policy of the paper: SAM-2, the vision tower + merger and the token embeddings frozen; low-rank
adapters (LoRA or DoRA) on the LLM and the connector trained. The fallback regime (model.sam_trainable:
decoder, not the paper's) also trains SAM-2's prompt encoder and two-way transformer."""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model

from ..config.model import AdapterConfig
from ..errors import UserError
from .embedder import Embedder


def apply_freeze_policy(embedder: Embedder, adapter: AdapterConfig) -> None:
    embedder.requires_grad_(False)
    lm = embedder.vlm.language_model
    if adapter.kind != "none":
        names = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
        unknown = sorted(set(adapter.targets) - names)
        if unknown:
            raise UserError(f"model.adapter.targets: {', '.join(unknown)}: no such module in the LLM")
        config = LoraConfig(
            r=adapter.r,
            lora_alpha=adapter.alpha,
            lora_dropout=adapter.dropout,
            target_modules=list(adapter.targets),
            use_dora=adapter.kind == "dora",
            init_lora_weights="gaussian",
        )
        # Adapters go on the LLM only: the vision tower's modules share none of these names anyway.
        inject_adapter_in_model(config, lm)
        for name, p in lm.named_parameters():
            p.requires_grad_("lora_" in name)
    if embedder.connector is not None:
        embedder.connector.requires_grad_(True)
    if embedder.train_sam_decoder:
        for m in embedder.segmentation.decoder_modules():
            m.requires_grad_(True)
            m.float()  # buffers too (the prompt encoder's position code): it then computes in float32
    # Trained weights stay in float32 whatever the backbones' dtype (bf16 updates of small weights get lost).
    for p in embedder.parameters():
        if p.requires_grad:
            p.data = p.data.float()
