"""Atomic writes and the early writability check."""

import os

import pytest

from virtue.errors import UserError
from virtue.io import check_writable, write_json


def test_check_writable_leaves_an_existing_file_alone(tmp_path):
    out = tmp_path / "reports" / "bench.json"
    write_json(out, {"earlier": 1})
    before = out.read_bytes()
    check_writable(out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot write"):
            check_writable(ro / "bench.json")
    finally:
        ro.chmod(0o700)


def test_check_writable_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"afile/bench\.json: cannot write"):
        check_writable(tmp_path / "afile" / "bench.json")


def test_atomic_writes_follow_the_umask(tmp_path):
    """mkstemp creates 0600 files; an output is an ordinary file: 0666 less the umask, like `open` gives."""
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        write_json(tmp_path / "b.json", {"b": 1})
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o664
        import torch

        from virtue.train.checkpoint import save_weights  # safetensors writes its file itself

        save_weights(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
        assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)
