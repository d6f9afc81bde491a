"""Release interop (connector file, virtue_sam block), the tokenizer, and building from saved folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from virtue.config.model import ModelConfig
from virtue.data.prompts import box_prompt, grid_points, to_frame
from virtue.data.types import Side
from virtue.errors import UserError
from virtue.models import build_embedder
from virtue.models.connector import Connector
from virtue.models.interop import load_release_connector, read_virtue_sam, save_release_connector
from virtue.models.presets import SPECIAL_TOKENS
from virtue.numerics import close

RELEASE_2B = (256, 64, 256, 1536, 2)  # SAM channels, map side, |S|, d_llm, connector depth


def test_connector_loads_the_release_nested_layout_like_our_own(tmp_path):
    torch.manual_seed(0)
    source = Connector(*RELEASE_2B)
    # the release's own writer: one state dict per module, {"sam2_reducer": .., "sam2vlm_layer": ..}
    nested = {"sam2_reducer": source.reduce.state_dict(), "sam2vlm_layer": source.mlp.state_dict()}
    assert set(nested["sam2vlm_layer"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # 1 is the GELU
    torch.save(nested, tmp_path / "release.pth")
    flat = {f"{module}.{k}": v for module, state in nested.items() for k, v in state.items()}
    torch.save(flat, tmp_path / "flat.pth")
    torch.save({f"model.{k}": v for k, v in flat.items()}, tmp_path / "prefixed.pth")
    ours = save_release_connector(source, tmp_path / "ours")
    assert ours.name == "sam2_reducer_and_vlm_layer.pth"
    x = torch.randn(2, 256, 64, 64)
    with torch.no_grad():
        expected = source(x)
        for name in ["release.pth", "flat.pth", "prefixed.pth", "ours"]:
            loaded = Connector(*RELEASE_2B)
            load_release_connector(loaded, tmp_path / name)
            torch.testing.assert_close(loaded(x), expected, atol=0, rtol=0)


def test_saved_connector_is_in_the_release_layout_and_bad_files_are_one_line(tmp_path):
    path = save_release_connector(Connector(*RELEASE_2B), tmp_path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"sam2_reducer", "sam2vlm_layer"}
    assert set(raw["sam2_reducer"]) == {"weight", "bias"}
    assert set(raw["sam2vlm_layer"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert raw["sam2_reducer"]["weight"].shape == (256, 256, 4, 4)
    assert raw["sam2vlm_layer"]["2.weight"].shape == (1536, 256)
    with pytest.raises(UserError, match="do not fit"):
        load_release_connector(Connector(256, 64, 16, 1536, depth=2), path)  # other |S|: other kernel
    torch.save({"encoder": {"weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(UserError, match=r"other\.pth: not a VIRTUE connector file .*found keys \['encoder\.weight'\]"):
        load_release_connector(Connector(*RELEASE_2B), tmp_path / "other.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(UserError, match=r"list\.pth: not a VIRTUE connector file .*found a list"):
        load_release_connector(Connector(*RELEASE_2B), tmp_path / "list.pth")


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

    with pytest.raises(ValidationError, match="divides the SAM map side"):
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


def test_compat_grid_is_in_sams_frame_and_the_clean_grid_is_unchanged(tmp_path):
    Image.new("RGB", (640, 480)).save(tmp_path / "wide.png")
    wide = str(tmp_path / "wide.png")

    def sam_prompt(compat: bool, prompt=None):
        tiny = {"vlm": {"preset": "qwen2vl-tiny"}, "sam": {"preset": "sam2-tiny"}, "seg_tokens": 16}
        cfg = ModelConfig.model_validate({**tiny, "sam_image_size": 1024, "official_compat": compat})
        _, processor = build_embedder(cfg, meta=True)
        return processor([Side("the scene", wide, prompt)], pixels=False).sam_prompts[0]

    # the release: (i + 0.5) / 3 of each axis, scaled into SAM's 1024 square, whatever the image's shape
    compat = sam_prompt(True)
    ticks = torch.tensor([1024 / 6, 512, 1024 * 5 / 6])
    torch.testing.assert_close(compat.points, torch.cartesian_prod(ticks, ticks)[:, [1, 0]])
    assert compat.labels.tolist() == [1] * 9
    # the clean path: the grid in the image's pixels, converted to SAM's frame once (today's numbers, exactly)
    clean = sam_prompt(False)
    today = to_frame(np.asarray(grid_points(9, 640, 480)), (640, 480), (1024, 1024))
    torch.testing.assert_close(clean.points, torch.tensor(today, dtype=torch.float32), atol=0, rtol=0)
    # a user box in compat mode stays in original pixels (the release's documented quirk)
    box = sam_prompt(True, box_prompt(10, 20, 300, 400))
    assert box.points.tolist() == [[10, 20], [300, 400]]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty HF hub cache with the hub unreachable. huggingface_hub reads the variables once, at import."""
    import huggingface_hub

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hub_id_release_config_is_found_in_the_hf_cache_and_checked(build, tmp_path, hub_cache):
    from virtue.models.backbones import train_tokenizer

    source, _ = build(adapter={"kind": "none"})
    save_release_connector(source.connector, tmp_path / "connector")
    # Org/VIRTUE-Tiny as a download leaves it: refs/main names the snapshot that holds the files
    repo = hub_cache / "models--Org--VIRTUE-Tiny"
    snapshot = repo / "snapshots" / ("ab" * 20)
    source.vlm.save_pretrained(snapshot)
    train_tokenizer([], snapshot)
    config = json.loads((snapshot / "config.json").read_text())
    config["virtue_sam"] = {"config_path": "configs/sam2.1/sam2.1_hiera_t.yaml", "points_per_side": 2}
    (snapshot / "config.json").write_text(json.dumps(config))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("ab" * 20)
    release = {"adapter": {"kind": "none"}, "vlm": {"path": "Org/VIRTUE-Tiny"}}
    release["release_connector"] = str(tmp_path / "connector")
    with pytest.raises(
        UserError, match=r"num_points: 9, but .*models--Org--VIRTUE-Tiny.*points_per_side 2 \(set model.num_points=4"
    ):
        build(**release)
    build(num_points=4, **release)  # the release's own N: loads from the cache, no network


def test_hub_id_without_a_cached_config_warns_that_the_check_is_skipped(tmp_path, hub_cache):
    from virtue.models.interop import find_release_config

    with pytest.warns(UserWarning, match="Org/Elsewhere: no config.json .* virtue_sam check .* skipped"):
        assert find_release_config("Org/Elsewhere", tmp_path) is None
