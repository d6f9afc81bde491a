"""`train:` and `pretrain:` - contrastive training of the embedder, and the embedded default's backbones."""

from typing import Literal

from pydantic import Field, field_validator

from .base import OutputDir, Section
from .machine import cpp_compiler, cuda_available


class TrainConfig(Section):
    seed: int = 0
    steps: int = Field(2000, ge=0)
    batch_size: int = Field(64, ge=1, description="global batch (all ranks together)")
    gradcache_chunk: int = Field(0, ge=0, description="GradCache chunk size; 0 = no GradCache")
    lr: float = Field(2e-5, gt=0)
    connector_lr: float | None = Field(None, gt=0, description="learning rate of the connector (default: lr)")
    connector_warmup_steps: int = Field(
        0,
        ge=0,
        description="first steps in which only the connector (and a trained SAM-2 decoder) learn; LLM adapters wait",
    )
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(200, ge=0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    temperature: float = Field(0.02, gt=0)
    hard_negatives: int = Field(0, ge=0, description="distractors per query added as extra negatives")
    hard_negative_kinds: list[str] = Field(
        default_factory=list,
        description="draw hard negatives only from distractors of these kinds (the train data's neg_kind column, "
        "e.g. [object_in_image, object_absent, relation]); empty = from all",
    )
    bidirectional: bool = False
    source: Literal["scar", "mmeb", "both"] = Field("scar", description="training data")
    mmeb_weight: float = Field(
        1.0,
        gt=0,
        le=1,
        description="share of MMEB-train's batches used in each epoch (1: all, in proportion to its size; "
        "0.25: a quarter, a different quarter each epoch); with source both, sets how much of training is MMEB",
    )
    source_mixing: Literal["size", "uniform"] = Field(
        "size",
        description="how each step's source (a SCaR subset or an MMEB-train dataset) is chosen: size = in "
        "proportion to its batches (an epoch holds every batch once); uniform = each source equally likely "
        "whatever its size, as the release (VLM2Vec-V2 interleaving, weight 1 per dataset), each source running "
        "through its own epochs; with uniform, mmeb_weight is an MMEB-train dataset's chance against a SCaR "
        "subset's 1",
    )
    max_rows_per_source: int | None = Field(
        None,
        ge=1,
        description="train on only the first N rows (in file order) of each source; null = all. The release "
        "caps every training dataset at its first 100000 rows (num_sample_per_subset)",
    )
    checkpoint_every: int = Field(200, ge=0, description="steps between checkpoints; 0 = only at the end")
    resume: str = Field("auto", description="'auto' (latest in the run folder), 'never', or a checkpoint path")
    init_from: str | None = Field(
        None,
        description="start from the trained weights of another run (its folder or a safetensors file), as the "
        "paper's +SCaR-train stage starts from a trained model: every tensor it holds is loaded (same name and "
        "shape required); tensors it lacks (a connector, when it is a global run) keep their initialisation; "
        "the optimizer, schedule and step count start fresh. Not `resume`, which continues a run",
    )
    autocast: Literal["auto", "bfloat16", "off"] = Field(
        "auto",
        description="bfloat16 autocast of the trained forward (LLM with its adapters, connector): matmuls in "
        "bfloat16, trained weights, their gradients and the optimizer in float32, the loss in float32; the frozen "
        "backbones run in model.dtype, outside it. auto: bfloat16 on CUDA, off on CPU (resolved against the "
        "training device when the run starts, not when the config is read)",
    )
    compile: Literal["auto", "inductor", "off"] = Field(
        "off",
        description="torch.compile the LLM's decoder layers (with their adapters) for training, dynamic shapes; "
        "evaluation, and fit's on_step hook, run them eagerly. inductor: compiled with the inductor backend "
        "(on CPU it needs a C++ compiler; compiling takes 10-35 s per process, once). auto: inductor on a CPU "
        "where a C++ compiler is found, else off, resolved when the config is read (so written resolved next "
        "to every output); off on CUDA, where it is not measured yet. A training step of the embedded default "
        "0.63-0.77x as long (reports/bench.json, docs/research/sweeps.md); numbers differ from eager in the "
        "third decimal, and are as deterministic",
    )
    grad_clip: float | None = Field(
        None,
        gt=0,
        description="clip the global gradient norm (after averaging over ranks) to this; logged before clipping "
        "as grad_norm. None: no clipping (the release: 1.0)",
    )
    num_workers: int = Field(
        0,
        ge=0,
        description="DataLoader worker processes that prepare each step's inputs (image decoding, resizing, "
        "patches, tokens) while the model trains; 0: prepared in the training process, step by step",
    )
    prefetch_factor: int = Field(
        2,
        ge=1,
        description="with num_workers: steps each worker prepares ahead; every step's inputs are held in shared "
        "memory until used (num_workers x prefetch_factor steps)",
    )
    feature_cache: bool = Field(
        True,
        description="cache frozen SAM-2 / vision-tower outputs on disk, one file per image row. Pays when the same "
        "images come back: small backbones, many epochs over few images (the embedded default). Off at paper "
        "scale: a row there is megabytes (6-9 MB at 2B, by image size), written on first sight, read only in a later "
        "epoch, which a run of one epoch or less never reaches",
    )
    feature_cache_dir: str = Field("runs/feature-cache", description="shared by runs and sweep trials")
    output_dir: OutputDir = Field("runs/{name}", description="run folder; {name} is the experiment name")

    @field_validator("compile")
    @classmethod
    def _resolve_compile(cls, v: str) -> str:
        return native_compile() if v == "auto" else v

    @field_validator("autocast", "compile", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        return "off" if v is False else v  # YAML reads a bare `off` as false


def native_compile() -> str:
    """train.compile=auto: inductor where it is measured to pay (a CPU with a C++ compiler), else off."""
    return "inductor" if not cuda_available() and cpp_compiler() else "off"


# The flat keys of `pretrain:` before its nested `sam:` / `vlm:` sections: given, they fail naming the new key.
_RENAMED = {
    **{f"sam_{k}": f"sam.{k}" for k in ("init", "steps", "batch_size", "lr", "prompts", "appearance_weight")},
    **{f"sam_{k}": f"sam.{k}" for k in ("dense_weight", "prompts_per_image", "eval_scenes")},
    **{f"vlm_{k}": f"vlm.{k}" for k in ("steps", "batch_size", "lr", "temperature", "captions", "dense_weight")},
    **{f"vlm_{k}": f"vlm.{k}" for k in ("caption_weight", "eval_images")},
}


class SamPretrainConfig(Section):
    """`pretrain.sam:` - the tiny SAM-2 on promptable segmentation of the synthetic scenes."""

    init: Literal["pytorch", "transformers"] = Field(
        "pytorch", description="init of the SAM-2 trained from scratch: PyTorch defaults (as Meta's code) or HF's"
    )
    steps: int = Field(400, ge=0, description="optimizer steps")
    batch_size: int = Field(32, ge=1, description="prompted objects per step (batch_size // prompts_per_image images)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW, linear warm-up then cosine decay)")
    prompts: list[Literal["box", "points"]] = Field(
        default_factory=lambda: ["box", "points"], min_length=1, description="prompt kinds drawn per sample"
    )
    appearance_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the heads that predict the prompted object's colour/shape/size from the mask "
        "decoder's image-side stream (the features VIRTUE reads); 0 = mask loss only, the heads then train on "
        "detached features as a probe. Weight 1 stops the tiny SAM-2 from learning to segment (held-out box "
        "mIoU 0.16 against 0.65 at 300 steps, docs/research/pretraining.md)",
    )
    dense_weight: float = Field(
        1.0,
        ge=0,
        description="weight of per-location colour/shape/size heads on SAM-2's stride-16 image embedding (the "
        "map F_s is computed from); 0 = the heads train on detached maps as a probe",
    )
    prompts_per_image: int = Field(
        2, ge=1, description="objects prompted per image in a batch (the image encoder runs once per image)"
    )
    eval_scenes: int = Field(200, ge=1, description="held-out scenes (eval split) for the mIoU")


class VlmPretrainConfig(Section):
    """`pretrain.vlm:` - the tiny Qwen2-VL on image-caption alignment of the synthetic scenes."""

    steps: int = Field(600, ge=0, description="optimizer steps")
    batch_size: int = Field(32, ge=1, description="image-caption pairs per step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW, linear warm-up then cosine decay)")
    temperature: float = Field(0.05, gt=0, description="temperature of the symmetric image-caption InfoNCE")
    captions: list[Literal["objects", "relation", "region", "scene"]] = Field(
        default_factory=lambda: ["objects", "relation", "region", "scene"],
        min_length=1,
        description="caption kinds drawn per image: colours+shapes, a relation, an object at a place, the scene",
    )
    dense_weight: float = Field(
        1.0,
        ge=0,
        description="weight of per-location colour/shape/size heads on the merged image tokens (what VIRTUE's "
        "frozen vision tower hands the LLM); 0 = the heads train on detached tokens as a probe",
    )
    caption_weight: float = Field(
        5.0,
        ge=0,
        description="weight of heads that read each element of a SCaR-grammar caption (objects, predicate, "
        "scene) back from its embedding; 0 = the heads train on detached embeddings as a probe",
    )
    eval_images: int = Field(200, ge=2, description="held-out images (eval split) for retrieval R@1")


class PretrainConfig(Section):
    """Backbone pre-training for the embedded default (no downloadable checkpoints here): the tiny SAM-2 on
    promptable segmentation of the synthetic scenes, the tiny Qwen2-VL on image-caption alignment."""

    renamed = _RENAMED

    seed: int = 0
    scenes_dir: str = Field("data/scar-synth", description="folder whose scenes (read_scenes) both stages train on")
    output_dir: str = Field("runs/backbones", description="where the save_pretrained folders go")
    sam: SamPretrainConfig = Field(default_factory=SamPretrainConfig, description="the SAM-2 stage")
    vlm: VlmPretrainConfig = Field(default_factory=VlmPretrainConfig, description="the Qwen2-VL stage")
