"""`virtue embed EXPERIMENT --images ...`: embed images (with an optional visual prompt and text) and write
the embeddings; with --candidates, print each image's similarity to each candidate text."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed images (+ visual prompt, + text) with an experiment's model")
    p.add_argument("experiment", help="name under experiments/ (e.g. tiny) or a YAML path")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.variant=global")
    p.add_argument("--images", nargs="+", required=True, help="image files")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--box", help="x1,y1,x2,y2 in original image pixels")
    prompt.add_argument("--point", action="append", help="x,y in original image pixels (repeatable)")
    prompt.add_argument("--mask", help="PNG mask (non-zero = object), same size as the images")
    p.add_argument("--text", default="", help="instruction / query text for every image")
    p.add_argument("--candidates", nargs="+", help="candidate texts: prints image x candidate cosine similarities")
    p.add_argument("--checkpoint", help="trained weights (safetensors file or training run folder)")
    p.add_argument("--out", required=True, help="output file: .parquet or .npy")
    p.set_defaults(func=_embed)


def _numbers(text: str, n: int, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise UserError(f"{flag} {text}: expected {n} comma-separated numbers")
    return values


def _prompt(args: argparse.Namespace):
    from ..data.prompts import box_prompt, mask_prompt, points_prompt

    try:
        if args.box:
            return box_prompt(*_numbers(args.box, 4, "--box"))
        if args.point:
            return points_prompt([_numbers(t, 2, "--point") for t in args.point])
        if args.mask:
            from PIL import Image

            with Image.open(args.mask) as im:
                return mask_prompt(np.asarray(im.convert("L")) > 0)
    except OSError as e:
        raise UserError(f"{args.mask}: cannot read mask: {e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"visual prompt: {e}") from None
    return None


def _embed(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".parquet", ".npy"):
        raise UserError(f"--out {out}: must end in .parquet or .npy")
    for img in args.images:
        if not Path(img).is_file():
            raise UserError(f"--images {img}: no such file")
    prompt = _prompt(args)

    import torch

    from ..config import load_experiment
    from ..data.types import Side
    from ..io import atomic_path
    from ..models import build_embedder

    cfg = load_experiment(args.experiment, args.overrides)
    embedder, processor = build_embedder(cfg.model, for_eval=True)
    if args.checkpoint:
        from ..eval.run import load_weights

        load_weights(embedder, args.checkpoint, variant=cfg.model.variant)
    embedder.eval()
    sides = [Side(args.text, str(Path(img).resolve()), prompt) for img in args.images]
    with torch.no_grad():
        emb = embedder(processor(sides)).float().cpu().numpy()  # [N, D]
        cand = None
        if args.candidates:
            cand = embedder(processor([Side(t) for t in args.candidates])).float().cpu().numpy()
    with atomic_path(out) as tmp:
        if out.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, emb)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table(
                {
                    "image": [str(i) for i in args.images],
                    "text": [args.text] * len(sides),
                    "prompt": ["none" if prompt is None else prompt.kind] * len(sides),
                    "embedding": [row.tolist() for row in emb],
                }
            )
            pq.write_table(table, tmp)
    print(f"wrote {len(emb)} embeddings of dim {emb.shape[1]} to {out}")
    if cand is not None:
        sims = emb @ cand.T
        for img, row in zip(args.images, sims, strict=True):
            best = int(row.argmax())
            scores = "  ".join(f"{s:+.3f}" for s in row)
            print(f"{img}: {scores}  best: {args.candidates[best]!r}")
    return 0
