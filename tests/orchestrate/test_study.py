from __future__ import annotations

from pathlib import Path

import pytest

from virtue.errors import UserError
from virtue.orchestrate.study import load_objective, load_study, pick_metric, studies_dir, trial_config, trial_overrides

SHIPPED = ["connector_depth", "seg_tokens", "points", "crop_vs_seg", "sam_backbone", "hpo"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_studies_resolve_to_valid_configs(name):
    spec = load_study(name)
    assert spec.name == name and callable(load_objective(spec.objective))
    cells = [{"cell": c.label} for c in spec.cells] or [{k: (p.choices or [p.low])[0] for k, p in spec.search.items()}]
    for params in cells:
        cfg = trial_config(spec, trial_overrides(spec, params, 1, Path("/tmp/trial")))
        assert cfg.train.seed == 1 and cfg.train.output_dir == "/tmp/trial"
    assert sorted(p.stem for p in studies_dir().glob("*.yaml")) == sorted(SHIPPED)


def test_axis_values_reach_the_config():
    spec = load_study("connector_depth")
    depths = [trial_config(spec, trial_overrides(spec, {"cell": c.label}, 0, Path("/t"))).model.connector_depth
              for c in spec.cells]  # fmt: skip
    assert depths == [1, 2, 3]


def test_bad_study_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmetric: m\ncells: [{label: a}, {label: a}]\n")
    with pytest.raises(UserError, match="bad.yaml: .*unique"):
        load_study(bad)
    bad.write_text("name: bad\nmetric: m\nsampler: tpe\n")
    with pytest.raises(UserError, match="search"):
        load_study(bad)
    with pytest.raises(UserError, match="no such study"):
        load_study("nope")


def test_pick_metric_reads_nested_keys_with_dots():
    m = {"scar": {"overall": {"hit@1": 0.5}}, "a.b": 2}
    assert pick_metric(m, "scar.overall.hit@1") == 0.5 and pick_metric(m, "a.b") == 2.0
    with pytest.raises(KeyError):
        pick_metric(m, "scar.overall.mrr")


def test_sam_backbone_study_pretrains_the_sam2s_its_cells_load():
    from virtue.orchestrate.backbones import backbone_config

    spec = load_study("sam_backbone")
    made = {}
    for b in spec.backbones:
        cfg = backbone_config(spec, b)
        assert cfg.pretrain.vlm_steps == 0 and cfg.model.sam.path == b.path  # SAM-2 only, saved where asked
        assert not cfg.model.vlm.path.startswith("runs/backbones")  # the main VLM is never overwritten
        made[b.path] = cfg.model.sam.arch
    used = {}
    for c in spec.cells:
        cfg = trial_config(spec, trial_overrides(spec, {"cell": c.label}, 0, Path("/t")))
        if cfg.model.sam.path in made:
            used[cfg.model.sam.path] = cfg.model.sam.arch
    assert used == made == {p: a for p, a in made.items() if a in ("sam2-tiny-s", "sam2-tiny-l")} and len(made) == 2
    untrained = trial_config(spec, trial_overrides(spec, {"cell": "untrained"}, 0, Path("/t")))
    assert untrained.model.sam.path is None and untrained.model.sam.preset == "sam2-tiny"
