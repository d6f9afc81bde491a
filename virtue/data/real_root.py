"""The real-data root (data/real) that data.dvc tracks. A fresh clone has no such folder; the pipeline's
synth step creates it holding only this README, whose bytes match the hash pinned in data.dvc, so `dvc status`
is clean without any remote. Real SCaR / MMEB copied in later are then tracked by `dvc commit data.dvc`."""

from __future__ import annotations

from pathlib import Path

README = """\
# Real datasets (tracked by data.dvc)

Put the real benchmarks here, then validate and track them:

    data/real/scar/   SCaR release: train parquet per subset + eval SCAR_<subset>_val_filtered.parquet
                      (or SCaR_eval_<subset>.parquet), images under data/real/scar or any --image-root
    data/real/mmeb/   MMEB: eval/<task>/*.parquet (+ train/<task>/*.parquet), images under data/real/mmeb

    virtue data check data/real/scar --image-root <images>
    dvc commit -f data.dvc          # records the new hash of data/real
    dvc remote add -d store <url>   # then remove `cache: false` from data.dvc and: dvc commit -f data.dvc && dvc push

Experiments point at them with data.scar_dir=data/real/scar data.mmeb_dir=data/real/mmeb data.image_root=...
"""


def ensure_real_root(path: Path) -> bool:
    """Create the folder with its README if it does not exist (never touches an existing one). True if created."""
    if path.exists():
        return False
    path.mkdir(parents=True)
    (path / "README.md").write_text(README, encoding="utf-8")
    return True
