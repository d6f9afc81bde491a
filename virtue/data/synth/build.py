"""`virtue data synth`: both synthetic sets from the `data:` config, each with a manifest of what made it."""

from __future__ import annotations

import time
from pathlib import Path

from ...config.data import DataConfig
from ...errors import UserError
from ...io import write_json
from ..real_root import ensure_real_root
from .scar import write_scar


def synthesize(cfg: DataConfig, root: Path, only: str | None = None, progress: bool = True) -> dict:
    """Write cfg.scar_dir, cfg.mmeb_dir and cfg.i2i_dir under root. Returns {set: {rows, seconds}}."""
    s = cfg.synth
    out = {}
    ensure_real_root(root / cfg.root)  # data.dvc's folder: a fresh clone gets it here, in the pipeline's first stage
    if only in (None, "scar"):
        t = time.perf_counter()
        per = {"train": s.scar_train_per_subset, "eval": s.scar_eval_per_subset, "val": s.scar_val_per_subset}
        rows = write_scar(root / cfg.scar_dir, s.seed, s.image_size, per, progress)
        write_json(root / cfg.scar_dir / "manifest.json", {"generator": "scar-synth", **s.model_dump(), "rows": rows})
        out["scar"] = {"rows": rows, "seconds": round(time.perf_counter() - t, 1)}
    if only in (None, "mmeb"):
        from .mmeb import write_mmeb

        t = time.perf_counter()
        per = {"train": s.mmeb_train_per_task, "eval": s.mmeb_eval_per_task}
        rows = write_mmeb(root / cfg.mmeb_dir, s.seed, s.image_size, per, progress)
        write_json(root / cfg.mmeb_dir / "manifest.json", {"generator": "mmeb-synth", **s.model_dump(), "rows": rows})
        out["mmeb"] = {"rows": rows, "seconds": round(time.perf_counter() - t, 1)}
    if only == "i2i" and not s.i2i_eval_queries:
        raise UserError("data.synth.i2i_eval_queries is 0: no image-to-image set to write (the pipeline uses 200)")
    if only in (None, "i2i") and s.i2i_eval_queries:
        from .i2i import write_i2i

        t = time.perf_counter()
        rows = write_i2i(root / cfg.i2i_dir, s.seed, s.image_size, s.i2i_eval_queries, progress)
        write_json(root / cfg.i2i_dir / "manifest.json", {"generator": "i2i-synth", **s.model_dump(), "rows": rows})
        out["i2i"] = {"rows": rows, "seconds": round(time.perf_counter() - t, 1)}
    return out
