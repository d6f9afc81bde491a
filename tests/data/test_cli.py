"""`virtue data synth|check|stats|preview` through the real entry point, in a subprocess."""

from __future__ import annotations

import pytest
from PIL import Image

SMALL = [
    "data.synth.scar_train_per_subset=3",
    "data.synth.scar_eval_per_subset=3",
    "data.synth.mmeb_train_per_task=2",
    "data.synth.mmeb_eval_per_task=2",
]


@pytest.mark.slow
def test_synth_stats_check_preview(run_cli, tmp_path):
    scar, mmeb = tmp_path / "scar-synth", tmp_path / "mmeb-synth"
    real = tmp_path / "real"
    r = run_cli("data", "synth", "tiny", f"data.scar_dir={scar}", f"data.mmeb_dir={mmeb}", f"data.root={real}", *SMALL)
    assert r.returncode == 0, r.stderr
    assert (real / "README.md").is_file()  # data.dvc's folder
    assert "scar: 30 rows" in r.stdout and "mmeb: 28 rows" in r.stdout
    assert (scar / "manifest.json").is_file() and (mmeb / "tasks.json").is_file()

    r = run_cli("data", "stats", str(scar))
    assert r.returncode == 0, r.stderr
    assert "| crowded | 3 |" in r.stdout and "global-only P@1" in r.stdout

    for folder in (scar, mmeb):
        r = run_cli("data", "check", str(folder))
        assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr

    out = tmp_path / "preview.png"
    r = run_cli("data", "preview", str(scar), "--out", str(out), "-n", "4")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.width > 4 * 128

    # one broken image -> check reports it and exits 1
    img = next((scar / "images" / "eval").rglob("*.png"))
    img.write_bytes(b"broken")
    r = run_cli("data", "check", str(scar))
    assert r.returncode == 1 and "unreadable" in r.stdout and "INVALID" in r.stdout


def test_user_errors_are_one_line(run_cli, tmp_path):
    r = run_cli("data", "check", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such data folder" in r.stderr
    r = run_cli("data", "stats", str(tmp_path))
    assert r.returncode == 2 and "scenes_eval.parquet" in r.stderr


@pytest.mark.slow  # over 3 s on 2 cores: runs in make test, not in a plain pytest
def test_same_seed_same_bytes_through_cli(run_cli, tmp_path):
    outs = []
    for name in ("a", "b"):
        d = tmp_path / name
        r = run_cli("data", "synth", "--only", "scar", "tiny", f"data.scar_dir={d}", f"data.root={d}-real", *SMALL[:2])
        assert r.returncode == 0, r.stderr
        outs.append(d)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert all((outs[0] / p).read_bytes() == (outs[1] / p).read_bytes() for p in files)
