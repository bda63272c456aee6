"""`make bench`: every speed benchmark, one table (figure, target, measured, measured /
target, peak memory), and one JSON row per invocation appended to results/bench/history.jsonl
with the machine it ran on.

    .venv/bin/python scripts/bench/all.py
        [--only fit,demo,aggregate,dashboard,status,help,augment,crowd]
        [--repeats 5]
        [--history results/bench/history.jsonl]

- fit: scripts/bench/fit_overhead.py, every network strategy against a plain PyTorch loop;
- demo: `make demo` into a fresh results folder, end to end to the printed leaderboard
  (and the dashboard it also writes);
- aggregate: scripts/bench/aggregate.py, `labelbench leaderboard` over 100k records;
- dashboard: scripts/bench/dashboard.py, `labelbench dashboard` over 100k records of two
  shapes (720 cells of many seeds; 33,600 cells of three): the file's size and the time to
  interactive in headless Chromium (a missed figure where Chromium is lacking);
- status: scripts/bench/status.py, `labelbench status` over 100k records, a sweep folder of
  2000 jobs and live and stale heartbeats, cold and warm record cache;
- help: `labelbench --help`, median of fresh processes, and whether it imports torch;
- augment: scripts/bench/augment_speed.py, the strong image view of one FixMatch step's
  unlabeled batch (448 3x32x32 images) against USB's per-image PIL pipeline on one core;
  targeted on CUDA only (>= 20x PIL per core, and with a GPU the views <= 15% of a wrn28_2
  FixMatch step), its CPU figures are informational;
- crowd: scripts/bench/crowd_scale.py, Dawid-Skene on simulated crowds against crowd-kit's
  (20,000 items x 300 annotators: its time, 1.2x its peak memory, its accuracy within 0.001;
  1M votes: <= 20 s, <= 2 GB), and one whole dawid_skene run on 100k crowd-labeled items.

Figures with no target (target None) show "—" and count as met unless they failed (NaN).

Peak memory is the largest process's resident set (wait4's ru_maxrss): for fit, the
benchmark process; for demo, the sweep; for the aggregator, the CLI process itself; for
augment, the benchmark process; for crowd, the measured method's own process. Exits 1 if a
benchmark fails or a target is missed (after printing and recording everything).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import BIN, ROOT, figure, git_commit, run_measured

HERE = Path(__file__).resolve().parent
DEMO_TARGET_S, HELP_TARGET_S = 180.0, 0.5


def from_json(script: str, args: list[str]) -> list[dict]:
    """Run a benchmark script that writes its figures with --json; the process's peak
    memory fills in figures that name none."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(HERE / script), *args, "--json", out.name]
        _, code, peak = run_measured(cmd, cwd=ROOT)
        rows = json.loads(Path(out.name).read_text() or "[]")
    if code != 0:
        rows.append(figure(f"{script} exited {code}", 0, float("nan"), ""))
    return [{**r, "peak_mb": r.get("peak_mb") or peak} for r in rows]


def bench_fit(repeats: int) -> list[dict]:
    return from_json("fit_overhead.py", ["--repeats", str(repeats)])


def bench_aggregate(repeats: int) -> list[dict]:
    return from_json("aggregate.py", [])


def bench_dashboard(repeats: int) -> list[dict]:
    return from_json("dashboard.py", [])


def bench_status(repeats: int) -> list[dict]:
    return from_json("status.py", [])


def bench_demo(repeats: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="lb-bench-demo-") as results:
        t, code, peak = run_measured(
            ["make", "-s", "demo", f"RESULTS={results}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        runs = len(list(Path(results, "runs").glob("*.json")))
    name = f"demo suite, end to end to the printed leaderboard ({runs} runs)"
    return [figure(name, DEMO_TARGET_S, t if code == 0 else float("nan"), "s", peak)]


def bench_help(repeats: int) -> list[dict]:
    cmd = [str(BIN / "labelbench"), "--help"]
    runs = [run_measured(cmd, stdout=subprocess.DEVNULL) for _ in range(max(repeats, 5))]
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv = ['labelbench', '--help']\n"
         "from labelbench.cli import main\ntry: main()\nexcept SystemExit: pass\n"
         "print('torch' in sys.modules, file=sys.stderr)"],
        capture_output=True, text=True,
    )  # fmt: skip
    torch_imported = probe.stderr.strip().splitlines()[-1:] != ["False"]
    seconds = statistics.median(t for t, _, _ in runs)
    if any(code for _, code, _ in runs) or torch_imported:
        seconds = float("nan")  # a failing help, or one that pays for torch, misses the target
    return [
        figure(
            "`labelbench --help` (median of fresh processes; imports no torch)",
            HELP_TARGET_S,
            seconds,
            "s",
            max(p for _, _, p in runs),
            torch_imported=torch_imported,
        )
    ]


def bench_crowd(repeats: int) -> list[dict]:
    return from_json("crowd_scale.py", ["--repeats", str(min(repeats, 3))])


def bench_augment(repeats: int) -> list[dict]:
    import torch  # where there is a GPU, also the views' share of a wrn28_2 FixMatch step

    step = ["--step"] if torch.cuda.is_available() else []
    return from_json("augment_speed.py", ["--repeats", str(repeats), *step])


BENCHES = {
    "fit": bench_fit,
    "demo": bench_demo,
    "aggregate": bench_aggregate,
    "dashboard": bench_dashboard,
    "status": bench_status,
    "help": bench_help,
    "augment": bench_augment,
    "crowd": bench_crowd,
}


def missed(r: dict) -> bool:
    """A figure that failed (NaN) or, where it has a target, is above it."""
    return not r["measured"] <= (math.inf if r["target"] is None else r["target"])


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        mem_gb = None
    import torch  # after the benchmarks: the driver itself stays light while they run

    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def table(rows: list[dict]) -> str:
    lines = ["| figure | target | measured | measured / target | peak MB | met |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ratio = r["measured"] / r["target"] if r["target"] else float("nan")
        unit = r["unit"]
        target = "—" if r["target"] is None else f"{r['target']:g}{unit}"
        lines.append(
            f"| {r['figure']} | {target} | {r['measured']:.3f}{unit} | "
            f"{ratio:.2f} | {r['peak_mb']:.0f} | {'NO' if missed(r) else 'yes'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="benchmarks, comma-separated")
    parser.add_argument(
        "--repeats", type=int, default=5, help="A/B repeats of fit overhead; timed calls of augment"
    )
    parser.add_argument("--history", default=str(ROOT / "results" / "bench" / "history.jsonl"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHES]
    if unknown or not names:
        parser.error(f"--only {args.only!r}: allowed: {', '.join(BENCHES)}")

    rows = []
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        rows += BENCHES[name](args.repeats)
    print(table(rows))
    entry = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "figures": rows,
    }
    history = Path(args.history)
    history.parent.mkdir(parents=True, exist_ok=True)
    with history.open("a") as f:  # one whole line per append
        f.write(json.dumps(entry, default=str) + "\n")
    print(f"\nappended to {history}")
    failed = [r["figure"] for r in rows if missed(r)]
    if failed:
        sys.exit(f"bench: {len(failed)} target(s) missed or failed: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
