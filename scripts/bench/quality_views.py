"""The papers' image views on digits (issue 17's quality targets): cnn_small, seeds 0-2,
the same revealed labels.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench/quality_views.py \\
        --baseline results/reference/ssl_digits [--results results/bench-views] [--seeds 0,1,2]

- fixmatch with the new strong view (flip where allowed + reflect-pad crop, RandAugment,
  Cutout) at 20 and 40 labels scores at least fixmatch with the views labelbench had before
  (1-2 pixel zero-fill shifts, a 3x3 cutout, Gaussian noise) minus 1 point of mean test
  accuracy. Those views are gone from the code, so their runs are read from `--baseline`: an
  ssl_digits record store made before the change (`make reference` at commit 89af056 or
  earlier, with OMP_NUM_THREADS=1 as here).
- supervised trained on the weak view (now the default of every network strategy) scores at
  least supervised on the raw inputs (`strategy/augment=none`, what it trained on before),
  at 20 and 40 labels and the full pool, for cnn_small and the MLP.

Also prints the median fit time of each side (the digits SSL benchmark's fit times may grow
by at most 20% with the new views). Records go to --results; reruns skip what is recorded.
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
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-views"))
    parser.add_argument("--seeds", default="0,1,2")
    args, extra = parser.parse_known_args()
    results, seeds = Path(args.results), [int(s) for s in args.seeds.split(",")]
    common = ["dataset=digits", "regime=clean", f"seed={args.seeds}", "logger=none"]
    budgets = (["budget=total", "budget.total=20,40"], ["budget=full"])
    t = time.perf_counter()
    codes = [sweep([*common, "model=cnn_small", "strategy=fixmatch", *budgets[0]],
                   results / "fixmatch", extra)]  # fmt: skip
    for views in ("by_modality", "none"):
        for budget in budgets:
            args_ = [*common, "model=cnn_small,mlp", "strategy=supervised", *budget,
                     f"strategy/augment={views}"]  # fmt: skip
            codes.append(sweep(args_, results / f"supervised-{views}", extra))
    wall = time.perf_counter() - t
    new = by_cell(load_rows(results / "fixmatch").rows)
    old = by_cell(load_rows(args.baseline).rows)
    weak = by_cell(load_rows(results / "supervised-by_modality").rows)
    raw = by_cell(load_rows(results / "supervised-none").rows)
    rows = [*load_rows(results / "fixmatch").rows]
    for views in ("by_modality", "none"):
        rows += load_rows(results / f"supervised-{views}").rows

    verdicts = []
    print("| cell | before | now | Δ | fit s before | fit s now |")
    print("|---|---|---|---|---|---|")
    for budget in FEW:
        key = ("fixmatch", "cnn_small", budget)
        if set(seeds) - set(old.get(key, {})):
            raise SystemExit(f"quality_views: --baseline has no fixmatch cnn_small {budget} runs"
                             f" for seeds {args.seeds}")  # fmt: skip
        before, now = mean_acc(old[key], seeds), mean_acc(new[key], seeds)
        print(f"| fixmatch cnn_small {budget} | {before:.3f} | {now:.3f} | {now - before:+.3f} | "
              f"{median_fit(old[key]):.0f} | {median_fit(new[key]):.0f} |")  # fmt: skip
        verdicts.append((f"fixmatch cnn_small {budget}: new views >= before - {DROP:g}",
                         now >= before - DROP, f"{now:.3f} vs {before:.3f}"))  # fmt: skip
    for model in ("cnn_small", "mlp"):
        for budget in (*FEW, "full"):
            key, raw_key = (
                ("supervised", model, budget),
                ("supervised[augment=none]", model, budget),
            )
            before, now = mean_acc(raw[raw_key], seeds), mean_acc(weak[key], seeds)
            print(f"| supervised {model} {budget} (raw -> weak view) | {before:.3f} | {now:.3f} | "
                  f"{now - before:+.3f} | {median_fit(raw[raw_key]):.1f} | {median_fit(weak[key]):.1f} |")  # fmt: skip
            verdicts.append((f"supervised {model} {budget}: weak view >= raw inputs",
                             now >= before, f"{now:.3f} vs {before:.3f}"))  # fmt: skip
    print()
    conclude(verdicts, rows, results, wall, codes)


if __name__ == "__main__":
    main()
