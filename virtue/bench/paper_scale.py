"""The paper-scale path without a GPU and with one.

`estimate`: what one training step of paper-2b / paper-7b costs, counted on the meta-device model (no weights,
no download, no memory): torch's FlopCounterMode counts the LLM's forward and backward FLOPs, and a
saved-tensors hook adds up the bytes autograd keeps for backward (activation memory) for one GradCache chunk.
Only the LLM runs on the meta device (the vision tower's and SAM-2's position code needs real tensors); their
frozen forward passes are estimated as 2 x parameters x tokens, and labelled so.

`gpu_check`: on a CUDA machine, 20 real training steps of the paper config at random init from the presets
(no hub access), through the real `virtue train` entry point (torchrun for several GPUs); peak memory, step
time and samples/s come from the run's metrics.jsonl.

    python -m virtue.bench.paper_scale estimate [--experiment paper-2b] [--out reports/paper-scale.json]
    python -m virtue.bench.paper_scale gpu-check --out DIR [--gpus N] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..io import write_json
from ..paths import workspace_root

# Token counts of one row at paper scale. Query: |S| segmentation tokens + image tokens + instruction and box
# text. Image tokens: a 640x480 COCO image trained at native size (smart-resized to 476x644: 17x23 merged
# tokens) and an evaluation image stretched to 1344x1344 and smart-resized to 980x980 (35x35).
TRAIN_IMAGE_TOKENS = 17 * 23
EVAL_IMAGE_TOKENS = 35 * 35
QUERY_TEXT_TOKENS = 48
CAPTION_TOKENS = 24  # a SCaR target caption
HOPPER_BF16_DENSE_TFLOPS = 989.0  # H100 SXM datasheet, dense bf16
ASSUMED_MFU = 0.35  # an assumption for the time estimate, not a measurement


def _llm_chunk(lm, width: int, rows: int, length: int, backward: bool = True) -> tuple[float, float]:
    """(FLOPs, bytes saved for backward) of `rows` sequences of `length` tokens through the LLM on the meta
    device, forward and backward (or forward only, without a graph). Saved tensors are counted once per
    storage base; parameters are left out. The meta device runs PyTorch's math attention (probabilities
    saved) and, without autocast, keeps the adapters' float32 activations: an upper bound for a GPU run."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = {id(p) for p in lm.parameters()}
    saved: dict[int, torch.Tensor] = {}  # held, so that no id is reused while counting

    def pack(t):
        base = t._base if t._base is not None else t
        if id(base) not in params and id(t) not in params:
            saved[id(base)] = base
        return t

    x = torch.zeros(rows, length, width, device="meta", dtype=torch.bfloat16, requires_grad=backward)
    pos = torch.zeros(3, rows, length, dtype=torch.long, device="meta")
    with (
        torch.set_grad_enabled(backward),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        FlopCounterMode(display=False) as counter,
    ):
        out = lm(inputs_embeds=x, position_ids=pos, attention_mask=None).last_hidden_state
        if backward:
            out[:, -1].float().sum().backward()
    return float(counter.get_total_flops()), float(sum(t.numel() * t.element_size() for t in saved.values()))


def estimate(experiment: str = "paper-2b", overrides: tuple[str, ...] = ()) -> dict:
    """Per-GPU cost of one training step of `experiment` (see the module doc); every number is labelled as a
    meta-device count or an estimate."""
    import torch

    from ..config import load_experiment
    from ..models import build_embedder

    cfg = load_experiment(experiment, list(overrides))
    embedder, _ = build_embedder(cfg.model, meta=True)
    lm = embedder.vlm.language_model
    width = embedder.vlm.config.text_config.hidden_size
    world = cfg.launcher.gpus_per_node or 1
    per_gpu = cfg.train.batch_size // world
    chunk = cfg.train.gradcache_chunk or per_gpu
    seg = cfg.model.seg_tokens if cfg.model.variant == "virtue" else 0
    query_len = seg + TRAIN_IMAGE_TOKENS + QUERY_TEXT_TOKENS
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    trainable = sum(p.numel() for p in embedder.parameters() if p.requires_grad)
    frozen_bytes = sum(p.numel() * 2 for p in embedder.parameters() if not p.requires_grad)  # bf16 weights

    q1, s1 = _llm_chunk(lm, width, 1, query_len)
    q2, s2 = _llm_chunk(lm, width, 2, query_len)
    t_flops, _ = _llm_chunk(lm, width, chunk, CAPTION_TOKENS)
    qf, _ = _llm_chunk(lm, width, chunk, query_len, backward=False)
    tf, _ = _llm_chunk(lm, width, chunk, CAPTION_TOKENS, backward=False)
    per_row_saved, fixed_saved = s2 - s1, 2 * s1 - s2  # saved(B) = fixed + B * per_row
    per_row_flops = q2 - q1
    # GradCache: a no-grad forward of every row, then forward+backward chunk by chunk; queries and SCaR
    # caption targets.
    chunks = per_gpu / chunk
    llm_step = per_gpu * per_row_flops + chunks * (t_flops + qf + tf)
    vision = count(embedder.vlm.visual)
    sam = count(embedder.segmentation) if embedder.segmentation is not None else 0
    # Frozen encoders, forward only, twice per step under GradCache (no-grad pass and grad pass):
    # 2 x parameters x tokens (vision: 4 patches per merged token; SAM-2 at 1024 px: 64x64 stride-16 tokens).
    frozen_step = 2 * per_gpu * 2 * (vision * 4 * TRAIN_IMAGE_TOKENS + sam * 64 * 64)
    step_flops = llm_step + frozen_step
    adam_bytes = trainable * 4 * 3  # fp32 weights, two moments
    peak = frozen_bytes + adam_bytes + fixed_saved + chunk * per_row_saved
    gib = 2**30
    return {
        "experiment": experiment,
        "label": "estimate from the meta-device model (no GPU run): LLM FLOPs and saved bytes counted by torch on "
        "the meta device; frozen encoders as 2 x params x tokens; time at an assumed MFU",
        "per_gpu_batch": per_gpu,
        "gradcache_chunk": chunk,
        "query_tokens": query_len,
        "eval_query_tokens": seg + EVAL_IMAGE_TOKENS + QUERY_TEXT_TOKENS,
        "parameters": {
            "llm_and_vision": count(embedder.vlm),
            "vision": vision,
            "sam_image_path": sam,
            "trainable": trainable,
        },
        "llm_fwd_bwd_tflop_per_query_row": per_row_flops / 1e12,
        "activation_gib_per_query_row": per_row_saved / gib,
        "activation_gib_fixed_per_forward": fixed_saved / gib,
        "step_tflop_per_gpu": step_flops / 1e12,
        "step_seconds_h100_at_mfu": step_flops / (HOPPER_BF16_DENSE_TFLOPS * 1e12 * ASSUMED_MFU),
        "assumed_mfu": ASSUMED_MFU,
        "peak_gib_per_gpu": peak / gib,
        "peak_breakdown_gib": {
            "frozen_weights_bf16": frozen_bytes / gib,
            "trainable_fp32_with_adam": adam_bytes / gib,
            "activations_one_chunk": (fixed_saved + chunk * per_row_saved) / gib,
        },
        "torch": torch.__version__,
    }


def _gpu_train_command(gpus: int, run_dir: Path, data_dir: Path, steps: int, experiment: str) -> list[str]:
    overrides = [
        experiment,
        "model.vlm={preset: qwen2vl-2b}" if experiment == "paper-2b" else "model.vlm={preset: qwen2vl-7b}",
        "model.sam={preset: sam2.1-hiera-base-plus}",
        f"data.scar_dir={data_dir}",
        "data.image_root=null",
        "train.source=scar",
        f"train.steps={steps}",
        f"train.warmup_steps={max(1, steps // 10)}",
        f"train.batch_size={32 * gpus}",  # the release's 32 per GPU
        "train.checkpoint_every=0",
        f"train.output_dir={run_dir}",
        "name=gpu-check",
        "launcher.kind=inprocess",
        "tracking.enabled=false",
    ]
    if gpus == 1:
        return [sys.executable, "-m", "virtue.cli.main", "train", *overrides]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
    return [*torchrun, "-m", "virtue.cli.main", "train", *overrides]


def _summary(run_dir: Path, steps: int) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [r for r in rows if "samples_per_s" in r][min(3, steps - 1) :]  # the first steps warm up kernels
    sps = sorted(r["samples_per_s"] for r in timed)
    med = sps[len(sps) // 2]
    peak = max((r.get("gpu_peak_gib", 0.0) for r in rows), default=0.0)
    return {"steps": len(rows), "samples_per_s_median": med, "peak_gib": peak}


def gpu_check(out: Path, gpus: int, steps: int, experiment: str = "paper-2b") -> dict:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu-check: no CUDA device here")
    from ..config import load_experiment
    from ..data.synth.build import synthesize

    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "scar-synth"
    cfg = load_experiment(
        "tiny",
        [
            f"data.scar_dir={data_dir}",
            "data.synth.image_size=640",
            "data.synth.scar_train_per_subset=120",
            "data.synth.scar_eval_per_subset=4",
            "data.synth.mmeb_train_per_task=1",
            "data.synth.mmeb_eval_per_task=1",
            f"data.mmeb_dir={out / 'mmeb-synth'}",
        ],
    )
    synthesize(cfg.data, workspace_root(), progress=False)
    report: dict = {
        "device": torch.cuda.get_device_name(0),
        "gpus_visible": torch.cuda.device_count(),
        "experiment": experiment,
        "runs": {},
    }
    for n in sorted({1, gpus}):
        run_dir = out / f"run-{n}gpu"
        cmd = _gpu_train_command(n, run_dir, data_dir, steps, experiment)
        print("gpu-check:", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        summary = _summary(run_dir, steps)
        report["runs"][f"{n}gpu"] = {
            "wall_s": time.perf_counter() - t0,
            **summary,
            "step_s_median": 32 * n / summary["samples_per_s_median"],
            "per_gpu_batch": 32,
            "global_batch": 32 * n,
        }
    write_json(out / "gpu-check.json", report)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m virtue.bench.paper_scale", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("estimate", help="meta-device estimate of one paper-scale training step")
    e.add_argument("--experiment", default="paper-2b")
    e.add_argument("--out", default=None, help="also write the JSON here")
    g = sub.add_parser("gpu-check", help="20 training steps of paper-2b on CUDA at random init")
    g.add_argument("--out", required=True)
    g.add_argument("--gpus", type=int, default=1)
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--experiment", default="paper-2b", choices=["paper-2b", "paper-7b"])
    args = p.parse_args(argv)
    if args.cmd == "estimate":
        report = estimate(args.experiment)
        if args.out:
            write_json(Path(args.out), report)
    else:
        report = gpu_check(Path(args.out), args.gpus, args.steps, args.experiment)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
