"""Launchers on the demo suite: wall time of `make demo`'s two sweeps (digits, clean, budgets
20/50/100 and full, the demo's strategies, seeds 0-2) with launcher=local,
launcher=joblib (n_jobs=2) and launcher=slurm (the cluster SLURM_CONF points at, e.g. the
one-node cluster of scripts/slurm/up.sh), each into a fresh results folder. Repeats are
interleaved (the launcher order rotates) and the table shows medians.

    .venv/bin/python scripts/bench/launchers.py [--repeats 3] [--launchers local,joblib,slurm]
        [--n-jobs 2]

SLURM is skipped, with the reason, when sbatch is missing or no controller answers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from labelbench.launchers import controller_problem, missing_sbatch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SWEEPS = (  # the Makefile's `demo` target, without the leaderboard and dashboard steps
    ["-m", "experiment=demo", "budget=total", "budget.total=20,50,100"],
    ["-m", "experiment=demo", "budget=full"],
)


def demo_runs() -> int:
    """Runs in SWEEPS: the demo's swept values multiplied out, times the four budgets."""
    from omegaconf import OmegaConf

    params = OmegaConf.load(ROOT / "conf" / "experiment" / "demo.yaml").hydra.sweeper.params
    runs = 4  # budget.total=20,50,100 and budget=full
    for values in params.values():
        runs *= len(str(values).split(","))
    return runs


EXPECTED_RUNS = demo_runs()
UP_SH_CONF = Path(os.environ.get("LABELBENCH_SLURM_DIR", "/tmp/labelbench-slurm")) / "slurm.conf"


def launcher_args(name: str, n_jobs: int) -> list[str]:
    if name == "joblib":
        return ["launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
    return [f"launcher={name}"]


def slurm_unavailable() -> str | None:
    """Why launcher=slurm cannot run here, or None. Uses up.sh's SLURM_CONF when none is set."""
    if not os.environ.get("SLURM_CONF") and UP_SH_CONF.is_file():
        os.environ["SLURM_CONF"] = str(UP_SH_CONF)
    return missing_sbatch() or controller_problem()


def count_ok(results: Path) -> int:
    ok = 0
    for path in (results / "runs").glob("*.json"):
        if orjson.loads(path.read_bytes()).get("status") == "ok":
            ok += 1
    return ok


def run_suite(launcher: str, n_jobs: int, tmp_root: Path, log: Path) -> tuple[float, int, int]:
    """Both demo sweeps into a fresh results folder: (wall seconds, runs ok, worst exit code)."""
    results = Path(tempfile.mkdtemp(prefix=f"bench-{launcher}-", dir=tmp_root))
    worst = 0
    t0 = time.perf_counter()
    with log.open("a") as out:
        for sweep in SWEEPS:
            cmd = [
                str(BIN / "labelbench-run"),
                *sweep,
                *launcher_args(launcher, n_jobs),
                "logger=none",
                f"paths.results_dir={results}",
            ]
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(
                cmd, cwd=tmp_root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            worst = max(worst, proc.returncode)
    wall = time.perf_counter() - t0
    ok = count_ok(results)
    shutil.rmtree(results, ignore_errors=True)
    return wall, ok, worst


def advice(medians: dict[str, float], n_jobs: int) -> list[str]:
    lines = []
    local = medians.get("local")
    if local and "joblib" in medians:
        ratio = local / medians["joblib"]
        lines.append(
            f"joblib (n_jobs={n_jobs}) ran the suite {ratio:.2f}x as fast as local here: "
            + (
                "use it for sweeps on one machine with spare cores; each worker pays the "
                "torch/Lightning import once, so it pays off from a few runs per worker."
                if ratio > 1.1
                else "on this machine the runs are too short, or the cores too few, for worker "
                "processes to pay off; keep launcher=local for small sweeps here."
            )
        )
    if local and "slurm" in medians:
        extra = medians["slurm"] - local
        lines.append(
            f"slurm took {medians['slurm']:.1f} s ({extra:+.1f} s against local) on one node: "
            "every run is a fresh process (imports included) plus scheduling and polling. "
            "Use it where the cluster has many more cores than this machine: the array runs "
            "up to array_parallelism runs at once, so a sweep of N runs takes about "
            "N / (free slots) x (one run + ~5 s start-up)."
        )
    lines.append(
        "Many small runs (the usual labelbench sweep) belong in a job array (launcher=slurm "
        "or joblib); trainer=ddp is for one large model that needs several devices."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--launchers", default="local,joblib,slurm")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers")
    parser.add_argument("--tmp", default=None, help="where the throw-away results go")
    parser.add_argument("--log", default=None, help="the sweeps' output (default: a temp file)")
    args = parser.parse_args()

    launchers = [name.strip() for name in args.launchers.split(",") if name.strip()]
    skipped: dict[str, str] = {}
    if "slurm" in launchers:
        why = slurm_unavailable()
        if why:
            skipped["slurm"] = why
            launchers.remove("slurm")
            print(f'slurm: skipped ({why}); start one with: eval "$(scripts/slurm/up.sh)"')
    tmp_root = Path(tempfile.mkdtemp(prefix="labelbench-bench-launchers-", dir=args.tmp))
    log = Path(args.log) if args.log else tmp_root / "sweeps.log"

    walls: dict[str, list[float]] = {name: [] for name in launchers}
    oks: dict[str, list[int]] = {name: [] for name in launchers}
    for rep in range(args.repeats):
        order = launchers[rep % len(launchers) :] + launchers[: rep % len(launchers)]
        for name in order:
            wall, ok, rc = run_suite(name, args.n_jobs, tmp_root, log)
            walls[name].append(wall)
            oks[name].append(ok)
            note = f" (exit {rc}; see {log})" if rc else ""
            print(
                f"  repeat {rep + 1}/{args.repeats} {name}: {wall:.1f} s, "
                f"{ok}/{EXPECTED_RUNS} ok{note}",
                file=sys.stderr,
            )

    cpus = os.cpu_count()
    print(
        f"\ndemo suite ({EXPECTED_RUNS} runs, 2 sweeps), {cpus} CPUs, "
        f"median of {args.repeats} interleaved repeat(s):\n"
    )
    print("| launcher | wall s | runs ok | all repeats (s) |")
    print("|---|---|---|---|")
    medians = {}
    for name in launchers:
        medians[name] = statistics.median(walls[name])
        label = f"joblib n_jobs={args.n_jobs}" if name == "joblib" else name
        every = ", ".join(f"{w:.1f}" for w in walls[name])
        print(f"| {label} | {medians[name]:.1f} | {min(oks[name])}/{EXPECTED_RUNS} | {every} |")
    for name, why in skipped.items():
        print(f"| {name} | skipped | - | {why} |")
    print()
    for line in advice(medians, args.n_jobs):
        print(f"- {line}")
    if not args.log:
        print(f"\n(sweep output: {log})")
    if any(min(v) < EXPECTED_RUNS for v in oks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
