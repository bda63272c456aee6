"""The augmentation scripts: scripts/augment_grid.py writes a valid PNG grid of views (run
as a real process), and scripts/bench/augment_speed.py measures both implementations, writes
all.py's figures and refuses a bad device in one line (run as __main__ in this process)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from PIL import Image

from conftest import run_script_here

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "scripts" / "augment_grid.py"
SPEED = ROOT / "scripts" / "bench" / "augment_speed.py"


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        timeout=120,
    )


def test_the_grid_script_writes_a_png(tmp_path):
    out = tmp_path / "views.png"
    proc = run(GRID, "--out", str(out), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.width > 0 and image.height > 0
    assert [p.name for p in tmp_path.iterdir()] == ["views.png"]  # no temporary file left


def test_the_speed_script_measures_both_implementations(tmp_path):
    """Both implementations' throughput, and with --step a wrn28_2 FixMatch step (2 labeled
    + 16 x 2 unlabeled views here) with the views' share of it, a percentage in (0, 100)."""
    out = tmp_path / "figures.json"
    proc = run_script_here(SPEED, "--batch", "16", "--repeats", "1", "--device", "cpu",
                           "--step", "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "PIL per image" in proc.stdout and "ours: ImageAugment.strong" in proc.stdout
    assert "wrn28_2 FixMatch step (2 labeled + 16 x 2 unlabeled views)" in proc.stdout
    figures = json.loads(out.read_text())
    assert len(figures) >= 3
    for f in figures:
        assert {"figure", "target", "measured", "unit", "peak_mb"} <= f.keys()
        assert isinstance(f["measured"], float) and math.isfinite(f["measured"])
        assert f["measured"] > 0
        assert f["target"] is None  # CPU figures carry no target; only CUDA's do
    assert any("PIL" in f["figure"] for f in figures)
    assert any("CPU" in f["figure"] for f in figures)
    (share,) = [f for f in figures if "share" in f["figure"]]
    assert share["unit"] == "%" and share["measured"] < 100
    assert 0 < share["views_ms"] < share["step_ms"]


def test_a_bad_device_is_refused_in_one_line():
    proc = run_script_here(SPEED, "--device", "nope")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--device" in errors[0] and "'nope'" in errors[0]
    assert "Traceback" not in proc.stderr
