"""Toy training runs for the loop tests (importable, and runnable as a script for signal tests):
python _fit_toy.py RUN_DIR WORK_DIR [key=value ...] trains the toy embedder with train.* overrides."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from _toy import ToyEmbedder, ToyProcessor, toy_pairs

from virtue.config import ExperimentConfig
from virtue.config.load import apply_override
from virtue.train.distributed import init_distributed, shutdown_distributed
from virtue.train.loop import fit


def toy_config(work: Path, **train) -> ExperimentConfig:
    base = {
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-2,
        "warmup_steps": 2,
        "temperature": 0.1,
        "hard_negatives": 2,
        "checkpoint_every": 2,
        "feature_cache_dir": str(work / "cache"),
        "seed": 0,
    }
    return ExperimentConfig(name="toy", train={**base, **train})


def run_toy(run_dir: Path, work: Path, tracker=None, dropout: float = 0.1, env=None, **train) -> Path:
    torch.manual_seed(0)
    embedder = ToyEmbedder(dropout=dropout)
    pairs = toy_pairs(work / "images", n=40, sources=("a", "b"), negatives=3)
    return fit(embedder, ToyProcessor(), pairs, toy_config(work, **train), run_dir, tracker=tracker, env=env)


class SignalAt:
    """A tracker that sends this process a signal after step k (the loop must finish the step, save, stop)."""

    def __init__(self, k: int, signum: int):
        self.k, self.signum, self.run_id = k, signum, None

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        if step == self.k:
            os.kill(os.getpid(), self.signum)

    def log_artifact(self, path):
        pass


def main(run_dir: str, work: str, overrides: list[str]) -> str:
    """One process of a toy run: joins the process group that torchrun or submitit describes, if any."""
    torch.set_num_threads(1)
    tree: dict = {}
    for text in overrides:
        apply_override(tree, {}, text, "argv")
    dropout = float(tree.pop("dropout", 0.1))
    env = init_distributed("cpu")
    try:
        return str(run_toy(Path(run_dir), Path(work), dropout=dropout, env=env, **tree))
    finally:
        shutdown_distributed()


def one_process_and_two_ranks(work: Path, opts: list[str]) -> tuple[Path, Path]:
    """This script's toy run with `opts` (train.* overrides) in one process and on 2 gloo ranks under torchrun:
    the two run folders, work/one and work/two. Fails the calling test with the ranks' stderr."""
    import subprocess

    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent.parent), str(here)]), "OMP_NUM_THREADS": "1"}
    script = str(Path(__file__))
    one = subprocess.run([sys.executable, script, str(work / "one"), str(work), *opts], env=env)
    assert one.returncode == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script]
    two = subprocess.run([*cmd, str(work / "two"), str(work), *opts], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    return work / "one", work / "two"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
