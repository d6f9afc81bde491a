"""`virtue pretrain EXPERIMENT [overrides]`: train the embedded default's tiny SAM-2 and Qwen2-VL on the
synthetic scenes and save them where model.sam.path / model.vlm.path point, through the configured launcher."""

from __future__ import annotations

import argparse
import json

from ..config import load_experiment


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pre-train the tiny backbones of the embedded default")
    p.add_argument("experiment", help="name under experiments/ (e.g. tiny) or a YAML path")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. pretrain.sam.steps=100")
    p.set_defaults(func=_pretrain)


def _pretrain(args: argparse.Namespace) -> int:
    from ..orchestrate.jobs import PretrainJob
    from ..orchestrate.launcher import launch

    cfg = load_experiment(args.experiment, args.overrides)
    m = launch(PretrainJob(), cfg, launcher=cfg.launcher, name=f"pretrain-{cfg.name}")
    print(
        json.dumps(
            {
                "sam2": cfg.model.sam.path,
                "qwen2vl": cfg.model.vlm.path,
                "sam2_box_miou": round(m["sam2"].get("eval_box_miou", 0.0), 4),
                "qwen2vl_relation_r1": round(m["qwen2vl"].get("eval_relation_r1_i2t", 0.0), 4),
                "wall_seconds": round(m["wall_seconds"], 1),
            }
        )
    )
    return 0
