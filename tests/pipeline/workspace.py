"""Temporary copies of the workspace for pipeline tests: the checkout's files (tracked and untracked-not-ignored,
no .venv, no outputs), a fresh git repository and `dvc init`, and a PATH where `virtue` is the one under test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def copy_workspace(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file() and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    if not (dest / ".dvc").is_dir():
        dvc(dest, "init", "-q")
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


def env(path_first: Path | None = None) -> dict:
    path = os.pathsep.join(str(p) for p in (path_first, BIN) if p) + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "PATH": path, "VIRTUE_ROOT": "", "DVC_NO_ANALYTICS": "1", "MLFLOW_TRACKING_URI": ""}


def dvc(
    ws: Path, *args: str, path_first: Path | None = None, extra_env: dict | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    e = {**env(path_first), **(extra_env or {})}
    e.pop("VIRTUE_ROOT")  # the copy finds itself from its working directory
    e.pop("MLFLOW_TRACKING_URI")
    return subprocess.run([str(BIN / "dvc"), *args], cwd=ws, env=e, capture_output=True, text=True, timeout=timeout)


def set_params(ws: Path, **sections) -> None:
    p = ws / "params.yaml"
    params = yaml.safe_load(p.read_text())
    for key, value in sections.items():
        if isinstance(value, dict):
            params[key].update(value)
        else:
            params[key] = value
    p.write_text(yaml.safe_dump(params, sort_keys=False))
