"""Where the workspace lives. Everything else asks here instead of guessing from __file__."""

import os
from pathlib import Path


def workspace_root() -> Path:
    """$VIRTUE_ROOT, else the nearest parent of the working directory with an `experiments/` folder,
    else the source checkout that holds this package."""
    env = os.environ.get("VIRTUE_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "experiments").is_dir() and (d / "pyproject.toml").is_file():
            return d
    return Path(__file__).resolve().parent.parent


def experiments_dir() -> Path:
    return workspace_root() / "experiments"


def in_workspace(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A path from a config or the command line: absolute as given, else relative to the workspace (`root`, or
    workspace_root()), never to the working directory."""
    p = Path(path)
    return p if p.is_absolute() else Path(root if root is not None else workspace_root()) / p


def workspace_relative(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """`path` relative to the workspace when it lies inside it (else as given, in POSIX form): what a seed or a
    key derived from a path uses, so that it does not depend on where the clone is."""
    p = Path(path)
    base = Path(root if root is not None else workspace_root()).resolve()
    try:
        return p.resolve().relative_to(base).as_posix()
    except ValueError:
        return p.as_posix()
