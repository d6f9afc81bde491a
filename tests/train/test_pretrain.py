"""Backbone pre-training on micro synthetic data: the saved folders load like hub checkpoints (from_pretrained,
and through build_embedder via model.sam.path / model.vlm.path), the losses fall, and a seed fixes the weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, Qwen2VLModel, Sam2Model

from virtue.config import load_experiment
from virtue.data.prompts import box_prompt
from virtue.data.synth.scar import write_scar
from virtue.data.types import Side
from virtue.models.build import build_embedder
from virtue.train.pretrain import pretrain

MICRO = [
    "pretrain.sam.steps=30",
    "pretrain.sam.batch_size=8",
    "pretrain.vlm.steps=30",
    "pretrain.vlm.batch_size=8",
    "pretrain.sam.eval_scenes=8",
    "pretrain.vlm.eval_images=8",
    "tracking.enabled=false",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    write_scar(root / "data/scar-synth", seed=0, image_size=64, per_subset={"train": 6, "eval": 3}, progress=False)
    return root


def _run(root: Path, overrides: list[str]) -> tuple[Path, dict]:
    cfg = load_experiment("tiny", [*MICRO, *overrides])
    out = pretrain(cfg, root=root)
    return out, json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_pretrain_folders_load_and_losses_fall(workspace: Path):
    out, metrics = _run(workspace, ["pretrain.vlm.dense_weight=1"])
    sam_dir, vlm_dir = workspace / "runs/backbones/sam2", workspace / "runs/backbones/qwen2vl"
    assert isinstance(Sam2Model.from_pretrained(sam_dir), Sam2Model)
    assert isinstance(Qwen2VLModel.from_pretrained(vlm_dir), Qwen2VLModel)
    tok = AutoTokenizer.from_pretrained(vlm_dir)
    assert tok.convert_tokens_to_ids("<|image_pad|>") == 5
    assert (vlm_dir / "preprocessor_config.json").is_file()
    assert (out / "config.yaml").is_file()
    assert not (out / ".staging").exists()

    for stage in ("sam2", "qwen2vl"):
        m = metrics[stage]
        assert m["loss_last"] < m["loss_first"], (stage, m)
    assert 0.0 <= metrics["sam2"]["eval_box_miou"] <= 1.0
    assert 0.0 <= metrics["qwen2vl"]["eval_scene_r1_i2t"] <= 1.0
    for attribute in ("colour", "shape", "size"):  # the per-location heads on the image tokens, held out
        assert 0.0 <= metrics["qwen2vl"][f"eval_{attribute}_cell_acc"] <= 1.0
    for field in ("obj_colour", "predicate", "ref_shape", "sky"):  # the caption heads, on held-out captions
        assert 0.0 <= metrics["qwen2vl"][f"eval_caption_{field}_acc"] <= 1.0

    # The VIRTUE stage loads them through the model config, exactly as it would load hub checkpoints.
    cfg = load_experiment("tiny")
    embedder, processor = build_embedder(cfg.model, root=workspace)
    image = str(next((workspace / "data/scar-synth/images/eval").rglob("*.png")))
    with torch.no_grad():
        z = embedder(processor([Side("the object in the box", image, box_prompt(4, 4, 30, 30)), Side("a red star")]))
    assert z.shape == (2, embedder.dim)
    saved = Sam2Model.from_pretrained(sam_dir).state_dict()
    for name, t in embedder.segmentation.sam.state_dict().items():  # in the experiment's dtype (tiny: bfloat16)
        assert t.dtype == getattr(torch, cfg.model.dtype) and torch.equal(t, saved[name].to(t.dtype)), name


@pytest.mark.slow
def test_pretrain_is_deterministic(workspace: Path, tmp_path: Path):
    few = ["pretrain.sam.steps=3", "pretrain.vlm.steps=3"]
    weights = []
    for i in range(2):
        out_dirs = [f"model.sam.path={tmp_path}/{i}/sam2", f"model.vlm.path={tmp_path}/{i}/qwen2vl"]
        _run(workspace, [*few, *out_dirs, f"pretrain.output_dir={tmp_path}/{i}"])
        weights.append(
            (Sam2Model.from_pretrained(tmp_path / f"{i}/sam2"), Qwen2VLModel.from_pretrained(tmp_path / f"{i}/qwen2vl"))
        )
    for a, b in zip(weights[0], weights[1], strict=True):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # and the training did change the weights (a different seed gives different ones)
    _run(
        workspace,
        [
            *few,
            "pretrain.seed=1",
            f"model.sam.path={tmp_path}/2/sam2",
            f"model.vlm.path={tmp_path}/2/qwen2vl",
            f"pretrain.output_dir={tmp_path}/2",
        ],
    )
    other = Sam2Model.from_pretrained(tmp_path / "2/sam2").state_dict()
    assert any(not torch.equal(other[k], weights[0][0].state_dict()[k]) for k in other)


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_pretrain_cli_missing_scenes(run_cli, tmp_path: Path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "experiments/tiny.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "experiments/tiny.yaml").read_text()
    )
    r = run_cli("pretrain", "tiny", "tracking.enabled=false", cwd=tmp_path, env={"VIRTUE_ROOT": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    assert "pretrain.scenes_dir" in r.stderr and "no such folder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _mask_logit_scale(sam) -> float:
    torch.manual_seed(0)
    pts = torch.tensor([[[[10.0, 10.0], [60.0, 70.0]]]])
    labels = torch.tensor([[[2, 3]]])
    with torch.no_grad():
        out = sam(
            pixel_values=torch.randn(1, 3, 128, 128), input_points=pts, input_labels=labels, multimask_output=False
        )
    return float(out.pred_masks.abs().mean())


def test_sam_from_scratch_init(tmp_path: Path):
    from virtue.config.model import BackboneConfig
    from virtue.models.backbones import build_sam
    from virtue.train.pretrain_sam import reset_to_pytorch_init

    torch.manual_seed(0)
    sam = build_sam(BackboneConfig(preset="sam2-tiny"), image_size=128, root=tmp_path)
    image_pe = sam.shared_image_embedding.positional_embedding
    prompt_pe = sam.prompt_encoder.shared_embedding.positional_embedding
    assert torch.equal(image_pe, prompt_pe)  # one code for image and prompts (transformers draws two)
    before = _mask_logit_scale(sam)
    reset_to_pytorch_init(sam)
    assert torch.equal(image_pe, prompt_pe)  # buffers are not touched by the re-init
    assert _mask_logit_scale(sam) > 100 * before


def test_attribute_cells_label_each_grid_cell_by_its_main_object():
    import numpy as np

    from virtue.train.pretrain_data import attribute_cells

    a = np.zeros((64, 64), bool)
    a[0:16, 0:24] = True  # all of cell (0, 0), half of cell (0, 1)
    b = np.zeros((64, 64), bool)
    b[0:16, 28:32] = True  # a quarter of cell (0, 1): less than a
    b[40:42, 40:48] = True  # 1/16 of cell (2, 2): below the cover threshold
    cells = attribute_cells([a, b], [(1, 2), (5, 6)], side=4)
    assert cells.shape == (2, 4, 4)
    assert cells[:, 0, 0].tolist() == [1, 2]
    assert cells[:, 0, 1].tolist() == [1, 2]  # a covers more of it than b
    assert (cells[:, 2, 2] == -100).all() and (cells[:, 3, 3] == -100).all()
    assert (cells >= 0).sum() == 4  # two cells x two attributes


def test_false_captions_differ_in_one_element_and_are_false_for_the_image(workspace: Path):
    import numpy as np

    from virtue.data.synth.vocab import HELD_OUT, parse_caption
    from virtue.train.pretrain_data import _relation, caption_and_negative, load_scenes

    scenes = load_scenes(workspace / "data/scar-synth", "train")
    rng = np.random.default_rng(0)
    seen = {"objects": 0, "region": 0, "relation": 0}
    for sc in scenes:
        assert caption_and_negative(sc, "scene", rng)[1] is None
        for kind in seen:
            true, wrong = caption_and_negative(sc, kind, rng)
            if wrong is None:
                continue
            seen[kind] += 1
            a, b = true.split(), wrong.split()
            changed = sum(x != y for x, y in zip(a, b, strict=True))
            # one word, or the region's phrase ("in the sky" <-> "on the ground")
            assert len(a) == len(b) and 1 <= changed <= (2 if kind == "region" else 1), (true, wrong)
            assert not any(f"{c} {s}" in wrong for c, s in HELD_OUT)
            if kind == "relation":  # no pair of objects of the image makes the false caption true
                cap = parse_caption(wrong)
                holds = {
                    (x.desc, p, y.desc)
                    for x in sc.objects
                    for y in sc.objects
                    if x is not y
                    for p in _relation(x, y, max(sc.size))
                }
                assert (cap.obj, cap.pred, cap.ref) not in holds
    assert all(n > 0 for n in seen.values()), seen
