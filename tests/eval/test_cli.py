import pytest

from virtue.errors import UserError
from virtue.train.checkpoint import find_weights


def test_missing_checkpoint_is_one_line_exit_2(run_cli, tmp_path):
    r = run_cli("eval", "tiny", "model.variant=crop", "--checkpoint", tmp_path / "nope")
    assert r.returncode == 2
    expected = f"virtue: error: {tmp_path / 'nope'}: no such checkpoint file or run folder"
    assert r.stderr.strip().splitlines() == [expected]


def test_find_weights_in_a_run_folder(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(UserError, match="no final weights"):
        find_weights(tmp_path)
    (tmp_path / "trainable.safetensors").write_bytes(b"x")
    assert find_weights(tmp_path) == tmp_path / "trainable.safetensors"
    assert find_weights(tmp_path / "trainable.safetensors") == tmp_path / "trainable.safetensors"
