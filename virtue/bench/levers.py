"""(f) What one answered study cell costs, and what each lever of the study design buys, side by side.

A cell is answered by training it (`steps` steps of the study budget) and evaluating it on the eval sets.
Measured here on the tiny model (untrained backbones with the pipeline's kind of tokenizer: costs do not depend
on weight values), at the study batch, one torch thread, on SCaR-synth batches (the costlier source; a cell's
1700 steps mix about 1300 of them with 400 MMEB-synth batches, so the minutes are an upper bound):
- dtype: a training step with the frozen backbones in bfloat16 against float32 (model.dtype=auto picks the
  faster one for this CPU: bfloat16 only where the CPU has AMX);
- evaluation with the frozen-feature cache warm (another trial of the study already ran SAM-2 and the vision
  tower on these images) against without it, per eval query;
- one result per distinct configuration: how many of the default studies' trials are distinct cells
  (counted from the study files' resolved configs, every study's reference cell being one).
The minutes of one answered cell are then given before any lever and after each, cumulatively, at the
budget of params.yaml's sweeps block and the size of the eval sets there."""

from __future__ import annotations

import time
from pathlib import Path

from .common import BenchWorkspace, Side, comparison, log, median


def step_setup(ws: BenchWorkspace, dtype: str, batch: int, negatives: int, steps: int, encoder_type=None):
    """A fresh tiny embedder in training mode at the study batch, its optimizer, an Encoder over a feature cache
    already holding the frozen features of `steps + 1` batches (a trial's steps mostly find them cached: epochs,
    earlier trials), and those batches. encoder_type: an Encoder subclass (the step profile's clock)."""
    from ..models import build_embedder
    from ..train.cache import FeatureCache
    from ..train.distributed import seed_everything
    from ..train.loop import Encoder, _optimizer, load_train_data
    from ..train.sampler import SourceBatchSampler

    cfg = ws.config(f"model.dtype={dtype}", f"train.batch_size={batch}", f"train.hard_negatives={negatives}")
    seed_everything(0)
    embedder, processor = build_embedder(cfg.model)
    embedder.train()
    pairs, _ = load_train_data(cfg)
    sampler = SourceBatchSampler(pairs, batch, 0, negatives, None, cfg.train.hard_negative_kinds)
    cache = FeatureCache(ws.root / f"step-cache-{dtype}", embedder.frozen_fingerprint())
    encoder = (encoder_type or Encoder)(embedder, processor, "cpu", cache)
    optimizer = _optimizer(embedder, cfg.train)
    batches = [sampler.batch(i) for i in range(steps + 1)]
    for b in batches:
        encoder.prepare(b.queries), encoder.prepare(b.positives + b.negatives)
    return cfg, embedder, encoder, optimizer, batches


def _step_seconds(ws: BenchWorkspace, dtype: str, batch: int, negatives: int, steps: int) -> list[float]:
    from ..train.loop import _step_loss

    cfg, _, encoder, optimizer, batches = step_setup(ws, dtype, batch, negatives, steps)
    out = []
    for i, b in enumerate(batches):
        t = time.perf_counter()
        _step_loss(encoder, b, cfg.train)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            out.append(time.perf_counter() - t)
    return out


def _eval_seconds(ws: BenchWorkspace, warm: bool, dtype: str) -> tuple[float, int]:
    """Seconds per eval query of SCaR + MMEB on the micro sets, the feature cache warm or off."""
    from ..data import read_mmeb_eval
    from ..data.scar import read_scar_eval
    from ..eval.encode import score_queries
    from ..eval.run import feature_cache, model_encoder
    from ..models import build_embedder

    cfg = ws.config(f"model.dtype={dtype}", f"train.feature_cache={str(warm).lower()}",
                    f"train.feature_cache_dir={ws.root / 'levers-cache'}")  # fmt: skip
    embedder, processor = build_embedder(cfg.model)
    embedder.eval()
    encode = model_encoder(embedder, processor, "cpu", feature_cache(cfg, embedder))
    sets = [read_scar_eval(ws.root / "scar", prompt=cfg.data.prompt), read_mmeb_eval(ws.root / "mmeb")]
    n = sum(len(s) for s in sets)
    if warm:  # another trial filled the cache
        for queries in sets:
            score_queries(queries, encode, batch_size=cfg.eval.batch_size)
    t = time.perf_counter()
    for queries in sets:
        score_queries(queries, encode, batch_size=cfg.eval.batch_size)
    return (time.perf_counter() - t) / n, n


def distinct_cells(budget: dict) -> tuple[int, int, int]:
    """(trials the grid studies plan, distinct cells among them, of those the main path's runs) at params.yaml's
    budget."""
    from ..cli.sweep_cmd import apply_sets
    from ..cli.train_cmd import variant_configs
    from ..orchestrate.cells import cell_key
    from ..orchestrate.study import cell_seeds, load_study, only_cells, trial_config, trial_overrides

    studies, seeds, sets, cells = budget["studies"], budget["seeds"], budget["sets"], budget["cells"]
    main = {cell_key(c) for c in variant_configs(budget["experiment"], budget["main_path"], budget["variants"])}
    planned, keys = 0, set()
    for name in studies:
        spec = load_study(name)
        if cells.get(name) and spec.sampler == "grid":
            spec = only_cells(spec, cells[name])
        spec = apply_sets(spec, sets)
        if spec.sampler != "grid":
            continue
        for cell in spec.cells:
            for seed in range(cell_seeds(spec, cell.label, seeds)):
                cfg = trial_config(spec, trial_overrides(spec, {"cell": cell.label}, seed, Path("cell")))
                keys.add(cell_key(cfg))
                planned += 1
    return planned, len(keys), len(keys & main)


def study_levers(ws: BenchWorkspace, *, repeats: int, steps: int, budget: dict) -> list[dict]:
    """budget: params.yaml's sweeps block (steps, seeds, studies) and the eval set sizes (queries)."""
    batch, negatives = budget["batch_size"], budget["hard_negatives"]
    bf16, fp32 = Side("training step, bfloat16 backbones", "s"), Side("training step, float32 backbones", "s")
    for r in range(repeats):
        for dtype in ("bfloat16", "float32") if r % 2 == 0 else ("float32", "bfloat16"):
            log(f"study levers: training steps in {dtype} ({r + 1}/{repeats})")
            (bf16 if dtype == "bfloat16" else fp32).values.extend(_step_seconds(ws, dtype, batch, negatives, steps))
    fast = "float32" if median(fp32.values) < median(bf16.values) else "bfloat16"
    warm, cold = Side("eval per query, feature cache warm", "s"), Side("eval per query, no cache", "s")
    for r in range(repeats):
        log(f"study levers: evaluation with and without the feature cache ({r + 1}/{repeats})")
        for cached in (True, False) if r % 2 == 0 else (False, True):
            (warm if cached else cold).values.append(_eval_seconds(ws, cached, fast)[0])
    planned, distinct, by_main = distinct_cells(budget)
    queries, s_steps = budget["eval_queries"], budget["steps"]

    def cell_minutes(step_s: float, query_s: float, share: float) -> float:
        return (s_steps * step_s + queries * query_s) * share / 60

    base = cell_minutes(median(bf16.values), median(cold.values), 1.0)
    after_dtype = cell_minutes(min(median(bf16.values), median(fp32.values)), median(cold.values), 1.0)
    after_cache = cell_minutes(min(median(bf16.values), median(fp32.values)), median(warm.values), 1.0)
    fastest = min(median(bf16.values), median(fp32.values))
    after_dedup = cell_minutes(fastest, median(warm.values), distinct / planned)
    # the main path's runs are cells too: they are trained anyway, the studies only evaluate them
    trained = distinct - by_main
    # minutes per planned trial, training and evaluation apart (compile_lever scales the training part)
    train_part = s_steps * fastest * trained / planned / 60
    eval_part = queries * median(warm.values) * distinct / planned / 60
    after_main = train_part + eval_part
    cost = {
        "name": "answered_cell_minutes",
        "status": "measured",
        "unit": "min per planned trial, one worker",
        "budget": {k: budget[k] for k in ("steps", "seeds", "eval_queries", "batch_size", "hard_negatives")},
        "levers": [
            {"lever": "none (bfloat16, no eval cache, every trial trained)", "minutes": base},
            {"lever": f"+ model.dtype=auto ({fast} here)", "minutes": after_dtype},
            {"lever": "+ frozen-feature cache in evaluation", "minutes": after_cache},
            {"lever": f"+ one result per distinct cell ({distinct} of {planned} trials)", "minutes": after_dedup},
            {"lever": f"+ the main path's runs as cells ({trained} of {distinct} to train)", "minutes": after_main},
        ],
        "ratio_all_levers": after_main / base,
        "parts": {"train": train_part, "eval": eval_part},  # the last adopted lever's minutes
        "method": (__doc__ or "").replace("\n", " "),
    }
    return [
        comparison("train_step_dtype", fp32, bf16, target=None, higher_is_better=False,
                   method="seconds of one training step (forward, backward, optimizer) at the study batch, the "
                   "frozen features from a warm cache", batch_size=batch, fastest=fast),  # fmt: skip
        comparison("eval_feature_cache", warm, cold, target=None, higher_is_better=False,
                   method="seconds per SCaR/MMEB eval query, micro sets", dtype=fast),  # fmt: skip
        {"name": "cell_dedup", "status": "measured", "planned_trials": planned, "distinct_cells": distinct,
         "main_path_cells": by_main, "ratio": distinct / planned, "method": "distinct cell keys "
         "(virtue.orchestrate.cells) among the grid studies' trials at params.yaml's budget, and how many of them "
         "are the main path's trained variants"},  # fmt: skip
        cost,
    ]


def compile_lever(results: list[dict], budget: dict) -> None:
    """Add to answered_cell_minutes what torch.compile makes of it: its training part times the compiled step's
    ratio from train_step_compile (the same study batch and dtype). Adopted (a lever of ratio_all_levers) when
    the budget's train.compile resolves to inductor on this machine, as the sweep trials then train; a row
    apart otherwise. Nothing is added when the compiled step could not be measured."""
    from ..config.train import TrainConfig

    by_name = {r["name"]: r for r in results}
    cost, compiled = by_name.get("answered_cell_minutes"), by_name.get("train_step_compile")
    if cost is None or compiled is None or compiled["status"] != "measured":
        return
    mode = next((s.split("=", 1)[1] for s in budget["sets"] if s.startswith("train.compile=")), "off")
    adopted = TrainConfig(compile=mode).compile == "inductor"  # resolved as the trials' configs are
    minutes = cost["parts"]["train"] * compiled["ratio"] + cost["parts"]["eval"]
    use = f"train.compile={mode}" + ("" if adopted else ": off on this machine, not adopted")
    label = f"+ torch.compile of the LLM's decoder layers ({compiled['backend']}; {use})"
    cost["levers"].append({"lever": label, "minutes": minutes, "adopted": adopted})
    cost["ratio_with_compile"] = minutes / cost["levers"][0]["minutes"]
    if adopted:
        cost["ratio_all_levers"] = cost["ratio_with_compile"]
