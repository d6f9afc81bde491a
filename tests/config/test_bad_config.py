"""Config input that used to pass silently or end in a traceback, through `virtue config show` (the loader
every command uses): one line naming the file and key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def one_line(r, *needles):
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_a_key_given_twice_is_an_error_not_the_last_one_silently(tmp_path, cli):
    path = tmp_path / "twice.yaml"
    path.write_text("name: twice\ntrain:\n  steps: 3\n  lr: 0.1\n  steps: 30\n")
    one_line(cli("config", "show", str(path)), str(path), "line 5", "'steps' appears twice", "line 3")


def test_a_file_that_is_not_utf8_is_one_line(tmp_path, cli):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    one_line(cli("config", "show", str(path)), str(path), "not UTF-8")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "nan"])
def test_non_finite_numbers_are_refused(cli, value):
    one_line(cli("config", "show", "tiny", f"train.lr={value}"), "train.lr", "finite")


def test_a_hash_in_an_override_value_is_kept(cli):
    r = cli("config", "show", "tiny", "name=run #2", "tracking.experiment=a#b")
    assert r.returncode == 0, r.stderr
    assert "name: 'run #2'" in r.stdout and "experiment: a#b" in r.stdout
    quoted = cli("config", "show", "tiny", "name='quoted #3'")
    assert "name: 'quoted #3'" in quoted.stdout


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.output_dir=runs/{nmae}", "unknown placeholder {nmae}"),
        ("eval.output_dir=runs/{name}/{seed}", "unknown placeholder {seed}"),
        ("train.output_dir=runs/{name", "{name}"),
    ],
)
def test_unknown_placeholders_in_output_folders(cli, override, needle):
    one_line(cli("config", "show", "tiny", override), override.split("=")[0], needle)


@pytest.mark.parametrize(("old", "new"), [("sam_steps", "sam.steps"), ("vlm_caption_weight", "vlm.caption_weight")])
def test_a_flat_pretrain_key_names_its_new_nested_key(tmp_path, cli, old, new):
    one_line(cli("config", "show", "tiny", f"pretrain.{old}=3"), f"pretrain.{old}: renamed to pretrain.{new}")
    path = tmp_path / "flat.yaml"
    path.write_text(f"base: {ROOT / 'experiments' / 'tiny.yaml'}\npretrain:\n  seed: 1\n  {old}: 3\n")
    one_line(cli("config", "show", str(path)), str(path), f"pretrain.{old}: renamed to pretrain.{new}")


def test_the_nested_pretrain_keys_load():
    from virtue.config import load_experiment

    cfg = load_experiment("tiny", ["pretrain.sam.steps=7", "pretrain.vlm.eval_images=3"])
    assert (cfg.pretrain.sam.steps, cfg.pretrain.vlm.eval_images, cfg.pretrain.vlm.steps) == (7, 3, 300)
