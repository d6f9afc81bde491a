"""Reruns into folders that already hold a run, and checkpoints used for what they were not made for, through
the real `virtue` entry point: either the run continues exactly where it left off, or one line says why not
and the folder is left exactly as it was."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from .conftest import PRESETS, _digest, user_error
from .test_bad_inputs import ENV, eval_args, train_args

pytestmark = pytest.mark.slow  # each case builds the tiny model in a subprocess, as the command does


def train(cli, data, out, *extra):
    return cli(*train_args(data, out, "train.batch_size=4", *extra), env=ENV)


def steps_logged(out):
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out):
    return load_file(str(out / "trainable.safetensors"))


@pytest.fixture(scope="module")
def finished(micro_data, tmp_path_factory):
    """A finished 4-step run (checkpoints at 2 and 4) of the micro config, made once for the module."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("finished") / "run"
    cmd = [sys.executable, "-m", "virtue.cli.main", *train_args(micro_data, out, "train.batch_size=4",
           "train.steps=4", "train.checkpoint_every=2")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, **ENV}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def copy_run(finished, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(finished, dst)
    return dst


def test_a_rerun_with_another_config_is_refused_before_anything_is_written(micro_data, finished, tmp_path, cli):
    out = copy_run(finished, tmp_path)
    before = _digest(out)
    r = train(cli, micro_data, out, "train.steps=4", "train.checkpoint_every=2", "model.seg_tokens=4")
    user_error(r, str(out), "another config", "model.seg_tokens")
    assert _digest(out) == before  # config.yaml included: it still describes the weights beside it


def test_a_finished_run_rerun_with_fewer_steps_is_refused(micro_data, finished, tmp_path, cli):
    """It used to exit 0 and save the 4-step weights labelled as a 1-step run."""
    out = copy_run(finished, tmp_path)
    before = _digest(out)
    r = train(cli, micro_data, out, "train.steps=1", "train.checkpoint_every=2")
    user_error(r, str(out), "another config", "train.steps", "4", "1")
    assert _digest(out) == before


def test_resume_never_into_a_run_is_refused(micro_data, finished, tmp_path, cli):
    out = copy_run(finished, tmp_path)
    before = _digest(out)
    r = train(cli, micro_data, out, "train.steps=4", "train.checkpoint_every=2", "train.resume=never")
    user_error(r, str(out), "train.resume=never")
    assert _digest(out) == before


def test_a_resumed_run_records_each_step_once(micro_data, finished, tmp_path, cli):
    """Killed after step 4's metrics but before its checkpoint: the rerun replays steps 3-4 from step 2."""
    import shutil

    out = copy_run(finished, tmp_path)
    shutil.rmtree(out / "checkpoints" / "step-00000004")
    (out / "trainable.safetensors").unlink()
    assert steps_logged(out) == [1, 2, 3, 4]
    r = train(cli, micro_data, out, "train.steps=4", "train.checkpoint_every=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert steps_logged(out) == [1, 2, 3, 4]  # not [1, 2, 3, 4, 3, 4]
    ref = weights(finished)
    assert all(torch.equal(ref[k], v) for k, v in weights(out).items())  # and it ends where the run did


def test_a_truncated_latest_checkpoint_falls_back_to_the_one_before(micro_data, finished, tmp_path, run_cli):
    out = copy_run(finished, tmp_path)
    latest = out / "checkpoints" / "step-00000004" / "trainable.safetensors"
    latest.write_bytes(latest.read_bytes()[:100])  # a copy cut short: meta.json says it is complete
    (out / "trainable.safetensors").unlink()
    r = train(run_cli, micro_data, out, "train.steps=4", "train.checkpoint_every=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "step-00000004: damaged checkpoint" in r.stderr and "the checkpoint before it" in r.stderr
    ref = weights(finished)
    assert all(torch.equal(ref[k], v) for k, v in weights(out).items())


def test_weights_of_another_variant_are_refused(micro_data, tmp_path, cli):
    """global's and crop's adapters have the same shapes: only the recorded variant tells them apart."""
    run = tmp_path / "global"
    r = train(cli, micro_data, run, "model.variant=global", "train.steps=1")
    assert r.returncode == 0, r.stderr[-3000:]
    for checkpoint in (run, run / "trainable.safetensors"):
        r = cli(*eval_args(micro_data, tmp_path / "eval", checkpoint, "model.variant=crop"), env=ENV)
        user_error(r, str(run / "trainable.safetensors"), "model.variant=global", "crop")
    assert not (tmp_path / "eval").exists()
    ok = cli(*eval_args(micro_data, tmp_path / "eval", run, "model.variant=global"), env=ENV)
    assert ok.returncode == 0, ok.stderr[-3000:]


def test_embed_takes_a_run_folder(micro_data, tmp_path, cli):
    run = tmp_path / "run"
    assert train(cli, micro_data, run, "train.steps=1").returncode == 0
    image = sorted((micro_data / "scar" / "images").rglob("*.png"))[0]
    r = cli("embed", "tiny", *PRESETS, "--images", str(image), "--box", "2,2,30,30", "--checkpoint", str(run),
                "--out", str(tmp_path / "emb.npy"), env=ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "emb.npy").is_file()


def test_a_failed_evaluation_leaves_the_earlier_one_whole(micro_data, tmp_path, cli, weights_file):
    """An image whose header reads but whose pixels do not fails during encoding: the earlier evaluation's
    config.yaml must still sit beside its metrics.json."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(micro_data, data)
    out = tmp_path / "eval"
    r = cli(*eval_args(data, out, weights_file), env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    before = _digest(out)
    image = sorted((data / "scar" / "images" / "eval").rglob("*.png"))[0]
    image.write_bytes(image.read_bytes()[:200])
    r = cli(*eval_args(data, out, weights_file, "eval.batch_size=7"), env=ENV)
    user_error(r, str(image))
    assert _digest(out) == before


def test_batch_of_one_without_negatives_is_refused(micro_data, tmp_path, cli):
    """InfoNCE over one candidate is log(1) = 0: such a run used to 'train' with loss 0.0 at every step."""
    r = cli(*train_args(micro_data, tmp_path / "run", "train.batch_size=1", "train.hard_negatives=0"), env=ENV)
    user_error(r, "train.batch_size", "without any negative")


@pytest.fixture
def weights_file(weights):
    return weights["tiny"]
