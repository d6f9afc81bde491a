"""Evaluation on 2 gloo ranks, run by test_distributed_eval under torchrun: python _eval_worker.py OUT_DIR
(VIRTUE_ROOT: a workspace with the micro synthetic sets). Each rank writes OUT_DIR/{words,model}-rank{r}.json;
it gives every rank its own out_dir, so that a rank that writes outputs is seen."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from fake_encoder import WordEncoder

from virtue.config import ExperimentConfig, load_experiment
from virtue.data.types import EvalQuery, Side

KINDS = ("gt", "object", "relation", "scene")
LONE = Side("red star in snow")  # one side for two ranks
MICRO = [
    "model.vlm={preset: qwen2vl-tiny}",
    "model.sam={preset: sam2-tiny}",
    "data.synth.scar_train_per_subset=1",
    "data.synth.scar_val_per_subset=1",
    "data.synth.scar_eval_per_subset=1",
    "data.synth.mmeb_train_per_task=1",
    "data.synth.mmeb_eval_per_task=1",
    "eval.mmeb=false",  # the word-encoder run below covers MMEB's path through the same encoding
    "eval.batch_size=1",  # each side its own forward, whatever the shard: results equal to the bit
    "train.feature_cache=false",
    "tracking.enabled=false",
]


def micro_config() -> ExperimentConfig:
    return load_experiment("tiny", MICRO)


def word_queries():
    """(encoder, SCaR queries, MMEB queries, MMEB task info): 7 + 5 queries over 20-odd distinct sides."""
    colours, shapes, places = ["red", "green", "blue"], ["star", "cube", "ring"], ["snow", "desert"]
    scar = []
    for i in range(7):
        c, s, p = colours[i % 3], shapes[(i + 1) % 3], places[i % 2]
        gt = f"{c} {s} left of ring in {p}"
        cands = (gt, f"{colours[(i + 1) % 3]} {s} left of ring in {p}", gt.replace("left", "right"),
                 gt.replace(p, places[(i + 1) % 2]))  # fmt: skip
        query = Side(f"{c} {s} {'left' if i % 3 else 'right'} {p}", image=f"/img/{i}.png")
        scar.append(EvalQuery(query, tuple(map(Side, cands)), f"subset{i % 2}", f"s:{i}", KINDS))
    mmeb = [EvalQuery(Side(p, image=f"/img/m{i}.png"), (Side(p), Side(places[1 - i % 2])), "SceneCls", f"m:{i}")
            for i, p in enumerate(places * 2)]  # fmt: skip
    mmeb.append(EvalQuery(Side("green cube"), (Side("green cube"), Side("red star")), "ObjRet", "m:9"))
    tasks = {"SceneCls": {"meta_task": "cls", "split": "IND"}, "ObjRet": {"meta_task": "ret", "split": "OOD"}}
    vocab = " ".join([*colours, *shapes, *places, "left right of ring in"]).split()
    return WordEncoder(vocab), scar, mmeb, tasks


def sides_json(sides: list[Side]) -> list[list]:
    return [[s.text, s.image] for s in sides]


if __name__ == "__main__":
    from virtue.eval.encode import embed_sides
    from virtue.eval.run import evaluate, run_protocols
    from virtue.train.distributed import init_distributed, shutdown_distributed

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    env = init_distributed("cpu")
    enc, scar, mmeb, tasks = word_queries()
    words = run_protocols(enc, batch_size=2, out_dir=out / "words" / f"rank{env.rank}", scar=scar, mmeb=mmeb,
                          mmeb_tasks=tasks)  # fmt: skip
    _, lone = embed_sides([LONE], word_queries()[0], batch_size=4, desc="")  # rank 1's share is empty
    result = {"metrics": words, "encoded": sides_json(enc.encoded), "lone": lone.tolist()}
    (out / f"words-rank{env.rank}.json").write_text(json.dumps(result))
    shutdown_distributed()

    # evaluate joins a group itself: the second join of this process (a re-join must not reuse the first's keys)
    metrics = evaluate(micro_config(), None, out_dir=out / "model" / f"rank{env.rank}")
    result = {"metrics": metrics, "group_left": not dist.is_initialized()}
    (out / f"model-rank{env.rank}.json").write_text(json.dumps(result))
