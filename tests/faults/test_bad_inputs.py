"""Bad input through the real `virtue` entry point (a subprocess each): exit code 2, one line on stderr that
names the file / row / key, and the outputs of an earlier run left exactly as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import PRESETS, user_error

ROOT = Path(__file__).resolve().parents[2]
ENV = {"OMP_NUM_THREADS": "1"}


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "tiny",
        *PRESETS,
        f"data.scar_dir={data / 'scar'}",
        f"data.mmeb_dir={data / 'mmeb'}",
        "train.steps=1",
        "train.batch_size=2",
        "train.warmup_steps=1",
        "train.hard_negatives=1",
        f"train.output_dir={out}",
        f"train.feature_cache_dir={out.parent / 'cache'}",
        "tracking.enabled=false",
        *extra,
    ]


def eval_args(data: Path, out: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "tiny",
        *PRESETS,
        f"data.scar_dir={data / 'scar'}",
        f"data.mmeb_dir={data / 'mmeb'}",
        "eval.mmeb=false",
        "tracking.enabled=false",
        *extra,
        f"--checkpoint={checkpoint}",
        f"--out={out}",
    ]


def edit_row(path: Path, change) -> None:
    """Rewrite a parquet file with change(row) applied to its row 0 (same schema)."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows[0])
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


# --- training data -------------------------------------------------------------------------------------------


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_corrupt_parquet(data, earlier, run_cli):
    bad = first(data / "scar" / "train", "*.parquet")
    bad.write_bytes(b"PAR1 this is not a parquet file")
    r = run_cli(*train_args(data, earlier.folder), env=ENV)
    user_error(r, str(bad), "parquet")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_missing_column(data, earlier, run_cli):
    path = first(data / "scar" / "train", "*.parquet")
    pq.write_table(pq.read_table(path).drop(["bbox"]), path)
    r = run_cli(*train_args(data, earlier.folder), env=ENV)
    user_error(r, str(path), "missing column", "bbox")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_missing_image_file(data, earlier, run_cli):
    path = first(data / "scar" / "train", "*.parquet")
    image = data / "scar" / pq.read_table(path).to_pylist()[0]["qry_image_path"]
    image.unlink()
    r = run_cli(*train_args(data, earlier.folder), env=ENV)
    user_error(r, str(path), "row 0", str(image), "does not exist")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_corrupt_image_file(data, earlier, run_cli):
    path = first(data / "scar" / "train", "*.parquet")
    image = data / "scar" / pq.read_table(path).to_pylist()[0]["qry_image_path"]
    image.write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    r = run_cli(*train_args(data, earlier.folder), env=ENV)
    user_error(r, str(path), "row 0", str(image), "unreadable")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_box_outside_the_image(data, earlier, run_cli):
    path = first(data / "scar" / "train", "*.parquet")
    edit_row(path, lambda row: row.update(bbox=[40.0, 40.0, 60.0, 60.0]))  # 64 px images
    r = run_cli(*train_args(data, earlier.folder), env=ENV)
    user_error(r, str(path), "row 0", "bbox", "outside")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_degenerate_box(data, earlier, run_cli):
    path = first(data / "scar" / "train", "*.parquet")
    edit_row(path, lambda row: row.update(bbox=[10.0, 10.0, 0.0, 12.0]))
    r = run_cli(*train_args(data, earlier.folder), env=ENV)
    user_error(r, str(path), "row 0", "degenerate bbox")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_wrong_mask_size(data, earlier, run_cli):
    path = first(data / "scar" / "train", "*.parquet")
    edit_row(path, lambda row: row.update(segmentation='{"size": [32, 32], "counts": [100, 24, 900]}'))
    r = run_cli(*train_args(data, earlier.folder, "data.prompt=mask"), env=ENV)
    user_error(r, str(path), "row 0", "segmentation")
    earlier.intact()


# --- evaluation data and checkpoints -------------------------------------------------------------------------


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_empty_candidate_list(data, earlier, weights, run_cli):
    path = first(data / "scar" / "eval", "*.parquet")
    edit_row(path, lambda row: row.update(tgt_text=[], tgt_kind=[]))
    r = run_cli(*eval_args(data, earlier.folder, weights["tiny"]), env=ENV)
    user_error(r, str(path), "row 0", "empty candidate list")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_ground_truth_missing(data, earlier, weights, run_cli):
    path = first(data / "scar" / "eval", "*.parquet")
    edit_row(path, lambda row: row["tgt_text"].__setitem__(0, ""))
    r = run_cli(*eval_args(data, earlier.folder, weights["tiny"]), env=ENV)
    user_error(r, str(path), "row 0", "ground truth")
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_checkpoint_of_another_model_shape(data, earlier, weights, run_cli):
    r = run_cli(*eval_args(data, earlier.folder, weights["seg4"]), env=ENV)
    user_error(r, "connector.reduce.weight", "shape")  # names the key (the file is not named: see the report)
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_corrupt_checkpoint_file(data, earlier, tmp_path, run_cli):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    r = run_cli(*eval_args(data, earlier.folder, bad), env=ENV)
    user_error(r, str(bad))
    earlier.intact()


@pytest.mark.slow  # builds the tiny model first, as the command does
def test_missing_checkpoint(data, earlier, tmp_path, run_cli):
    r = run_cli(*eval_args(data, earlier.folder, tmp_path / "nowhere"), env=ENV)
    user_error(r, str(tmp_path / "nowhere"), "no such")
    earlier.intact()


# --- configs and command lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("train.no_such_key=1", ("train.no_such_key", "unknown key")),  # unknown config key
        pytest.param("train.steps=many", ("train.steps", "many"), marks=pytest.mark.slow),  # wrong config type
        pytest.param("model.variant=hologram", ("model.variant", "hologram"), marks=pytest.mark.slow),  # variant
        ("train.steps", ("train.steps", "key=value")),  # malformed override
        ("train..steps=3", ("train..steps",)),  # malformed override: empty key component
        ("train.steps.x=3", ("train.steps", "not a section")),  # a value used as a section
    ],
)
def test_bad_config_override(override, needles, data, earlier, run_cli):
    r = run_cli(*train_args(data, earlier.folder, override), env=ENV)
    user_error(r, *needles)
    earlier.intact()


def test_unknown_experiment(earlier, run_cli):
    r = run_cli("train", "no-such-experiment", env=ENV)
    user_error(r, "no-such-experiment", "no such experiment")
    earlier.intact()


def test_invalid_yaml_experiment(tmp_path, earlier, run_cli):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\ntrain: {steps: [1, 2\n")
    r = run_cli("train", str(bad), env=ENV)
    user_error(r, str(bad), "YAML")
    earlier.intact()


def test_unknown_study(tmp_path):
    cmd = [sys.executable, str(ROOT / "sweeps" / "run.py"), "--study", "no-such-study", "--executor", "debug"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV}, timeout=300, cwd=ROOT)
    user_error(r, "no-such-study", "no such study")
