"""A light sweep objective for the fault suite (importable by module name, as sweep workers need)."""

from __future__ import annotations


def bowl(cfg, *, tracker=None) -> dict:
    """Best at connector_depth 2; logs a 3-point curve through the tracker it is given."""
    score = 1.0 - 0.1 * (cfg.model.connector_depth - 2) ** 2
    if tracker is not None:
        for step in range(3):
            tracker.log_metrics({"train.loss": (1.0 - score) * (3 - step)}, step=step)
    return {"score": score}


def killable_bowl(cfg, *, tracker=None) -> dict:
    """`bowl`, recording each attempt in $VIRTUE_TEST_LOG. The first attempt at the cell whose connector_depth
    is $VIRTUE_TEST_VICTIM writes its pid to $VIRTUE_TEST_ONCE and hangs, waiting to be killed."""
    import json
    import os
    import time
    from pathlib import Path

    depth = cfg.model.connector_depth
    with open(os.environ["VIRTUE_TEST_LOG"], "a") as f:
        f.write(json.dumps({"depth": depth, "pid": os.getpid()}) + "\n")
    marker = Path(os.environ["VIRTUE_TEST_ONCE"])
    if depth == int(os.environ["VIRTUE_TEST_VICTIM"]) and not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(300)
    return bowl(cfg, tracker=tracker)
