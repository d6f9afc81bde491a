"""Output folders that cannot be written: read-only, or full (a real tiny tmpfs where mount works, and a
patched write that raises ENOSPC everywhere else). Each failure is one line and exit code 2, and the
outputs already in the folder stay exactly as they were, with no temporary file left behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import PRESETS, Earlier, can_mount, user_error
from .test_bad_inputs import train_args

HERE = Path(__file__).resolve().parent
ENV = {"OMP_NUM_THREADS": "1"}


def read_only_folder(tmp_path: Path) -> Earlier:
    """Earlier outputs in a folder this process cannot write: a read-only tmpfs as root, else mode 0555."""
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        if not can_mount():
            pytest.skip("root without mount: permissions alone cannot make a folder read-only for root")
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
        earlier = Earlier(folder)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        earlier = Earlier(folder)
        folder.chmod(0o555)
    return earlier


@pytest.mark.slow
def test_read_only_output_folder(micro_data, tmp_path, run_cli):
    earlier = read_only_folder(tmp_path)
    try:
        r = run_cli(*train_args(micro_data, earlier.folder), env=ENV)
        user_error(r, str(earlier.folder), "cannot write")
        earlier.intact()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(earlier.folder)], check=False)
        else:
            earlier.folder.chmod(0o755)


@pytest.mark.slow
def test_full_disk_tmpfs_during_training(micro_data, tmp_path, tmpfs, run_cli):
    """The run folder on a 64 KiB file system: the resolved config fits, the checkpoint does not."""
    fs = tmpfs("64k")
    earlier = Earlier(fs / "run")
    args = train_args(micro_data, earlier.folder, "train.checkpoint_every=1", "train.feature_cache=false")
    r = run_cli(*args, env=ENV)
    user_error(r, str(earlier.folder), "No space left")
    for name, digest in earlier.before.items():  # earlier outputs untouched (a new config.yaml is whole)
        assert hashlib.sha256((earlier.folder / name).read_bytes()).hexdigest() == digest, name
    leftovers = [p for p in earlier.folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]
    assert not leftovers, leftovers
    assert (earlier.folder / "trainable.safetensors").read_bytes() == b"earlier weights " * 64
    assert not list((earlier.folder / "checkpoints").glob("step-*"))  # no checkpoint that claims to be whole


@pytest.mark.slow
def test_full_disk_patched_write(micro_data, tmp_path):
    """`virtue embed --out` into a folder whose writes fail with ENOSPC: the earlier file stays whole."""
    out_dir = tmp_path / "full"
    out_dir.mkdir()
    out = out_dir / "emb.npy"
    np.save(out, np.arange(6.0))
    before = out.read_bytes()
    image = sorted((micro_data / "scar" / "images").rglob("*.png"))[0]
    cmd = [sys.executable, str(HERE / "_enospc.py"), "embed", "tiny", *PRESETS, "--images", str(image),
           "--box", "2,2,30,30", "--out", str(out)]  # fmt: skip
    env = {**os.environ, **ENV, "VIRTUE_TEST_FULL_DIR": str(out_dir)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    user_error(r, str(out), "No space left")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["emb.npy"]


@pytest.mark.slow
def test_full_disk_during_data_synth(tmp_path, tmpfs, run_cli):
    """A 256 KiB file system fills up while the set is generated: one line, and the earlier set stays."""
    fs = tmpfs("256k")
    (fs / "scar").mkdir()
    (fs / "scar" / "earlier.txt").write_text("an earlier set")
    sizes = ["data.synth.scar_train_per_subset=60", "data.synth.image_size=64"]
    args = ["data", "synth", "tiny", f"data.root={tmp_path / 'real'}", f"data.scar_dir={fs / 'scar'}",
            f"data.mmeb_dir={fs / 'mmeb'}", *sizes]  # fmt: skip
    r = run_cli(*args, env=ENV, timeout=600)
    user_error(r, str(fs / "scar"), "No space left")
    assert sorted(p.name for p in fs.iterdir()) == ["scar"]  # no staging folder left behind
    assert [p.name for p in (fs / "scar").iterdir()] == ["earlier.txt"]
