"""`virtue export` and `virtue eval --export`: the exported score files and submission hold exactly the numbers
of the evaluation they come from; a missing or corrupt input is one line naming the file, exit code 2, and
nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from faults.conftest import MICRO_SYNTH, PRESETS, user_error  # tests/ is on sys.path (rootdir import mode)

from virtue.config import ExperimentConfig
from virtue.data.types import EvalQuery, Side
from virtue.eval.outputs import safe_name
from virtue.eval.run import run_protocols

from .test_report import VariantEncoder, mmeb_queries, scar_queries

NAMES = ("hit", "ndcg", "precision", "recall", "map", "mrr")
SCORE_KEYS = {"num_queries"} | {f"{name}@{k}" for name in NAMES for k in (1, 5, 10)}


def more_mmeb():
    """test_report's four tasks (one per meta-task) and a second classification task, out of distribution and
    with a name that is not a file name, so that a meta-task groups two tasks of both splits."""
    queries, tasks = mmeb_queries()
    name = "Cls 2/OOD"
    queries += [
        EvalQuery(Side(f"z {i}"), (Side(f"z{i}"), Side(f"y{i}"), Side(f"x{i}"), Side(f"z {i}")), name, f"{name}:{i}")
        for i in range(5)
    ]
    return queries, {**tasks, name: {"meta_task": "cls", "split": "OOD"}}


@pytest.fixture
def evaluated(tmp_path) -> Path:
    """An evaluation folder made by the real protocol code with a deterministic fake encoder."""
    scar = scar_queries()
    mmeb, tasks = more_mmeb()
    words = [w for q in scar + mmeb for s in (q.query, *q.candidates) for w in s.text.split()]
    out = tmp_path / "runs" / "eval" / "tiny-virtue"
    run_protocols(
        VariantEncoder(words, "virtue"),
        batch_size=8,
        out_dir=out,
        scar=scar,
        mmeb=mmeb,
        mmeb_tasks=tasks,
        meta={"experiment": "tiny-virtue", "variant": "virtue", "checkpoint": "runs/train/tiny-virtue"},
        cfg=ExperimentConfig(name="tiny-virtue"),
    )
    return out


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def hits_from_predictions(eval_dir: Path, protocol: str) -> dict[str, float]:
    """hit@1 per task recomputed from the ranks in predictions.parquet, independently of the score files."""
    df = pl.read_parquet(eval_dir / "predictions.parquet").filter(pl.col("protocol") == protocol)
    return {t: float(np.mean(g["gt_rank"].to_numpy() == 1)) for (t,), g in df.group_by("task")}


def test_export_holds_the_numbers_of_the_evaluation(evaluated, tmp_path, cli):
    out = tmp_path / "share"
    r = cli("export", evaluated, "--out", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["score_files"] == 5 + 3
    m = read(evaluated / "metrics.json")
    sub = read(out / "tiny-virtue.json")

    meta = sub["metadata"]
    assert meta["model_name"] == meta["experiment"] == "tiny-virtue" and meta["variant"] == "virtue"
    assert meta["model_backbone"] == "preset:qwen2vl-tiny" and meta["sam_backbone"] == "preset:sam2-tiny"
    assert meta["embedding_dimension"] == 160  # qwen2vl-tiny's LLM width: the embedder's last hidden state
    assert meta["model_size"] is None and any(n.startswith("model_size: null") for n in meta["notes"])
    assert meta["checkpoint"] == "runs/train/tiny-virtue" and meta["virtue_lab_version"]
    assert sub["primary_metric"] == "hit@1"

    # per-task score files: copied whole, and equal to metrics.json and to the ranks of every query
    for protocol, folder, tasks in (("mmeb", "image", m["mmeb"]["tasks"]), ("scar", "scar", m["scar"]["subsets"])):
        from_ranks = hits_from_predictions(evaluated, protocol)
        assert set(from_ranks) == set(tasks)
        exported = sub["metrics"][folder] if folder == "image" else sub["metrics"]["scar"]["subsets"]
        assert set(exported) == set(tasks)
        for task, summary in tasks.items():
            score = read(out / folder / f"{safe_name(task)}_score.json")
            assert set(score) == SCORE_KEYS
            assert score == read(evaluated / protocol / f"{safe_name(task)}_score.json") == exported[task]
            assert score["hit@1"] == summary["hit@1"] == from_ranks[task]
            assert score["hit@5"] == summary["hit@5"] and score["num_queries"] == summary["n"]
    assert (out / "image" / "Cls_2_OOD_score.json").is_file()

    # MMEB grouped by meta-task and split, with the evaluation's own means
    mm, ex = m["mmeb"], sub["metrics"]["mmeb"]
    assert {k: v["hit@1"] for k, v in ex["meta_tasks"].items()} == mm["meta_tasks"]
    assert set(ex["meta_tasks"]["cls"]["tasks"]) == {"Cls1", "Cls 2/OOD"}
    for meta_task, group in ex["meta_tasks"].items():
        for task, entry in group["tasks"].items():
            t = mm["tasks"][task]
            assert entry == {"hit@1": t["hit@1"], "meta_task": meta_task, "split": t["split"], "num_queries": t["n"]}
    assert ex["IND"] == {"hit@1": mm["IND"], "tasks": ["Cls1", "Vqa1"]}
    assert ex["OOD"] == {"hit@1": mm["OOD"], "tasks": ["Cls 2/OOD", "Grd1", "Ret1"]}
    assert ex["overall"] == {"hit@1": mm["overall"], "tasks": 5, "num_queries": mm["n"]}
    assert mm["meta_tasks"]["cls"] == pytest.approx(np.mean([mm["tasks"][t]["hit@1"] for t in ("Cls1", "Cls 2/OOD")]))

    sc = sub["metrics"]["scar"]
    assert sc["overall"] == {**{k: m["scar"]["overall"][k] for k in ("hit@1", "hit@5", "mrr")}, "num_queries": 12}
    assert sc["kinds"] == m["scar"]["kinds"]
    # the numbers are not all alike, so the equalities above compare something
    assert len({t["hit@1"] for t in mm["tasks"].values()}) > 1


def test_model_name_names_the_submission(evaluated, tmp_path, cli):
    r = cli("export", evaluated, "--out", tmp_path / "share", "--model-name", "VIRTUE-tiny v1")
    assert r.returncode == 0, r.stderr
    assert read(tmp_path / "share" / "VIRTUE-tiny_v1.json")["metadata"]["model_name"] == "VIRTUE-tiny v1"


def _remove(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_text(path.read_text()[:40])


def _other_evaluation(path: Path) -> None:
    score = read(path)
    score["hit@1"] = 1.0 - score["hit@1"] / 2 if score["hit@1"] != 1.0 else 0.25
    path.write_text(json.dumps(score))


def _bad_key(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["connector_dept"] = 2
    path.write_text(yaml.safe_dump(cfg))


BROKEN = {
    "metrics missing": ("metrics.json", _remove, "missing"),
    "metrics corrupt": ("metrics.json", _truncate, "cannot read JSON"),
    "config missing": ("config.yaml", _remove, "missing"),
    "config bad key": ("config.yaml", _bad_key, "connector_dept"),
    "score file missing": ("mmeb/Ret1_score.json", _remove, "missing"),
    "score file corrupt": ("scar/small_score.json", _truncate, "cannot read JSON"),
    "score file of another run": ("mmeb/Cls_2_OOD_score.json", _other_evaluation, "hit@1"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_missing_or_corrupt_input_is_one_line_and_nothing_is_written(evaluated, tmp_path, cli, case):
    name, damage, words = BROKEN[case]
    damage(evaluated / name)
    out = tmp_path / "share"
    user_error(cli("export", evaluated, "--out", out), str(evaluated / name), words)
    assert not out.exists()


def test_a_folder_that_is_no_evaluation(tmp_path, run_cli):
    """Through a real process too: the message and the exit code as a shell sees them."""
    user_error(run_cli("export", tmp_path / "nope", "--out", tmp_path / "share"), str(tmp_path / "nope"))


@pytest.fixture
def micro_eval_inputs(tmp_path) -> tuple[Path, Path]:
    """Micro SCaR-synth and MMEB-synth, and trainable weights of the tiny preset model (random init)."""
    from safetensors.torch import save_file

    from virtue.config import load_experiment
    from virtue.data.synth.build import synthesize
    from virtue.models import build_embedder

    data = tmp_path / "data"
    cfg = load_experiment("tiny", [*PRESETS, f"data.scar_dir={data / 'scar'}", f"data.mmeb_dir={data / 'mmeb'}",
                                   *MICRO_SYNTH])  # fmt: skip
    synthesize(cfg.data, data, progress=False)
    embedder, _ = build_embedder(cfg.model)
    weights = tmp_path / "trainable.safetensors"
    save_file({k: v.contiguous() for k, v in embedder.trainable_state_dict().items()}, str(weights))
    return data, weights


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_eval_export_writes_the_scores_of_that_evaluation(micro_eval_inputs, tmp_path, cli):
    """The real command on the tiny preset model (random weights) and micro sets: a few seconds."""
    data, weights = micro_eval_inputs
    out, share = tmp_path / "eval", tmp_path / "share"
    r = cli("eval", "tiny", *PRESETS, f"data.scar_dir={data / 'scar'}", f"data.mmeb_dir={data / 'mmeb'}",
            "tracking.enabled=false", f"--checkpoint={weights}", f"--out={out}", f"--export={share}")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    m = read(out / "metrics.json")
    sub = read(Path(json.loads(r.stdout.strip().splitlines()[-1])["export"]))
    assert sub["metadata"]["model_name"] == "tiny" and sub["metadata"]["embedding_dimension"] == 160
    assert set(sub["metrics"]["image"]) == set(m["mmeb"]["tasks"]) and len(m["mmeb"]["tasks"]) == 9
    for task, t in m["mmeb"]["tasks"].items():
        assert read(share / "image" / f"{safe_name(task)}_score.json")["hit@1"] == t["hit@1"]
    for subset, s in m["scar"]["subsets"].items():
        assert read(share / "scar" / f"{safe_name(subset)}_score.json")["hit@1"] == s["hit@1"]
    assert sub["metrics"]["mmeb"]["overall"]["hit@1"] == m["mmeb"]["overall"]
    assert sub["metrics"]["scar"]["overall"]["hit@1"] == m["scar"]["overall"]["hit@1"]


def test_eval_export_into_an_unwritable_place_fails_before_evaluating(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    r = cli("eval", "tiny", f"--checkpoint={weights}", f"--out={tmp_path / 'eval'}", f"--export={blocker / 'share'}")
    user_error(r, str(blocker / "share"))
    assert not (tmp_path / "eval").exists()
