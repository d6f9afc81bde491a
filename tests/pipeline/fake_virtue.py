"""A stand-in `virtue` command for testing the DVC wiring alone: `data synth`, `pretrain` and `train` write
small outputs recording their arguments, `eval` writes real-format metrics with a deterministic encoder (its
numbers depend on the variant and on the train steps it was given), `sweep` writes a real-format study summary
(one row per cell of the real study file, numbers from its --set budget; an empty one for evaluation-only
studies), `report` is the real command. Every call is appended to $FAKE_VIRTUE_LOG."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from virtue.cli.main import main as real_main
from virtue.data.types import EvalQuery, Side
from virtue.eval.run import run_protocols


def overrides(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("-"))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def encoder(salt: str):
    def encode(sides):
        rows = [
            [int(hashlib.sha1(f"{salt}|{s.text}|{j}".encode()).hexdigest(), 16) % 997 for j in range(6)] for s in sides
        ]
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)

    return encode


def fake_eval(args: list[str]) -> None:
    o = overrides(args)
    run = Path(args[args.index("--checkpoint") + 1])
    steps = json.loads((run / "args.json").read_text())["train.steps"]
    kinds = ("gt", "object_in_image", "object_absent", "relation", "scene")
    scar = [
        EvalQuery(
            Side(f"q{i}", image=f"/i{i}.png"), tuple(Side(f"c{i}{j}") for j in range(5)), f"sub{i % 2}", f"s:{i}", kinds
        )
        for i in range(8)
    ]
    mmeb = [
        EvalQuery(Side(f"m{i}"), tuple(Side(f"t{i}{j}") for j in range(3)), f"T{i % 4}", f"m:{i}") for i in range(8)
    ]
    info = {f"T{k}": {"meta_task": ("cls", "vqa", "ret", "grd")[k], "split": ("IND", "OOD")[k % 2]} for k in range(4)}
    (
        run_protocols(
            encoder(f"{o['model.variant']}{steps}"),
            batch_size=4,
            out_dir=o["eval.output_dir"],
            scar=scar,
            mmeb=mmeb,
            mmeb_tasks=info,
            meta={"experiment": o["name"], "variant": o["model.variant"]},
        )
    )
    write(Path(o["eval.output_dir"]) / "config.yaml", json.dumps(o))


def fake_sweep(args: list[str]) -> None:
    from virtue.evalstudy.spec import is_eval_study, load_eval_study
    from virtue.orchestrate.budget import read_budget
    from virtue.orchestrate.study import load_study, only_cells
    from virtue.orchestrate.sweep_report import cells_csv

    study = args[args.index("--study") + 1]
    if is_eval_study(study):  # evaluation-only: an empty summary in the real format (no runs to evaluate here)
        spec = load_eval_study(study)
        summary = {"study": spec.name, "kind": "eval", "evaluation": spec.study, "runs": {}, "results": [],
                   "comparisons": [], "metrics": {}}  # fmt: skip
        if spec.study == "prompt_noise":
            summary |= {"conditions": [], "between_variants": [], "follow": {}}
        if spec.study == "i2i":
            summary |= {"queries": 0, "candidates": 10, "oracles": {"n": 0, "global": 0, "crop": 0, "both": 0}}
        write(Path("reports/sweeps") / f"{spec.name}.json", json.dumps(summary))
        write(Path("reports/sweeps") / f"{spec.name}.png", "not a png")
        write(Path("reports/sweeps") / f"{spec.name}.csv", "variant,condition,p@1\n")
        return
    budget = read_budget(args[args.index("--budget-from") + 1])  # the real command's reading of params.yaml
    sets = dict(x.split("=", 1) for x in budget.sets)
    spec = load_study(study)
    if budget.cells.get(spec.name):
        spec = only_cells(spec, budget.cells[spec.name])
    rows = []
    labels = [c.label for c in spec.cells] or [f"t{i}" for i in range(budget.trials)]
    for k, label in enumerate(labels):
        values = [((k + 1) * int(sets["train.steps"]) + seed) % 97 / 100 for seed in range(budget.seeds)]
        rows.append(
            {spec.axis: label, "mean": sum(values) / len(values), "std": 0.0, "n": len(values), "values": values}
        )
    summary = {"study": spec.name, "axis": spec.axis, "metric": spec.metric, "sampler": spec.sampler, "rows": rows}
    write(Path("reports/sweeps") / f"{spec.name}.json", json.dumps(summary))
    write(Path("reports/sweeps") / f"{spec.name}.png", "not a png")
    cells = {r[spec.axis]: {"mean": r["mean"], "std": r["std"]} for r in rows}
    write(Path("reports/sweeps") / f"{spec.name}.csv", cells_csv({"cells": cells}))  # the real writer
    write(Path("runs/sweeps") / spec.name / "args.json", json.dumps({"args": args, "sets": budget.sets}))


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_VIRTUE_LOG"], "a") as log:
        log.write(" ".join(argv) + "\n")
    o = overrides(argv)
    if argv[:2] == ["data", "synth"]:
        for d in ("data/scar-synth", "data/mmeb-synth", "data/i2i-synth"):
            write(Path(d) / "args.json", json.dumps(o, sort_keys=True))
    elif argv[0] == "pretrain":
        write(Path("runs/backbones/args.json"), json.dumps(o, sort_keys=True))
    elif argv[0] == "train":  # the real command's --variants-from: one run per variant, <name>-<variant>
        from virtue.cli.train_cmd import variants_from

        for variant in variants_from(argv[argv.index("--variants-from") + 1]):
            run = Path(o["train.output_dir"].format(name=f"{o['name']}-{variant}"))
            write(run / "args.json", json.dumps(o | {"model.variant": variant}, sort_keys=True))
            curve = "".join(json.dumps({"step": s, "loss": 2.0 / (s + 1)}) + "\n" for s in range(3))
            write(run / "metrics.jsonl", curve)
    elif argv[0] == "eval":
        fake_eval(argv)
    elif argv[0] == "sweep":
        fake_sweep(argv)
    elif argv[0] == "report":
        return real_main(argv)
    else:
        raise SystemExit(f"fake virtue: unexpected command {argv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
