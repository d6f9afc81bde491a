"""The weights file: the same tensors and metadata give the same bytes in every process (DVC hashes runs/train
by bytes), and the metadata reads back as written; files written by other tools (a flat metadata map) still load."""

import hashlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from safetensors.torch import save_file

from virtue.errors import UserError
from virtue.train.checkpoint import META_KEY, read_weights, save_weights

META = {"variant": "virtue", "step": "1700", "seed": "0", "source": "scar", "note": "five keys"}

_SAVE = """
import sys, torch
from virtue.train.checkpoint import save_weights
g = torch.Generator().manual_seed(0)
tensors = {"connector.w": torch.randn(4, 3, generator=g), "lora.a": torch.randn(2, 2, generator=g)}
save_weights(sys.argv[1], tensors, {k: v for k, v in (a.split("=") for a in sys.argv[2:])})
"""


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_same_weights_same_bytes_in_every_process(tmp_path):
    # With the metadata as a map of five keys, safetensors' per-process order made these files differ.
    args = [f"{k}={v}" for k, v in META.items()]

    def save(i: int) -> str:
        out = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", _SAVE, str(out), *args], check=True)
        return hashlib.sha1(out.read_bytes()).hexdigest()

    with ThreadPoolExecutor(2) as pool:
        digests = set(pool.map(save, range(4)))
    assert len(digests) == 1
    _, meta = read_weights(tmp_path / "w0.safetensors")
    assert meta == META


def test_metadata_round_trip_and_foreign_files(tmp_path):
    save_weights(tmp_path / "a.safetensors", {"w": torch.ones(2)}, {"step": "3", "variant": "crop"})
    tensors, meta = read_weights(tmp_path / "a.safetensors")
    assert meta == {"step": "3", "variant": "crop"} and torch.equal(tensors["w"], torch.ones(2))
    save_weights(tmp_path / "b.safetensors", {"w": torch.ones(2)})
    assert read_weights(tmp_path / "b.safetensors")[1] == {}
    save_file({"w": torch.ones(2)}, str(tmp_path / "c.safetensors"), metadata={"variant": "global", "step": "9"})
    assert read_weights(tmp_path / "c.safetensors")[1] == {"variant": "global", "step": "9"}
    save_file({"w": torch.ones(2)}, str(tmp_path / "d.safetensors"), metadata={META_KEY: "not json"})
    with pytest.raises(UserError, match=r"d.safetensors: metadata key 'virtue' is not JSON"):
        read_weights(tmp_path / "d.safetensors")
