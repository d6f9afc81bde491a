from __future__ import annotations

from pathlib import Path

import pytest

from virtue.errors import UserError
from virtue.evalstudy.spec import is_eval_study, load_eval_study
from virtue.orchestrate.study import load_objective, load_study, pick_metric, studies_dir, trial_config, trial_overrides

SHIPPED = ["connector_depth", "seg_tokens", "points", "crop_vs_seg", "sam_backbone", "hpo"]
SHIPPED_EVAL = ["prompt_noise", "point_sampling", "i2i"]  # kind: eval, no training (virtue.evalstudy)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_studies_resolve_to_valid_configs(name):
    spec = load_study(name)
    assert spec.name == name and callable(load_objective(spec.objective))
    cells = [{"cell": c.label} for c in spec.cells] or [{k: (p.choices or [p.low])[0] for k, p in spec.search.items()}]
    for params in cells:
        cfg = trial_config(spec, trial_overrides(spec, params, 1, Path("/tmp/trial")))
        assert cfg.train.seed == 1 and cfg.train.output_dir == "/tmp/trial"
    assert not is_eval_study(name)


def test_every_shipped_study_file_is_known_and_loads():
    assert sorted(p.stem for p in studies_dir().glob("*.yaml")) == sorted(SHIPPED + SHIPPED_EVAL)
    for name in SHIPPED_EVAL:
        assert is_eval_study(name) and load_eval_study(name).name == name


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
        assert cfg.pretrain.vlm.steps == 0 and cfg.model.sam.path == b.path  # SAM-2 only, saved where asked
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


def test_the_default_budget_makes_every_reference_cell_and_the_main_path_run_one_cell():
    """params.yaml's sweeps block (steps: null) trains cells as the main path trains its variants: the five
    grid studies' reference cells are one config, and so is the main path's virtue run."""
    import yaml

    from virtue.cli.sweep_cmd import apply_sets
    from virtue.cli.train_cmd import variant_configs
    from virtue.orchestrate.budget import read_budget
    from virtue.orchestrate.cells import cell_key
    from virtue.orchestrate.study import only_cells

    root = Path(__file__).resolve().parents[2]
    budget = read_budget(root / "params.yaml")
    assert sorted(budget.studies) == sorted(SHIPPED)
    keys = {}
    for name in budget.studies:
        spec = load_study(name)
        if spec.sampler != "grid":
            continue
        spec = apply_sets(only_cells(spec, budget.cells.get(name, [])), budget.sets)
        assert {c.label for c in spec.cells} == {spec.reference, *budget.cells.get(name, [])}
        assert all(ch.cell in {c.label for c in spec.cells} for ch in spec.claim.checks)  # the claim's cells run
        keys[name] = cell_key(trial_config(spec, trial_overrides(spec, {"cell": spec.reference}, 0, Path("x"))))
    assert len(set(keys.values())) == 1, keys
    # the main path's train stage: tiny + params.yaml's train block, one config per variant, as dvc.yaml says
    stage = " ".join(yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["train"]["cmd"].split())
    for override in budget.main_path[2:]:
        key = override.split("=")[0]
        assert f"{key}=${{{key}}}" in stage, key  # dvc.yaml passes exactly these
    virtue = variant_configs(budget.experiment, budget.main_path, ["virtue"])[0]
    assert cell_key(virtue) == next(iter(keys.values()))


def test_sweep_resources_come_from_params_and_a_study_file_overrides_them(tmp_path):
    """params.yaml's sweeps.slurm gives every study's trials their Slurm resources; the keys a study file sets in
    its own `slurm:` block win for that study; a bad key is one error naming the file and the key."""
    import yaml

    from virtue.orchestrate.budget import read_budget, with_resources

    root = Path(__file__).resolve().parents[2]
    budget = read_budget(root / "params.yaml")
    shipped = with_resources(load_study("seg_tokens"), budget.slurm)
    assert shipped.slurm.model_dump(include=set(budget.slurm)) == {**budget.slurm, "partition": ""}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sweeps"]["slurm"] = {"partition": "gpu", "gpus_per_node": 1, "mem_gb": 32, "slurm_extra": {"qos": "hi"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    study = yaml.safe_load((studies_dir() / "seg_tokens.yaml").read_text())
    study["slurm"] = {"kind": "slurm", "time_min": 240, "gpus_per_node": 2}
    (tmp_path / "big.yaml").write_text(yaml.safe_dump({**study, "name": "big"}))
    spec = with_resources(load_study(str(tmp_path / "big.yaml")), read_budget(tmp_path / "params.yaml").slurm)
    got = spec.slurm
    assert (got.partition, got.gpus_per_node, got.mem_gb, got.time_min) == ("gpu", 2, 32, 240)
    assert got.slurm_extra == {"qos": "hi"} and got.log_dir == "runs/sweeps/logs"
    params["sweeps"]["slurm"] = {"gpus": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(UserError, match=r"params.yaml: sweeps.slurm.gpus"):
        read_budget(tmp_path / "params.yaml")
