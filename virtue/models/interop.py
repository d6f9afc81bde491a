"""Interop with the released VIRTUE weights: the connector file ({"sam2_reducer": Conv2d state dict,
"sam2vlm_layer": Sequential state dict}) and the `virtue_sam` block of the release's config.json."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import torch

from ..errors import UserError
from ..io import atomic_path
from ..paths import in_workspace
from .connector import Connector

RELEASE_FILE = "sam2_reducer_and_vlm_layer.pth"
# Our connector's submodules -> the release's names; its file holds {name: that module's state dict}.
_OURS_TO_RELEASE = {"reduce": "sam2_reducer", "mlp": "sam2vlm_layer"}
# The release's Hydra config names -> our SAM 2.1 presets / hub ids.
_SAM_CONFIGS = {"t": "tiny", "s": "small", "b+": "base-plus", "l": "large"}


def to_release(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Connector state dict -> the release's nested layout (the MLP's Sequential indices carry over)."""
    out: dict[str, dict[str, torch.Tensor]] = {theirs: {} for theirs in _OURS_TO_RELEASE.values()}
    for key, value in state.items():
        module, _, inner = key.partition(".")
        if module not in _OURS_TO_RELEASE:
            raise KeyError(f"not a connector weight: {key}")
        out[_OURS_TO_RELEASE[module]][inner] = value
    return out


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(_flatten(value, name + ".") if isinstance(value, Mapping) else {name: value})
    return out


def from_release(raw: Mapping) -> dict[str, torch.Tensor]:
    """The release's nested layout, or flat names (with or without a module prefix before them) -> our
    connector keys; names of neither module are left out."""
    out = {}
    for key, value in _flatten(raw).items():
        for ours, theirs in _OURS_TO_RELEASE.items():
            at = key.find(theirs + ".")
            if at >= 0 and (at == 0 or key[at - 1] == "."):
                out[ours + key[at + len(theirs) :]] = value
                break
    return out


def save_release_connector(connector: Connector, path: str | os.PathLike) -> Path:
    """Writes the release's own layout, which its loader reads: {"sam2_reducer": .., "sam2vlm_layer": ..}."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / RELEASE_FILE
    state = {k: v.detach().cpu() for k, v in connector.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(to_release(state), tmp)
    return path


def load_release_connector(connector: Connector, path: str | os.PathLike) -> None:
    path = Path(path)
    if path.is_dir():
        path = path / RELEASE_FILE
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise UserError(f"{path}: cannot read the connector: {str(e).splitlines()[0]}") from None
    state = from_release(raw) if isinstance(raw, Mapping) else {}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = f"keys {sorted(_flatten(raw))[:6]}" if isinstance(raw, Mapping) else f"a {type(raw).__name__}"
        raise UserError(f"{path}: not a VIRTUE connector file (no sam2_reducer / sam2vlm_layer tensors): found {found}")
    try:
        connector.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: connector weights do not fit this config: {str(e).splitlines()[1:2]}") from None


def find_release_config(vlm_path: str, root: Path) -> Path | None:
    """The config.json beside the VLM weights at model.vlm.path: in a local folder, or for a hub id in the
    local HF cache where transformers put it (downloaded only where the hub answers). None where there is
    none; a warning where a hub id's cannot be had, since the checks that need it are then skipped."""
    local = in_workspace(vlm_path, root)
    if local.is_dir():
        return local / "config.json" if (local / "config.json").is_file() else None
    try:
        cached = huggingface_hub.try_to_load_from_cache(vlm_path, "config.json")
    except ValueError:  # not a hub id either: the backbone's own loading says so
        return None
    if isinstance(cached, str):
        return Path(cached)
    if cached is not None:  # the cache records that the repo has no config.json: not a release
        return None
    if not huggingface_hub.is_offline_mode():
        try:
            return Path(huggingface_hub.hf_hub_download(vlm_path, "config.json"))
        except (OSError, ValueError):
            pass
    warnings.warn(
        f"model.vlm.path: {vlm_path}: no config.json in the local HF cache nor from the hub; "
        "the release's virtue_sam check of model.num_points was skipped",
        stacklevel=2,
    )
    return None


@dataclass(frozen=True)
class VirtueSamBlock:
    """The release's `virtue_sam` settings, and what they mean in our config."""

    config_path: str
    checkpoint: str
    points_per_side: int
    feature_levels: int | list[int] | None = None

    @property
    def num_points(self) -> int:
        return self.points_per_side**2

    @property
    def sam_hub_id(self) -> str | None:
        m = re.search(r"hiera_(t|s|b\+|l)\.yaml$", self.config_path)
        return f"facebook/sam2.1-hiera-{_SAM_CONFIGS[m.group(1)]}" if m else None

    def model_overrides(self) -> list[str]:
        """Dotted overrides of the `model:` section that reproduce the release's SAM-2 settings."""
        out = [f"model.num_points={self.num_points}", "model.official_compat=true"]
        if self.sam_hub_id:
            out.append(f"model.sam.path={self.sam_hub_id}")
        return out


def read_virtue_sam(config_json: str | os.PathLike) -> VirtueSamBlock:
    path = Path(config_json)
    if path.is_dir():
        path = path / "config.json"
    try:
        block = json.loads(path.read_text(encoding="utf-8"))["virtue_sam"]
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read: {e}") from None
    except KeyError:
        raise UserError(f"{path}: no 'virtue_sam' block (not a VIRTUE release config)") from None
    try:
        pps = int(block["points_per_side"])
        if pps < 1:
            raise ValueError
        return VirtueSamBlock(
            config_path=str(block.get("config_path", "")),
            checkpoint=str(block.get("checkpoint", "")),
            points_per_side=pps,
            feature_levels=block.get("feature_levels"),
        )
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: virtue_sam.points_per_side: must be a positive integer") from None
