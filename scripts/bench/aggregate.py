"""Aggregator at scale: generate N synthetic run records, then time loading them (cold: no
cache; warm: cache valid; one changed file) and building the leaderboard, in-process and
through `labelbench leaderboard`. Target: 100k records aggregate in <= 5 s.

    .venv/bin/python scripts/bench/aggregate.py [--n 100000] [--dir /tmp/lb-bench] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path

from benchlib import BIN, cold_and_warm, figure, write_store
from labelbench.results.record import RunRecord

STRATEGIES = [
    "supervised",
    "logreg",
    "fixmatch",
    "mean_teacher",
    "pseudo_label",
    "gce",
    "coteach",
    "knn",
]
REGIMES = ["clean", "noisy_sym", "noisy_asym", "long_tail", "crowd"]
BUDGETS = [(20, "20"), (50, "50"), (100, "100"), (250, "250"), (500, "500"), (1169, "full")]
DATASETS = ["digits", "mnist1d", "synthetic"]


def make_records(n: int, seed: int = 0):
    """Realistic records: full label accounting (indices), resolved config, all metrics."""
    rng = random.Random(seed)
    combos = [(d, r, b, s) for d in DATASETS for r in REGIMES for b in BUDGETS for s in STRATEGIES]
    for i in range(n):
        dataset, regime, (size, label), strategy = combos[i % len(combos)]
        seed_i = i // len(combos)
        acc = min(0.99, 0.5 + 0.4 * (size / 1169) ** 0.3 + rng.gauss(0, 0.02))
        failed = rng.random() < 0.01
        metrics = (
            {}
            if failed
            else {
                "test/acc": acc,
                "test/balanced_acc": acc - 0.01,
                "test/macro_f1": acc - 0.02,
                "test/worst_class_acc": acc - 0.2,
                "test/ece": 0.05 + rng.random() * 0.05,
                "test/nll": 1.0 - acc + rng.random() * 0.1,
                "fit/steps": 1500.0,
            }
        )
        yield RunRecord(
            run_key=f"{i:016x}",
            status="failed" if failed else "ok",
            choices={
                "dataset": dataset,
                "regime": regime,
                "budget": "total",
                "strategy": strategy,
                "model": "mlp",
            },
            seed=seed_i,
            split_seed=0,
            labels={
                "budget": label,
                "budget_size": size,
                "count": size,
                "val_count": 269,
                "val_paid": False,
                "cost": float(size),
                "noise_rate": 0.0,
                "indices": rng.sample(range(1797), size),
            },
            metrics=metrics,
            directions={
                k: ("min" if k in ("test/ece", "test/nll") else "max")
                for k in metrics
                if k.startswith("test/")
            },
            curve=[],
            timings={"load_s": 0.1, "fit_s": 1.0, "eval_s": 0.01, "total_s": 1.2},
            versions={"python": "3.11.7", "torch": "2.13.0+cpu"},
            git={"sha": "0" * 40, "dirty": False},
            host={"hostname": "bench", "pid": 1},
            config={
                "dataset": {"_target_": f"labelbench.data.sources.{dataset}"},
                "seed": seed_i,
                "strategy": {
                    "_target_": f"labelbench.strategies.{strategy}",
                    "max_steps": 1500,
                    "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001},
                },
                "budget": {"_target_": "labelbench.labels.budget.Total", "total": size},
                "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true"},
            },
            error={"type": "FloatingPointError", "message": "training loss became nan"}
            if failed
            else None,
            created="2026-11-22T00:00:00+00:00",
        )


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dir", default="/tmp/labelbench-bench-aggregate")
    parser.add_argument(
        "--keep", action="store_true", help="reuse records already generated in --dir"
    )
    parser.add_argument("--target", type=float, default=5.0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()

    root = Path(args.dir)
    runs = root / "runs"
    write_store(root, args.n, make_records(args.n), args.keep)  # set-up, not what is measured
    shutil.rmtree(root / ".cache", ignore_errors=True)

    from labelbench.results.table import load_rows

    t_cold, rows = timed(lambda: load_rows(root))
    t_warm, rows = timed(lambda: load_rows(root))
    some = sorted(runs.iterdir())[0]
    os.utime(some)  # one changed file: only it is parsed again
    t_one, rows = timed(lambda: load_rows(root))
    print(
        f"load rows: cold {t_cold:.2f} s, warm {t_warm:.2f} s, one file changed {t_one:.2f} s ({len(rows.rows)} rows)"
    )

    cli = [str(BIN / "labelbench"), "leaderboard", str(root), "--format", "md"]
    times = cold_and_warm(cli, root)
    results = {label: t for label, (t, _) in times.items()}
    peaks = {label: peak for label, (_, peak) in times.items()}
    print(
        f"`labelbench leaderboard` end to end (process start, load, stats, render): "
        f"cold cache {results['cold']:.2f} s ({peaks['cold']:.0f} MB peak), warm cache "
        f"{results['warm']:.2f} s ({peaks['warm']:.0f} MB); target <= {args.target} s: "
        f"{'PASS' if max(results.values()) <= args.target else 'FAIL'}"
    )
    figures = [
        figure(f"aggregator: labelbench leaderboard, {args.n} records, {label} cache",
               args.target, results[label], "s", peaks[label])
        for label in ("cold", "warm")
    ]  # fmt: skip
    figures.append(figure(f"aggregator: load {args.n} records in-process, no cache",
                          args.target, t_cold, "s"))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
