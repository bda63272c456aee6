"""Active learning on digits: every query strategy on top of supervised training (MLP),
seeds 0-2, 10 initial labels (the first of a random reveal order, the same for every
query), +10 per round up to 100; the per-round curves, their AUBC, and where uncertainty
sampling falls below random.

    .venv/bin/python scripts/bench/quality_active.py [--results results/bench-active] [--seeds 0,1,2]
        [--queries random,margin,...] [extra labelbench-run overrides]

Records go to --results and the sweep skips runs already recorded there. A few minutes on
2 CPU cores (OMP_NUM_THREADS=1). Exits 1 if the target is missed or a run failed.

Target: margin or entropy reaches an AUBC >= random's (mean over seeds, labels 10..100).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchlib import ROOT, sweep
from labelbench.results.leaderboard import aubc
from labelbench.results.table import load_rows

QUERIES = ("random", "margin", "entropy", "least_confidence", "coreset", "badge")
SETUP = ["experiment=active_digits", "logger=none"]  # conf/experiment/active_digits.yaml


def query_of(strategy: str) -> str:
    """'active[query=entropy]' -> 'entropy'; plain 'active' is the default, margin."""
    return (
        strategy.split("query=", 1)[1].rstrip("]").split(",")[0]
        if "query=" in strategy
        else "margin"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-active"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--queries", default=",".join(QUERIES))
    args, extra = parser.parse_known_args()
    results = Path(args.results).resolve()

    t0 = time.perf_counter()
    code = sweep([*SETUP, f"strategy/query={args.queries}", f"seed={args.seeds}"], results, extra)
    wall = time.perf_counter() - t0

    rows = [r for r in load_rows(results).rows if r["strategy"].startswith("active")]
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    areas: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["status"] != "ok":
            continue
        q = query_of(r["strategy"])
        points = [(int(p["labels"]), float(p["test/acc"])) for p in r["curve"]]
        for n, acc in points:
            curves[q][n].append(acc)
        areas[q].append(aubc(points))
    sizes = sorted({n for c in curves.values() for n in c})
    print("Mean test/acc per round (labels), 3 seeds; AUBC = area under the curve / range:\n")
    print("| query | " + " | ".join(str(n) for n in sizes) + " | AUBC ± std |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for q in [q for q in QUERIES if q in curves]:
        cells = [f"{np.mean(curves[q][n]):.3f}" if curves[q][n] else "–" for n in sizes]
        print(
            f"| {q} | "
            + " | ".join(cells)
            + f" | {np.mean(areas[q]):.4f} ± {np.std(areas[q], ddof=1) if len(areas[q]) > 1 else 0:.4f} |"
        )

    base = np.mean(areas["random"]) if areas.get("random") else None
    print()
    for q in ("margin", "entropy", "least_confidence"):
        if q in curves and "random" in curves:
            below = [n for n in sizes if np.mean(curves[q][n]) < np.mean(curves["random"][n])]
            print(f"{q} below random at labels: {below or 'none'}")
    best = max(
        (q for q in ("margin", "entropy") if q in areas),
        key=lambda q: np.mean(areas[q]),
        default=None,
    )
    met = base is not None and best is not None and np.mean(areas[best]) >= base
    figures = (
        f"{best} AUBC {np.mean(areas[best]):.4f} vs random {base:.4f}"
        if met or (base and best)
        else "missing"
    )
    print(
        f"\n| target | met | figures |\n|---|---|---|\n| margin or entropy AUBC >= random | {'yes' if met else 'NO'} | {figures} |"
    )
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"\n{len(rows)} records ({failed} failed) in {results}; the sweep took {wall:.0f} s")
    if failed or code or not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
