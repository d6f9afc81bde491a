"""The `virtue` command through a subprocess, as a user runs it."""

import pytest
import yaml

from virtue import __version__


def test_version(run_cli):
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"virtue {__version__}"


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_config_show_applies_overrides(run_cli):
    r = run_cli("config", "show", "tiny", "train.lr=1e-3")
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["train"]["lr"] == 1e-3 and shown["name"] == "tiny"


def test_config_show_unknown_key_is_one_line_and_exit_2(run_cli):
    r = run_cli("config", "show", "tiny", "trian.lr=1")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "trian" in lines[0] and "tiny.yaml" in lines[0]
    assert r.stdout == ""


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_config_diff(run_cli):
    r = run_cli("config", "diff", "paper-2b", "paper-7b")
    assert r.returncode == 0
    assert "model.vlm.path" in r.stdout and "Qwen/Qwen2-VL-7B-Instruct" in r.stdout
    assert "train.lr" not in r.stdout
    same = run_cli("config", "diff", "tiny", "tiny")
    assert same.returncode == 0 and "same config" in same.stdout


def test_no_command_prints_help_and_exit_2(run_cli):
    r = run_cli()
    assert r.returncode == 2 and "usage" in r.stdout
