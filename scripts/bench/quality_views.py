"""The papers' image views on digits (issue 17's quality targets), read from two ssl_digits
record stores: `--now`, made with the new views (`make reference`), and `--baseline`, made
before them. Seeds 0-2, the same revealed labels everywhere.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench/quality_views.py \\
        --baseline results/before-views/ssl_digits [--now results/reference/ssl_digits]
        [--results results/bench-views] [--seeds 0,1,2]

- fixmatch with the new strong view (flip where allowed + reflect-pad crop, RandAugment,
  Cutout) at 20 and 40 labels, cnn_small, scores at least fixmatch with the views labelbench
  had before (1-2 pixel zero-fill shifts, a 3x3 cutout, Gaussian noise) minus 1 point of
  mean test accuracy. Those views are gone from the code, so their runs are read from
  `--baseline`: an ssl_digits store made before the change (`make reference` at commit
  89af056 or earlier, with OMP_NUM_THREADS=1 as here).
- supervised trained on the weak view (now the default of every network strategy; its runs
  are in `--now`) scores at least supervised on the raw inputs, at 20 and 40 labels and the
  full pool, for cnn_small and the MLP. The raw-input runs are the one sweep this script
  makes: `experiment=ssl_digits strategy=supervised strategy/augment=none`, records in
  `--results` (reruns skip what is recorded).
- the digits SSL benchmark's fit times grow by at most 20% with the new views: the sum over
  ssl_digits cells of each cell's median fit time, `--now` against `--baseline`, over the
  cells both hold. Both stores should come from the same machine under the same load: fit
  times are wall time.

Exits 1 if a target is missed or a run failed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import orjson

from benchlib import ROOT, conclude, sweep
from labelbench.results.table import load_rows

DROP = 0.01
FEW = ("20", "40")
FIT_GROWTH = 1.20


def by_cell(rows: list[dict]) -> dict[tuple[str, str, str], dict[int, dict]]:
    """(strategy, model, budget label) -> seed -> row, for the runs that finished."""
    cells: dict[tuple[str, str, str], dict[int, dict]] = defaultdict(dict)
    for r in rows:
        if r["status"] == "ok":
            cells[r["strategy"], r["model"], r["budget_label"]][r["seed"]] = r
    return cells


def mean_acc(cell: dict[int, dict], seeds: list[int]) -> float:
    return statistics.fmean(cell[s]["metrics"]["test/acc"] for s in seeds)


def median_fit(cell: dict[int, dict]) -> float:
    """Median fit_s of a cell's runs (from the records: rows do not carry timings)."""
    return statistics.median(
        orjson.loads(Path(r["path"]).read_bytes())["timings"]["fit_s"] for r in cell.values()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="ssl_digits records made before")
    parser.add_argument("--now", default=str(ROOT / "results" / "reference" / "ssl_digits"),
                        help="ssl_digits records made with the new views")  # fmt: skip
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-views"))
    parser.add_argument("--seeds", default="0,1,2")
    args, extra = parser.parse_known_args()
    results, seeds = Path(args.results), [int(s) for s in args.seeds.split(",")]
    t = time.perf_counter()
    common = ["experiment=ssl_digits", "strategy=supervised", "strategy/augment=none",
              f"seed={args.seeds}", "logger=none"]  # fmt: skip
    codes = [sweep([*common, "budget=total", "budget.total=20,40"], results, extra),
             sweep([*common, "budget=full"], results, extra)]  # fmt: skip
    wall = time.perf_counter() - t
    rows = load_rows(results).rows
    raw, old = by_cell(rows), by_cell(load_rows(args.baseline).rows)
    now = by_cell(load_rows(args.now).rows)
    missing = [" ".join(k) for k in [("fixmatch", "cnn_small", b) for b in FEW]
               + [("supervised", m, b) for m in ("cnn_small", "mlp") for b in (*FEW, "full")]
               if set(seeds) - set(now.get(k, {}))]  # fmt: skip
    if missing:
        raise SystemExit(f"quality_views: --now {args.now} lacks seeds {args.seeds} of: "
                         f"{', '.join(missing)} (make reference writes them)")  # fmt: skip

    verdicts = []
    print("| cell | before | now | Δ | fit s before | fit s now |")
    print("|---|---|---|---|---|---|")
    for budget in FEW:
        key = ("fixmatch", "cnn_small", budget)
        if set(seeds) - set(old.get(key, {})):
            raise SystemExit(f"quality_views: --baseline has no fixmatch cnn_small {budget} runs"
                             f" for seeds {args.seeds}")  # fmt: skip
        before, after = mean_acc(old[key], seeds), mean_acc(now[key], seeds)
        print(f"| fixmatch cnn_small {budget} | {before:.3f} | {after:.3f} | {after - before:+.3f}"
              f" | {median_fit(old[key]):.0f} | {median_fit(now[key]):.0f} |")  # fmt: skip
        verdicts.append((f"fixmatch cnn_small {budget}: new views >= before - {DROP:g}",
                         after >= before - DROP, f"{after:.3f} vs {before:.3f}"))  # fmt: skip
    for model in ("cnn_small", "mlp"):
        for budget in (*FEW, "full"):
            key, raw_key = (
                ("supervised", model, budget),
                ("supervised[augment=none]", model, budget),
            )
            before, after = mean_acc(raw[raw_key], seeds), mean_acc(now[key], seeds)
            print(f"| supervised {model} {budget} (raw -> weak view) | {before:.3f} | "
                  f"{after:.3f} | {after - before:+.3f} | {median_fit(raw[raw_key]):.1f} | "
                  f"{median_fit(now[key]):.1f} |")  # fmt: skip
            verdicts.append((f"supervised {model} {budget}: weak view >= raw inputs",
                             after >= before, f"{after:.3f} vs {before:.3f}"))  # fmt: skip
    verdicts.append(fit_growth(old, now))
    print()
    conclude(verdicts, rows, results, wall, codes)


def fit_growth(old: dict, now: dict) -> tuple[str, bool, str]:
    """The fit-time verdict: summed median fit time over the cells both stores hold."""
    both = sorted(set(old) & set(now))
    if not both:
        raise SystemExit("quality_views: --now and --baseline share no ssl_digits cell")
    fits = {k: (median_fit(old[k]), median_fit(now[k])) for k in both}  # reads each record once
    before = sum(b for b, _ in fits.values())
    after = sum(a for _, a in fits.values())
    growth = after / before
    worst = max(both, key=lambda k: fits[k][1] / fits[k][0])
    most = fits[worst][1] / fits[worst][0] - 1
    return (f"ssl_digits fit time (sum of cell medians, {len(both)} cells) grows <= "
            f"{FIT_GROWTH - 1:.0%}", growth <= FIT_GROWTH,
            f"{after:.0f} s vs {before:.0f} s ({growth - 1:+.0%}); most: "
            f"{' '.join(worst)} {most:+.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
