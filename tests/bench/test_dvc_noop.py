"""The `dvc repro` no-op timing on a real (tiny) DVC project: measured when up to date, refused otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from virtue.bench.pipeline import _dvc, noop_repro, stage_minutes


@pytest.mark.slow
def test_noop_repro_measured_only_when_up_to_date(tmp_path):
    if not _dvc():
        pytest.skip("dvc is not installed")
    dvc = _dvc()
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "in.txt").write_text("1\n")
    copy = f"{sys.executable} -c \"import shutil; shutil.copy('in.txt', 'out.txt')\""
    (tmp_path / "dvc.yaml").write_text(f"stages:\n  copy:\n    cmd: {copy}\n    deps: [in.txt]\n    outs: [out.txt]\n")
    subprocess.run([*dvc, "repro", "-q"], cwd=tmp_path, check=True, capture_output=True)
    r = noop_repro(tmp_path, 1)
    assert r["status"] == "measured" and r["seconds"]["median"] > 0, r
    assert stage_minutes(tmp_path)["minutes"] == {"copy": None}

    (tmp_path / "in.txt").write_text("2\n")  # now `dvc repro` would do real work: the benchmark must not
    before = (tmp_path / "out.txt").read_text()
    r = noop_repro(tmp_path, 1)
    assert r["status"] == "skipped" and "copy" in r["reason"], r
    assert (tmp_path / "out.txt").read_text() == before
    shutil.rmtree(tmp_path / ".dvc", ignore_errors=True)
