import json

import polars as pl
import pytest

from virtue.data.types import EvalQuery, Side
from virtue.eval.run import run_protocols

from .fake_encoder import WordEncoder

KINDS = ("gt", "object_in_image", "relation", "scene")


def scar_query(qid, subset, query, gt, obj, rel, scene):
    return EvalQuery(
        query=Side(query, image=f"/img/{qid}.png"),
        candidates=(Side(gt), Side(obj), Side(rel), Side(scene)),
        task=subset,
        qid=qid,
        candidate_kinds=KINDS,
    )


@pytest.fixture
def micro():
    caps = [
        "red star left of blue ring in snow",
        "green cube left of blue ring in snow",
        "red star right of blue ring in snow",
        "red star left of blue ring in desert",
    ]
    vocab = " ".join(caps + ["green cube right of desert"]).split()
    scar = [
        # q1: the query spells out the GT exactly -> rank 1, beats every kind
        scar_query("a:0", "alpha", caps[0], *caps),
        # q2: the query matches the object swap best -> GT ranks 2 (object swap first); relation/scene lost? see test
        scar_query("a:1", "alpha", "green cube left of blue ring in snow", *caps),
        # q3: the query favours "right" and "desert" equally -> ties against GT
        scar_query("b:0", "beta", "red star right of desert", *caps),
    ]
    cls_c = [Side("snow"), Side("desert")]
    mmeb = [
        EvalQuery(Side("snow", image="/img/m0.png"), tuple(cls_c), "SceneCls", "m:0"),
        EvalQuery(Side("desert", image="/img/m1.png"), (Side("desert"), Side("snow")), "SceneCls", "m:1"),
        EvalQuery(Side("green cube"), (Side("green cube"), Side("red star")), "ObjRet", "m:2"),
    ]
    tasks = {"SceneCls": {"meta_task": "cls", "split": "IND"}, "ObjRet": {"meta_task": "ret", "split": "OOD"}}
    return WordEncoder(vocab), scar, mmeb, tasks


def test_scar_and_mmeb_values_by_hand(micro, tmp_path):
    enc, scar, mmeb, tasks = micro
    m = run_protocols(
        enc, batch_size=2, out_dir=tmp_path, scar=scar, mmeb=mmeb, mmeb_tasks=tasks, meta={"variant": "x"}
    )
    assert m["variant"] == "x"
    alpha, beta = m["scar"]["subsets"]["alpha"], m["scar"]["subsets"]["beta"]
    # alpha: q1 rank 1, q2 rank 2 (the object swap equals the query); beta: GT shares "red star of" with the
    # query, the relation swap shares "red star right of": rank 2 at best
    assert alpha["hit@1"] == 0.5 and alpha["n"] == 2
    assert alpha["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert beta["hit@1"] == 0.0 and beta["n"] == 1
    assert m["scar"]["overall"]["hit@1"] == pytest.approx((0.5 + 0.0) / 2)  # mean of subsets
    assert m["scar"]["overall"]["micro"]["hit@1"] == pytest.approx(1 / 3)
    kinds = m["scar"]["kinds"]
    assert kinds["object_in_image"] == {"accuracy": pytest.approx(2 / 3), "n": 3}  # lost only on q2
    assert kinds["relation"]["accuracy"] == pytest.approx(2 / 3)  # lost only on q3
    # MMEB: SceneCls both right, ObjRet right -> every task 1.0; meta-task and split means follow
    assert m["mmeb"]["tasks"]["SceneCls"]["hit@1"] == 1.0
    assert m["mmeb"]["meta_tasks"] == {"cls": 1.0, "ret": 1.0}
    assert m["mmeb"]["IND"] == 1.0 and m["mmeb"]["OOD"] == 1.0 and m["mmeb"]["overall"] == 1.0


def test_mmeb_means_are_over_tasks(tmp_path):
    enc = WordEncoder(["a", "b", "c"])
    q = [
        EvalQuery(Side("a"), (Side("a"), Side("b")), "T1", "1"),
        EvalQuery(Side("a"), (Side("b"), Side("a")), "T1", "2"),
        EvalQuery(Side("c"), (Side("c"), Side("a")), "T2", "3"),
        EvalQuery(Side("c"), (Side("b"), Side("c")), "T3", "4"),
    ]
    tasks = {
        "T1": {"meta_task": "vqa", "split": "IND"},
        "T2": {"meta_task": "vqa", "split": "OOD"},
        "T3": {"meta_task": "grd", "split": "OOD"},
    }
    m = run_protocols(enc, batch_size=8, out_dir=tmp_path, mmeb=q, mmeb_tasks=tasks)["mmeb"]
    assert [m["tasks"][t]["hit@1"] for t in ("T1", "T2", "T3")] == [0.5, 1.0, 0.0]
    assert m["meta_tasks"] == {"vqa": 0.75, "grd": 0.0}
    assert m["IND"] == 0.5 and m["OOD"] == 0.5
    assert m["overall"] == pytest.approx(0.5)
    assert "scar" not in m


def test_each_distinct_side_is_encoded_once_in_batches(micro, tmp_path):
    enc, scar, mmeb, tasks = micro
    run_protocols(enc, batch_size=2, out_dir=tmp_path, scar=scar, mmeb=mmeb, mmeb_tasks=tasks)
    encoded = enc.encoded
    assert len(encoded) == len(set(encoded))
    # SCaR: 3 distinct queries + 4 distinct captions; MMEB: 2 image queries + the text "green cube" (query of
    # one task and candidate of the same task: encoded once) + snow, desert, red star
    assert len(encoded) == 3 + 4 + 2 + 1 + 3
    assert max(len(b) for b in enc.calls) == 2


def test_same_text_other_image_is_not_merged(tmp_path):
    enc = WordEncoder(["a", "b"])
    q = [
        EvalQuery(Side("a", image="/x.png"), (Side("a"), Side("b")), "T", "1"),
        EvalQuery(Side("a", image="/y.png"), (Side("a"), Side("b")), "T", "2"),
    ]
    run_protocols(enc, batch_size=4, out_dir=tmp_path, scar=q)
    assert len(enc.encoded) == 4  # "a" on two images, "a" without image, "b"
    assert Side("a") in enc.encoded and Side("a", image="/x.png") in enc.encoded


def test_output_files_follow_vlm2vec_convention(micro, tmp_path):
    enc, scar, mmeb, tasks = micro
    m = run_protocols(enc, batch_size=3, out_dir=tmp_path, scar=scar, mmeb=mmeb, mmeb_tasks=tasks)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(m))
    score = json.loads((tmp_path / "scar" / "alpha_score.json").read_text())
    for name in ("hit", "ndcg", "precision", "recall", "map", "mrr"):
        for k in (1, 5, 10):
            assert f"{name}@{k}" in score
    assert score["hit@1"] == m["scar"]["subsets"]["alpha"]["hit@1"]
    assert score["num_queries"] == 2
    lines = [json.loads(x) for x in (tmp_path / "scar" / "alpha_pred.jsonl").read_text().splitlines()]
    assert [x["qid"] for x in lines] == ["a:0", "a:1"]
    assert lines[0]["prediction"][0] == 0 and lines[1]["prediction"][0] == 1 and lines[1]["rank"] == 2
    assert (tmp_path / "mmeb" / "SceneCls_score.json").is_file()
    pred = pl.read_parquet(tmp_path / "predictions.parquet")
    assert pred.height == len(scar) + len(mmeb)
    assert set(pred.columns) >= {"qid", "task", "ranks", "scores", "predicted", "gt_rank"}
    row = pred.filter(pl.col("qid") == "a:1").row(0, named=True)
    assert row["predicted"] == 1 and row["gt_rank"] == 2 and row["ranks"][0] == 2 and row["ranks"][1] == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_deterministic(micro, tmp_path):
    enc, scar, mmeb, tasks = micro
    a = run_protocols(enc, batch_size=2, out_dir=tmp_path / "a", scar=scar, mmeb=mmeb, mmeb_tasks=tasks)
    b = run_protocols(enc, batch_size=5, out_dir=tmp_path / "b", scar=scar, mmeb=mmeb, mmeb_tasks=tasks)
    assert a == b
    assert (tmp_path / "a" / "predictions.parquet").read_bytes() == (
        tmp_path / "b" / "predictions.parquet"
    ).read_bytes()


def test_unknown_mmeb_task_is_a_user_error(tmp_path):
    from virtue.errors import UserError

    q = [EvalQuery(Side("a"), (Side("a"), Side("b")), "Nope", "1")]
    with pytest.raises(UserError, match="Nope"):
        run_protocols(WordEncoder(["a", "b"]), batch_size=4, out_dir=tmp_path, mmeb=q, mmeb_tasks={})


def test_batches_group_alike_sides(micro, tmp_path):
    enc, scar, mmeb, tasks = micro
    run_protocols(enc, batch_size=3, out_dir=tmp_path, scar=scar)
    kinds = [{s.image is not None for s in batch} for batch in enc.calls]
    # 4 text captions then 3 image queries: the only mixed batch is at most the one at the boundary
    assert sum(len(k) > 1 for k in kinds) <= 1
    assert [s.image is not None for s in enc.encoded] == sorted(s.image is not None for s in enc.encoded)
