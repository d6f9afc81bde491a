"""`virtue data synth|check|stats|preview`: generate the synthetic sets, validate a folder, print the oracle
table, draw a preview grid."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import load_experiment
from ..paths import in_workspace, workspace_root


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="synthetic benchmark and dataset checks")
    cmds = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = cmds.add_parser(
        "synth", help="generate data/scar-synth, data/mmeb-synth and data/i2i-synth from the data.synth config"
    )
    synth.add_argument("experiment", nargs="?", default="tiny", help="experiment name or YAML (default: tiny)")
    synth.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.synth.seed=1")
    synth.add_argument("--only", choices=("scar", "mmeb", "i2i"), help="generate one set only")
    synth.set_defaults(func=_synth)

    check = cmds.add_parser(
        "check", help="validate a SCaR, MMEB or image-to-image folder (real or synthetic); exit 1 if rows are invalid"
    )
    check.add_argument("path", help="the set's folder")
    check.add_argument("--image-root", help="image paths are relative to this (default: the folder)")
    check.add_argument(
        "--prompt",
        default="box",
        choices=("box", "mask", "points", "none"),
        help="also require what this prompt needs (mask: a segmentation on every row)",
    )
    check.set_defaults(func=_check)

    stats = cmds.add_parser(
        "stats", help="global-only and crop-only oracles per SCaR-synth subset (or of an I2I-synth folder)"
    )
    stats.add_argument("path", nargs="?", help="SCaR-synth or I2I-synth folder (default: data.scar_dir of tiny)")
    stats.add_argument("--split", default="eval", choices=("train", "eval"))
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=_stats)

    preview = cmds.add_parser("preview", help="PNG grid of SCaR queries with box and mask overlays and captions")
    preview.add_argument("path", nargs="?", help="SCaR folder (default: data.scar_dir of tiny)")
    preview.add_argument("--out", default="reports/data-preview.png", help="output PNG (relative to the workspace)")
    preview.add_argument("-n", type=int, default=10, help="queries to show (spread over subsets)")
    preview.add_argument("--image-root", help="image paths are relative to this (default: the folder)")
    preview.set_defaults(func=_preview)


def _default_scar(path: str | None) -> Path:
    return Path(path) if path else workspace_root() / load_experiment("tiny").data.scar_dir


def _synth(args: argparse.Namespace) -> int:
    from ..data.synth.build import synthesize

    cfg = load_experiment(args.experiment, args.overrides)
    result = synthesize(cfg.data, workspace_root(), only=args.only, progress=sys.stderr.isatty())
    for name, r in result.items():
        total = sum(sum(v.values()) for v in r["rows"].values())
        print(f"{name}: {total} rows in {r['seconds']} s  {json.dumps(r['rows'], sort_keys=True)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..data.check import check_folder

    report = check_folder(args.path, prompt=args.prompt, image_root=args.image_root)
    print(report.text())
    return 0 if report.ok else 1


def _stats(args: argparse.Namespace) -> int:
    from ..data.synth.i2i import eval_file
    from ..data.synth.stats import format_table, oracle_stats

    folder = _default_scar(args.path)
    if eval_file(folder).is_file():  # an I2I-synth folder: eval split only
        from ..data.synth.i2i_oracles import i2i_oracle_stats

        stats = i2i_oracle_stats(folder)
    else:
        stats = oracle_stats(folder, args.split)
    print(json.dumps(stats, indent=2, sort_keys=True) if args.json else format_table(stats))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from ..data.preview import preview

    out = in_workspace(args.out)
    preview(_default_scar(args.path), out, n=args.n, image_root=args.image_root)
    print(out)
    return 0
