"""Checkpoints that survive preemption: written atomically, loaded without unpickling arbitrary objects.

Layout of one checkpoint, `checkpoints/step-00000200/`:
  trainable.safetensors  the trained weights (adapters, connector), same format as the run's final weights
  state.pt               optimizer, scheduler, step, data position; plain tensors/containers only
  rng-rank{r}.pt         each rank's Python/NumPy/torch generator states
  meta.json              step and the shape of every trainable tensor (checked before anything is loaded)
The folder is assembled under a temporary name and renamed into place, so a folder named step-* is complete.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..io import atomic_path, write_json
from .distributed import collective_device

STEP_DIR = re.compile(r"^step-(\d{8})$")
WEIGHTS = "trainable.safetensors"
# The metadata travels as one JSON string under one key: safetensors writes a metadata map of several keys in an
# order that changes from process to process, so the same weights would give different bytes (and DVC hashes).
META_KEY = "virtue"


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write, byte-identical for the same tensors and metadata; a failed write (full disk:
    safetensors' own error) is a one-line UserError."""
    packed = {META_KEY: json.dumps(metadata, sort_keys=True)} if metadata else None
    with atomic_path(path) as tmp:
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=packed)
        except SafetensorError as e:
            raise UserError(f"{path}: cannot write: {e}") from e


def find_weights(checkpoint: str | os.PathLike) -> Path:
    """A safetensors file, or a training run folder holding its final trainable weights."""
    p = Path(checkpoint)
    if p.is_file():
        return p
    if not p.is_dir():
        raise UserError(f"{p}: no such checkpoint file or run folder")
    if (p / WEIGHTS).is_file():
        return p / WEIGHTS
    raise UserError(f"{p}: no final weights ({WEIGHTS}) in this run folder (not finished?)")


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; a damaged or foreign file is a one-line UserError."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - several error types for damaged files
        raise UserError(f"{path}: cannot read safetensors weights: {e}") from None
    return tensors, _unpack_metadata(path, meta)


def _unpack_metadata(path: Path, meta: dict[str, str]) -> dict[str, str]:
    """save_weights' single JSON key back into a flat map; files from elsewhere (a flat map) pass through."""
    if set(meta) != {META_KEY}:
        return meta
    try:
        value = json.loads(meta[META_KEY])
    except json.JSONDecodeError:
        raise UserError(f"{path}: metadata key {META_KEY!r} is not JSON") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: metadata key {META_KEY!r} is not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


def rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", states["numpy"]["key"].numpy().astype(np.uint32), states["numpy"]["pos"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_checkpoint(
    folder: Path,
    step: int,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data_position: int,
) -> Path:
    """Collective when distributed (every rank calls it). Returns the checkpoint folder."""
    rank, world = _rank_world()
    final = folder / f"step-{step:08d}"
    tmp = folder / f".tmp-step-{step:08d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    if world > 1:
        dist.barrier()
    try:
        torch.save(rng_states(), tmp / f"rng-rank{rank}.pt")
        if rank == 0:
            save_weights(tmp / WEIGHTS, trainable, {"step": str(step)})
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step}
            state["data_position"] = data_position
            torch.save(state, tmp / "state.pt")
            shapes = {k: list(v.shape) for k, v in trainable.items()}
            write_json(tmp / "meta.json", {"step": step, "world_size": world, "shapes": shapes})
    except (OSError, RuntimeError, SafetensorError, UserError) as e:
        # A full disk surfaces as OSError, torch's RuntimeError or safetensors' own error: leave no partial
        # folder behind (earlier checkpoints stay intact) and tell the user in one line.
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{final}: cannot write checkpoint: {e}") from e
    if world > 1:
        dist.barrier()
    if rank == 0:
        if final.exists():  # a re-run that reaches the same step again: replace the old one
            old = folder / f".old-step-{step:08d}"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            shutil.rmtree(old)
        tmp.rename(final)
    if world > 1:
        dist.barrier()
    return final


def checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoints in `folder`, newest (highest step) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True) if (p / "meta.json").is_file()]


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step in `folder`, or None."""
    found = checkpoints(folder)
    return found[0] if found else None


class CorruptCheckpoint(UserError):
    """A checkpoint folder that is complete by name but whose files cannot be read (truncated, damaged)."""


def load_latest_checkpoint(
    folder: Path, expected_shapes: dict[str, tuple[int, ...]], device: str = "cpu"
) -> Checkpoint | None:
    """The newest checkpoint that loads; a damaged one is passed over, with a warning naming it, for the one
    before it (a damaged file costs the steps since that one, not the run). None when there is none."""
    for path in checkpoints(folder):
        try:
            return load_checkpoint(path, expected_shapes, device)
        except CorruptCheckpoint as e:
            warnings.warn(f"{e}; resuming from the checkpoint before it", RuntimeWarning, stacklevel=2)
    return None


@dataclass
class Checkpoint:
    path: Path
    step: int
    trainable: dict[str, torch.Tensor]
    state: dict[str, Any]  # optimizer, scheduler, data_position
    rng: dict[str, Any] | None  # this rank's generators (None if it was saved with fewer ranks)


def load_checkpoint(path: Path, expected_shapes: dict[str, tuple[int, ...]], device: str = "cpu") -> Checkpoint:
    """Refuses (UserError) a folder that is not a checkpoint or was written for another model shape."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise UserError(f"{path}: not a complete checkpoint (no meta.json)")
    try:
        meta = json.loads((path / "meta.json").read_text())
        saved = {k: tuple(v) for k, v in meta["shapes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CorruptCheckpoint(f"{path}: damaged checkpoint (meta.json: {type(e).__name__})") from None
    expected = {k: tuple(v) for k, v in expected_shapes.items()}
    if saved != expected:
        problems = [f"missing {k}" for k in sorted(expected.keys() - saved.keys())]
        problems += [f"unexpected {k}" for k in sorted(saved.keys() - expected.keys())]
        problems += [
            f"{k} is {list(saved[k])} in the checkpoint, {list(expected[k])} in the model"
            for k in sorted(expected.keys() & saved.keys())
            if saved[k] != expected[k]
        ]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{path}: checkpoint of another model shape: {problems[0]}{more}")
    rank, _ = _rank_world()
    rng_file = path / f"rng-rank{rank}.pt"
    try:
        return Checkpoint(
            path=path,
            step=int(meta["step"]),
            trainable=load_file(str(path / WEIGHTS), device=device),
            state=torch.load(path / "state.pt", map_location=device, weights_only=True),
            rng=torch.load(rng_file, weights_only=True) if rng_file.is_file() else None,
        )
    except (OSError, RuntimeError, SafetensorError, EOFError, ValueError, KeyError, TypeError) as e:
        raise CorruptCheckpoint(f"{path}: damaged checkpoint ({type(e).__name__}: {str(e)[:120]})") from None


class StopRequest:
    """While active, SIGTERM and SIGUSR2 (Slurm's preemption/timeout signals) only set a flag; the loop
    checks it at the step boundary, saves a checkpoint and stops. Handlers are restored on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def requested(self) -> bool:
        """True on every rank if any rank got a signal (ranks must stop at the same step)."""
        flag = self.signum is not None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            t = torch.tensor([int(flag)], device=collective_device())  # NCCL reduces CUDA tensors only
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item())
        return flag
