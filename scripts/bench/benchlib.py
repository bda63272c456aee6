"""What the benchmarks share: launching a sweep of labelbench-run, the verdict table that
ends each quality benchmark (and decides its exit code), and timing a process with its
peak memory for `make bench`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
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


def run_measured(cmd: Sequence[str], **popen) -> tuple[float, int, float]:
    """Run `cmd` to the end: (wall seconds, exit code, peak resident memory in MB of the
    largest process in its tree, as the kernel reports it to wait4). Output goes where
    `popen` says (files, DEVNULL; not pipes, which nobody would drain)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **popen)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t, os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


def cold_and_warm(cmd: Sequence[str], store: Path) -> dict[str, tuple[float, float]]:
    """Run a `labelbench` command over `store` twice, first without its record cache, then
    with it: {'cold': (seconds, peak MB), 'warm': (...)}; exits with its stderr if it fails."""
    times = {}
    for label in ("cold", "warm"):
        if label == "cold":
            shutil.rmtree(store / ".cache", ignore_errors=True)
        with tempfile.TemporaryFile("w+") as err:
            t, code, peak = run_measured(cmd, stdout=subprocess.DEVNULL, stderr=err)
            if code != 0:
                err.seek(0)
                sys.exit(f"{' '.join(cmd[1:3])} failed: {err.read()}")
        times[label] = (t, peak)
    return times


def write_store(root: Path, n: int, records, keep: bool) -> None:
    """A record store of `n` records under root/runs from the iterable `records` (a
    generator's), written as RecordStore.write writes them but without its per-file fsync.
    With `keep`, a store already holding n records is kept as it is."""
    runs = root / "runs"
    if keep and runs.is_dir() and len(os.listdir(runs)) >= n:
        return
    shutil.rmtree(root, ignore_errors=True)
    runs.mkdir(parents=True)
    t = time.perf_counter()
    for r in records:
        (runs / f"{r.run_key}.json").write_text(r.to_json())
    print(f"generated {n} records in {time.perf_counter() - t:.1f} s")


def figure(name: str, target: float, measured: float, unit: str, peak_mb: float | None = None,
           **details) -> dict:  # fmt: skip
    """One row of `make bench`'s table: lower is better for every figure there."""
    return {"figure": name, "target": target, "measured": measured, "unit": unit,
            "peak_mb": peak_mb, **details}  # fmt: skip


def git_commit() -> str:
    """The checked-out commit, marked when labelbench/ or conf/ have uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    sha = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return (
        f"{sha} (with uncommitted changes)"
        if git("status", "--porcelain", "--", "labelbench", "conf")
        else sha
    )
