"""What the quality benchmarks share: launching a sweep of labelbench-run, and the verdict
table that ends each of them (and decides its exit code)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

Verdict = tuple[str, bool, str]  # (target, met, the figures that decide it)


def sweep(args: Sequence[str], results: Path, extra: Sequence[str] = ()) -> int:
    """`labelbench-run -m <args>` with records under `results`, no stdin; its exit code.
    Runs already recorded there are skipped, so an interrupted benchmark resumes."""
    cmd = [str(BIN / "labelbench-run"), "-m", *args, f"paths.results_dir={results}", *extra]
    print("$", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL).returncode


def conclude(
    verdicts: Sequence[Verdict], rows: Sequence[dict], results: Path, wall: float,
    codes: Sequence[int],
) -> None:  # fmt: skip
    """Print the verdict table and the record count; exit 1 if a target is missed, a run
    failed or a sweep did not exit cleanly."""
    print("| target | met | figures |")
    print("|---|---|---|")
    for target, met, figures in verdicts:
        print(f"| {target} | {'yes' if met else 'NO'} | {figures} |")
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"\n{len(rows)} records ({failed} failed) in {results}; sweeps took {wall:.0f} s")
    if failed or any(codes) or not all(met for _, met, _ in verdicts):
        sys.exit(1)
