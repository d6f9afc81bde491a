"""`virtue demo [EXPERIMENT] --checkpoint RUN [--checkpoint RUN ...]`: a local web page to draw a visual prompt
on an image and see SAM-2's mask and each variant's top-10 captions and images (virtue/demo)."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time

from ..errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="web page: draw a box / points / mask, see SAM-2's mask and the top-10 matches")
    p.add_argument(
        "experiment",
        nargs="?",
        help="experiment for weights files without a run folder and for the data (default: the runs' own configs)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides of EXPERIMENT")
    p.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="RUN",
        help="training run folder or weights file; once per variant, shown side by side",
    )
    p.add_argument(
        "--variant",
        action="append",
        metavar="V",
        help="model.variant of each --checkpoint, in order (default: what its run folder's config says)",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    p.add_argument("--gallery", metavar="FILE", help="captions to rank, one per line (default: SCaR's eval captions)")
    p.add_argument(
        "--cache-dir", default="runs/demo-cache", help="gallery embeddings cache, under the workspace unless absolute"
    )
    p.set_defaults(func=_demo)


def _check_port(host: str, port: int) -> None:
    """Fail before the slow model load when the address cannot be bound."""
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected 1-65535")
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise UserError(f"--host {host} --port {port}: cannot listen there: {e.strerror or e}") from None


def _demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.experiment and "=" in args.experiment:
        raise UserError(f"{args.experiment}: name the EXPERIMENT before key=value overrides")
    _check_port(args.host, args.port)

    import torch
    import uvicorn

    from ..config import load_experiment
    from ..demo.app import create_app
    from ..demo.engine import build_engine
    from ..paths import workspace_root

    experiment = load_experiment(args.experiment, args.overrides) if args.experiment else None
    cache_dir = workspace_root() / args.cache_dir  # an absolute --cache-dir stays as it is
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = build_engine(
        args.checkpoint,
        variants=args.variant,
        experiment=experiment,
        gallery_file=args.gallery,
        cache_dir=cache_dir,
        device=device,
    )
    t = engine.timings
    print(f"models: {', '.join(m.label for m in engine.models)} loaded in {t['model_load_s']:.1f} s on {device}")
    g = engine.gallery
    print(f"gallery: {len(g.captions)} captions ({g.source}), {len(g.images)} images")
    for row in t["gallery"]:
        how = f"encoded {row['encoded']} sides" if row["encoded"] else "read from the cache"
        print(f"  {row['label']}: {how} in {row['seconds']:.1f} s ({row['cache']})")
    url = f"http://{args.host}:{args.port}"
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: --host {args.host} makes the demo reachable by other machines on the network")

    server = uvicorn.Server(uvicorn.Config(create_app(engine), host=args.host, port=args.port, log_level="warning"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"VIRTUE demo: {url}  (ready {time.perf_counter() - start:.1f} s after start; Ctrl-C stops it)")
            sys.stdout.flush()

    threading.Thread(target=announce, daemon=True).start()
    # uvicorn stops on Ctrl-C or SIGTERM, then raises the signal again to the handler it found: this one makes
    # SIGTERM (e.g. from a job scheduler) end the command as Ctrl-C does, through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
    return 0
