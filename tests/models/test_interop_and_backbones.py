"""Release interop (connector file, virtue_sam block), the tokenizer, and building from saved folders."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from virtue.data.prompts import box_prompt
from virtue.data.types import Side
from virtue.errors import UserError
from virtue.models.connector import Connector
from virtue.models.interop import load_release_connector, read_virtue_sam, save_release_connector
from virtue.models.presets import SPECIAL_TOKENS
from virtue.numerics import close


def test_connector_round_trips_through_the_release_layout(tmp_path):
    torch.manual_seed(0)
    ours = Connector(256, 64, 256, 1536, depth=2)
    path = save_release_connector(ours, tmp_path)
    assert path.name == "sam2_reducer_and_vlm_layer.pth"
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {
        "sam2_reducer.weight",
        "sam2_reducer.bias",
        "sam2vlm_layer.0.weight",
        "sam2vlm_layer.0.bias",
        "sam2vlm_layer.2.weight",
        "sam2vlm_layer.2.bias",
    }
    assert raw["sam2_reducer.weight"].shape == (256, 256, 4, 4)
    assert raw["sam2vlm_layer.2.weight"].shape == (1536, 256)
    other = Connector(256, 64, 256, 1536, depth=2)
    load_release_connector(other, path)
    x = torch.randn(2, 256, 64, 64)
    torch.testing.assert_close(other(x), ours(x), atol=0, rtol=0)
    # a release file whose names carry a module prefix loads too
    torch.save({f"model.{k}": v for k, v in raw.items()}, tmp_path / "prefixed.pth")
    load_release_connector(Connector(256, 64, 256, 1536, depth=2), tmp_path / "prefixed.pth")
    with pytest.raises(UserError, match="do not fit"):
        load_release_connector(Connector(256, 64, 16, 1536, depth=2), path)  # other |S|: other kernel


def test_read_virtue_sam_block(tmp_path):
    block = {
        "config_path": "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "checkpoint": "checkpoints/sam2.1_hiera_base_plus.pt",
        "points_per_side": 3,
        "feature_levels": 3,
    }
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl", "virtue_sam": block}))
    got = read_virtue_sam(tmp_path)
    assert got.num_points == 9 and got.sam_hub_id == "facebook/sam2.1-hiera-base-plus"
    assert "model.num_points=9" in got.model_overrides()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(UserError, match="no 'virtue_sam' block"):
        read_virtue_sam(tmp_path / "config.json")


def test_tokenizer_trains_saves_and_loads_like_a_real_one(tmp_path):
    from virtue.models.backbones import train_tokenizer

    texts = ["red circle left of blue square in a desert"] * 50 + ["green star above the yellow cross"] * 50
    tok = train_tokenizer(texts, tmp_path, vocab_size=400)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert [loaded.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    ids = loaded("red circle in a forest", add_special_tokens=False).input_ids
    assert ids == tok("red circle in a forest", add_special_tokens=False).input_ids
    assert len(ids) < len("red circle in a forest")  # merges learned from the corpus
    assert loaded.decode(ids) == "red circle in a forest"
    assert loaded.decode(loaded("ünïcode ✓").input_ids) == "ünïcode ✓"  # byte-level: nothing is unknown


def test_build_from_saved_folders_matches_the_preset(tmp_path, build, images):
    from virtue.models.backbones import train_tokenizer

    no_adapters = {"kind": "none"}  # as `virtue pretrain` saves them: plain backbones
    embedder, processor = build(adapter=no_adapters)
    embedder.vlm.save_pretrained(tmp_path / "vlm")
    train_tokenizer([], tmp_path / "vlm")
    embedder.segmentation.sam.save_pretrained(tmp_path / "sam")
    folders = {"vlm": {"path": str(tmp_path / "vlm")}, "sam": {"path": str(tmp_path / "sam")}}
    loaded, proc2 = build(adapter=no_adapters, **folders)
    sides = [Side("the object", images["a"], box_prompt(3, 4, 50, 60)), Side("text")]
    with torch.no_grad():
        assert close(loaded(proc2(sides)), embedder(processor(sides)), torch.float32, rows=True)
    with pytest.raises(UserError, match="sam_image_size"):
        build(sam_image_size=256, **folders)


def test_missing_folder_is_one_clear_error(build):
    with pytest.raises(UserError, match=r"model.vlm.path: runs/nowhere/qwen2vl: no such folder"):
        build(vlm={"path": "runs/nowhere/qwen2vl"})


def test_bad_seg_tokens_and_targets(build):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must divide the SAM map side"):
        build(seg_tokens=9)  # 8x8 map: 3 does not divide 8
    with pytest.raises(UserError, match="no_such_proj"):
        build(adapter={"kind": "lora", "targets": ["q_proj", "no_such_proj"]})


def test_meta_checkpoint_errors_are_one_line(build, tmp_path):
    with pytest.raises(UserError, match="model.sam.checkpoint: .*no such file"):
        build(sam={"preset": "sam2-tiny", "checkpoint": str(tmp_path / "missing.pt")})
    bogus = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {"no_mem_embed": torch.zeros(1, 1, 64)}}, bogus)
    with pytest.raises(UserError, match="does not fit the chosen SAM-2 size"):
        build(sam={"preset": "sam2-tiny", "checkpoint": str(bogus)})


def test_build_loads_the_release_connector_and_checks_virtue_sam(build, tmp_path):
    source, _ = build()
    with torch.no_grad():
        for p in source.connector.parameters():
            p.add_(1.0)
    save_release_connector(source.connector, tmp_path)
    loaded, _ = build(release_connector=str(tmp_path))
    for a, b in zip(source.connector.state_dict().values(), loaded.connector.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # a release folder whose config.json says points_per_side 2 (N = 4) disagrees with num_points 9
    release = tmp_path / "release"
    build(adapter={"kind": "none"})[0].vlm.save_pretrained(release)  # merged weights: no adapter modules
    from virtue.models.backbones import train_tokenizer

    train_tokenizer([], release)
    config = json.loads((release / "config.json").read_text())
    config["virtue_sam"] = {"config_path": "configs/sam2.1/sam2.1_hiera_t.yaml", "points_per_side": 2}
    (release / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="model.num_points=4"):
        build(adapter={"kind": "none"}, vlm={"path": str(release)}, release_connector=str(tmp_path))
