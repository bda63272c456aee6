"""`labelbench status` at scale: N run records (scripts/bench/aggregate.py's generator), a
Hydra sweep folder of J jobs with most of them started, fresh and stale heartbeats and
checkpoint folders; then the CLI end to end with a cold and a warm record cache.
Target: 100k records answer in <= 3 s with a warm cache.

    .venv/bin/python scripts/bench/status.py [--n 100000] [--jobs 2000]
        [--dir /tmp/labelbench-bench-status] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import aggregate

from benchlib import BIN, cold_and_warm, figure, write_store
from labelbench.results.atomic import atomic_write

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
RUNNING, STALE = 64, 16  # heartbeats: runs running now, and runs killed an hour ago


def live_files(root: Path, jobs: int) -> None:
    """Heartbeats, checkpoints and a sweep folder of `jobs` jobs, 90% of them started."""
    for sub in ("running", "checkpoints", "hydra"):
        shutil.rmtree(root / sub, ignore_errors=True)
    now = time.time()
    for i in range(RUNNING + STALE):
        ago = 5.0 if i < RUNNING else 3600.0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - ago))
        key = f"live{i:012x}"
        beat = {"run_key": key, "choices": {"dataset": "digits", "strategy": "fixmatch"},
                "seed": i, "pid": 1000 + i, "host": f"node{i % 8}", "slurm_job_id": str(5000 + i),
                "started": stamp, "beat": stamp, "every_s": 30}  # fmt: skip
        path = root / "running" / f"{key}.json"
        atomic_write(path, json.dumps(beat))
        os.utime(path, (now - ago, now - ago))
        (root / "checkpoints" / key).mkdir(parents=True)
        (root / "checkpoints" / key / "last.ckpt").write_bytes(b"\0" * 1024)
    sweep = root / "hydra" / "sweep"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        f"hydra:\n  sweeper:\n    _target_: {BASIC}\n    params: null\n  overrides:\n"
        f"    task:\n    - seed=range(0,{jobs})\n    - paths.results_dir={root}\n"
    )
    for i in range(jobs * 9 // 10):
        job = sweep / "digits" / "fixmatch" / f"seed={i}" / ".hydra"
        job.mkdir(parents=True)
        (job / "overrides.yaml").write_text(f"- seed={i}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--dir", default="/tmp/labelbench-bench-status")
    parser.add_argument(
        "--keep", action="store_true", help="reuse records already generated in --dir"
    )
    parser.add_argument("--target", type=float, default=3.0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()

    root = Path(args.dir)
    write_store(root, args.n, aggregate.make_records(args.n), args.keep)
    live_files(root, args.jobs)
    cli = [str(BIN / "labelbench"), "status", str(root)]
    times = cold_and_warm(cli, root)
    print(
        f"`labelbench status` over {args.n} records, {args.jobs} jobs, {RUNNING + STALE}"
        " heartbeats (process start, load, scan, render): "
        + ", ".join(
            f"{label} cache {t:.2f} s ({peak:.0f} MB peak)" for label, (t, peak) in times.items()
        )
        + f"; target (warm) <= {args.target} s: "
        + ("PASS" if times["warm"][0] <= args.target else "FAIL")
    )
    # the target is for a warm cache; a cold one (every record parsed) has none
    figures = [
        figure(f"status: labelbench status, {args.n} records, {label} cache",
               args.target if label == "warm" else None, t, "s", peak)
        for label, (t, peak) in times.items()
    ]  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
