"""Checkpoints: atomic folders, latest complete one, no pickled objects, wrong shapes refused."""

import pickle

import pytest
import torch

from virtue.errors import UserError
from virtue.train.checkpoint import latest_checkpoint, load_checkpoint, restore_rng, rng_states, save_checkpoint


def _save(folder, step, model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    sd = dict(model.state_dict())
    return save_checkpoint(folder, step, trainable=sd, optimizer=opt, scheduler=sched, data_position=step)


def test_latest_complete_checkpoint_and_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    _save(tmp_path, 2, model)
    _save(tmp_path, 10, model)
    (tmp_path / ".tmp-step-00000012").mkdir()  # a save that died half-way is never picked
    (tmp_path / "step-00000011").mkdir()  # nor a folder without meta.json
    path = latest_checkpoint(tmp_path)
    assert path.name == "step-00000010"
    ck = load_checkpoint(path, {"weight": (2, 3), "bias": (2,)})
    assert ck.step == 10 and ck.state["data_position"] == 10
    assert torch.equal(ck.trainable["weight"], model.weight)
    assert set(ck.state["optimizer"]) == {"state", "param_groups"}
    assert latest_checkpoint(tmp_path / "none") is None


def test_nothing_needs_unpickling(tmp_path):
    path = _save(tmp_path, 1, torch.nn.Linear(3, 2))
    for f in ("state.pt", "rng-rank0.pt"):
        torch.load(path / f, weights_only=True)  # raises on any non-allow-listed object
    assert (path / "trainable.safetensors").read_bytes()[:8] != pickle.dumps(None)[:8]


def test_other_model_shape_is_refused(tmp_path):
    path = _save(tmp_path, 1, torch.nn.Linear(3, 2))
    with pytest.raises(UserError, match=r"another model shape: weight is \[2, 3\] in the checkpoint"):
        load_checkpoint(path, {"weight": (4, 3), "bias": (2,)})
    with pytest.raises(UserError, match="missing lora"):
        load_checkpoint(path, {"weight": (2, 3), "bias": (2,), "lora": (1,)})
    with pytest.raises(UserError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path, {})


def test_rng_states_round_trip():
    import random

    import numpy as np

    state = rng_states()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
