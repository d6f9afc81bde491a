"""Shared set-up of the fault suite: micro synthetic data written once per session, trainable weights of the
tiny model (preset backbones, random weights) of two shapes, and a guard that checks earlier outputs
survive a failed command untouched, with no temporary file left beside them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PRESETS = ("model.vlm={preset: qwen2vl-tiny}", "model.sam={preset: sam2-tiny}")
MICRO_SYNTH = (
    "data.synth.scar_train_per_subset=4",
    "data.synth.scar_eval_per_subset=2",
    "data.synth.mmeb_train_per_task=2",
    "data.synth.mmeb_eval_per_task=2",
    "data.synth.image_size=64",
)


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory) -> Path:
    """SCaR-synth and MMEB-synth at micro sizes (a few seconds), shared read-only by the session."""
    from virtue.config import load_experiment
    from virtue.data.synth.build import synthesize

    root = tmp_path_factory.mktemp("micro-data")
    cfg = load_experiment("tiny", [f"data.scar_dir={root / 'scar'}", f"data.mmeb_dir={root / 'mmeb'}", *MICRO_SYNTH])
    synthesize(cfg.data, root, progress=False)
    return root


@pytest.fixture
def data(micro_data, tmp_path) -> Path:
    """A private copy of the micro data that a test may break."""
    dst = tmp_path / "data"
    shutil.copytree(micro_data, dst)
    return dst


def _weights(tmp: Path, name: str, *overrides: str) -> Path:
    from safetensors.torch import save_file

    from virtue.config import load_experiment
    from virtue.models import build_embedder

    cfg = load_experiment("tiny", [*PRESETS, *overrides])
    embedder, _ = build_embedder(cfg.model)
    path = tmp / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in embedder.trainable_state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Trainable weights of the tiny model as configured ('tiny') and of another shape ('seg4')."""
    tmp = tmp_path_factory.mktemp("weights")
    return {"tiny": _weights(tmp, "tiny"), "seg4": _weights(tmp, "seg4", "model.seg_tokens=4")}


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Earlier:
    """Outputs of an earlier (successful) run in `folder`; `intact()` asserts nothing changed, nothing was
    added half-written (no temporary files), nothing removed."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trainable.safetensors").write_bytes(b"earlier weights " * 64)
        (folder / "metrics.json").write_text('{"scar": {"overall": {"hit@1": 0.5}}}\n')
        self.before = _digest(folder)

    def intact(self) -> None:
        after = _digest(self.folder)
        assert after == self.before, {k: after.get(k) for k in set(after) ^ set(self.before)}


@pytest.fixture
def earlier(tmp_path) -> Earlier:
    return Earlier(tmp_path / "out")


def user_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2 and exactly one line on stderr that names every needle; returns that line."""
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path("/tmp") / f"virtue-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if ok.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs folder of that size (root only; skipped elsewhere); unmounted after."""
    mounted: list[Path] = []

    def mount(size: str, name: str = "fs") -> Path:
        if not can_mount():
            pytest.skip("needs root and mount (tmpfs)")
        where = tmp_path / name
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)
