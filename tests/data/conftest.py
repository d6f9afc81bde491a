"""A tiny SCaR-synth set shared by the data tests (generated once per session)."""

from __future__ import annotations

import pytest

from virtue.data.synth.scar import write_scar

SIZES = {"train": 6, "eval": 4}


@pytest.fixture(scope="session")
def scar_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("scar") / "scar-synth"
    write_scar(out, seed=3, image_size=128, per_subset=SIZES, progress=False)
    return out


@pytest.fixture(scope="session")
def mmeb_dir(tmp_path_factory):
    from virtue.data.synth.mmeb import write_mmeb

    out = tmp_path_factory.mktemp("mmeb") / "mmeb-synth"
    write_mmeb(out, seed=3, image_size=128, per_task={"train": 3, "eval": 4}, progress=False)
    return out


@pytest.fixture(scope="session")
def i2i_dir(tmp_path_factory):
    from virtue.data.synth.i2i import write_i2i

    out = tmp_path_factory.mktemp("i2i") / "i2i-synth"
    write_i2i(out, seed=3, image_size=128, n_eval=8, progress=False)
    return out
