"""Config loading, inheritance, overrides and every validation error path."""

from pathlib import Path

import pytest
import yaml

from virtue.config import flatten, load_experiment, load_resolved, write_resolved
from virtue.errors import UserError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_shipped_experiment_loads():
    for name in ("tiny", "paper-2b", "paper-7b"):
        cfg = load_experiment(name)
        assert cfg.name == name


def test_paper_7b_inherits_2b_and_changes_only_the_llm():
    a, b = flatten(load_experiment("paper-2b")), flatten(load_experiment("paper-7b"))
    assert {k for k in a if a[k] != b[k]} == {"name", "model.vlm.path"}
    assert b["model.seg_tokens"] == 256 and b["train.lr"] == 2e-5


def test_overrides_are_typed_and_nested():
    cfg = load_experiment("tiny", ["train.lr=1e-3", "model.variant=crop", "model.adapter.targets=[q_proj]"])
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)
    assert cfg.model.variant == "crop"
    assert cfg.model.adapter.targets == ["q_proj"]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_experiment("tiny", ["train.steps=7"])
    path = write_resolved(cfg, tmp_path / "run")
    assert load_resolved(path) == cfg
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["trian.lr=1"], "trian: unknown key"),
        (["train.lrr=1"], "train.lrr: unknown key"),
        (["train.lr=abc"], "train.lr: Input should be a valid number"),
        (["train.lr=-1"], "train.lr: Input should be greater than 0"),
        (["train.steps=1.5"], "train.steps:"),
        (["model.variant=foo"], "model.variant: Input should be 'virtue', 'global' or 'crop'"),
        (["model.seg_tokens=15"], "model.seg_tokens: must be a square number"),
        (["model.num_points=8"], "model.num_points: must be a square number"),
        (["model.connector_depth=4"], "model.connector_depth: Input should be less than or equal to 3"),
        (["model.vlm.preset=x"], "model.vlm: give exactly one of 'path' and 'preset'"),
        (["train.lr.x=1"], "train.lr: is a value, not a section"),
        (["train.lr"], "expected dotted.key=value"),
        (["train..lr=1"], "empty component"),
    ],
)
def test_bad_overrides_name_the_key_and_the_file(overrides, expected):
    with pytest.raises(UserError) as e:
        load_experiment("tiny", overrides)
    msg = str(e.value)
    assert expected in msg
    assert "tiny.yaml" in msg and "\n" not in msg


def test_errors_in_files_name_the_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "train:\n  stepz: 3\n")
    with pytest.raises(UserError, match=r"bad\.yaml: train\.stepz: unknown key"):
        load_experiment(bad)
    broken = write(tmp_path, "broken.yaml", "train: [1, 2\n")
    with pytest.raises(UserError, match=r"broken\.yaml: line \d+ invalid YAML"):
        load_experiment(broken)
    listy = write(tmp_path, "listy.yaml", "- 1\n- 2\n")
    with pytest.raises(UserError, match="top level must be a mapping"):
        load_experiment(listy)


def test_base_inheritance_errors(tmp_path):
    write(tmp_path, "a.yaml", "base: b\n")
    write(tmp_path, "b.yaml", "base: a\n")
    with pytest.raises(UserError, match="circular"):
        load_experiment(tmp_path / "a.yaml")
    orphan = write(tmp_path, "orphan.yaml", "base: missing\n")
    with pytest.raises(UserError, match="no such experiment file"):
        load_experiment(orphan)


def test_error_in_base_names_the_base_file(tmp_path):
    write(tmp_path, "parent.yaml", "train:\n  lr: zero\n")
    child = write(tmp_path, "child.yaml", "base: parent\ntrain:\n  steps: 3\n")
    with pytest.raises(UserError, match=r"parent\.yaml: train\.lr"):
        load_experiment(child)


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(UserError, match="known: .*tiny"):
        load_experiment("no-such-experiment")


def test_name_defaults_to_file_stem(tmp_path):
    p = write(tmp_path, "my-exp.yaml", yaml.safe_dump({"train": {"steps": 3}}))
    assert load_experiment(p).name == "my-exp"
