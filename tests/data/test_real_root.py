"""data.dvc: the README that `virtue data synth` writes into a fresh clone's data/real has exactly the pinned hash."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from virtue.data.real_root import README, ensure_real_root

ROOT = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")


def test_never_touches_an_existing_root(tmp_path):
    assert ensure_real_root(tmp_path / "real") is True
    assert (tmp_path / "real" / "README.md").read_text() == README
    (tmp_path / "real" / "README.md").write_text("mine")
    assert ensure_real_root(tmp_path / "real") is False
    assert (tmp_path / "real" / "README.md").read_text() == "mine"


@pytest.mark.slow
def test_fresh_clone_dvc_status_is_clean(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=tmp_path, check=True)
    shutil.copy(ROOT / "data.dvc", tmp_path / "data.dvc")
    status = subprocess.run([DVC, "status", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(status.stdout) != {}  # before the synth step: data/real is missing
    ensure_real_root(tmp_path / "data" / "real")
    status = subprocess.run([DVC, "status", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(status.stdout) == {}
