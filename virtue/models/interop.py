"""Interop with the released VIRTUE weights: the connector file (`sam2_reducer.*`, `sam2vlm_layer.{i}.*`)
and the `virtue_sam` block of the release's config.json."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..io import atomic_path
from .connector import Connector

RELEASE_FILE = "sam2_reducer_and_vlm_layer.pth"
_OURS_TO_RELEASE = {"reduce.": "sam2_reducer.", "mlp.": "sam2vlm_layer."}
# The release's Hydra config names -> our SAM 2.1 presets / hub ids.
_SAM_CONFIGS = {"t": "tiny", "s": "small", "b+": "base-plus", "l": "large"}


def to_release(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Connector state dict -> the release's key layout (the MLP's Sequential indices carry over)."""
    out = {}
    for key, value in state.items():
        for ours, theirs in _OURS_TO_RELEASE.items():
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = value
                break
        else:
            raise KeyError(f"not a connector weight: {key}")
    return out


def from_release(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The release's layout (with or without a module prefix before the names) -> our connector keys."""
    out = {}
    for key, value in state.items():
        for ours, theirs in _OURS_TO_RELEASE.items():
            at = key.find(theirs)
            if at >= 0 and (at == 0 or key[at - 1] == "."):
                out[ours + key[at + len(theirs) :]] = value
                break
    return out


def save_release_connector(connector: Connector, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / RELEASE_FILE
    state = {k: v.detach().cpu() for k, v in to_release(connector.state_dict()).items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_release_connector(connector: Connector, path: str | os.PathLike) -> None:
    path = Path(path)
    if path.is_dir():
        path = path / RELEASE_FILE
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise UserError(f"{path}: cannot read the connector: {str(e).splitlines()[0]}") from None
    state = from_release(raw)
    try:
        connector.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: connector weights do not fit this config: {str(e).splitlines()[1:2]}") from None


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
