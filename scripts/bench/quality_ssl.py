"""Semi-supervised quality on digits: the `ssl_digits` experiment (small CNN and MLP, every
SSL strategy and the classical peers, seeds 0-2, budgets of 20 and 40 labels and the full
pool), its leaderboards, and the quality targets, each with the figures that decide it.

    .venv/bin/python scripts/bench/quality_ssl.py [--results results/bench-ssl] [--seeds 0,1,2]
        [--models cnn_small,mlp] [extra labelbench-run overrides, e.g. launcher=joblib]

Records go to --results and the sweeps skip runs already recorded there, so an interrupted
benchmark resumes where it stopped; delete the folder to measure from scratch. About 35
minutes on 2 CPU cores. Exits 1 if a target is missed or a run failed.

Targets (SSL strategies: the ones that train the same network as supervised, on the
revealed labels plus the unlabeled pool; label_spreading and knn are shown as peers):
- at 20 and at 40 labels, the best SSL strategy beats supervised (same model) by >= 5
  points of mean test accuracy;
- fixmatch beats supervised with cnn_small at 20 and at 40 labels;
- at full labels no SSL strategy is more than 1 point below supervised (same model).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import orjson

from benchlib import ROOT, conclude, sweep
from labelbench.results.leaderboard import build_leaderboards
from labelbench.results.render import to_markdown
from labelbench.results.table import load_rows

SSL = (
    "pseudo_label",
    "mean_teacher",
    "fixmatch",
    "flexmatch",
    "self_training",
    "label_propagation",
)
FEW = ("20", "40")
GAIN, FULL_DROP = 0.05, 0.01


def sweep_ssl(results: Path, seeds: str, models: str, budget: list[str], extra: list[str]) -> int:
    args = ["experiment=ssl_digits", *budget, f"seed={seeds}", f"model={models}", "logger=none"]
    return sweep(args, results, extra)


def check_targets(boards) -> list[tuple[str, bool, str]]:
    """(target, met, figures) for every target and model."""
    verdicts = []
    for lb in boards:
        model = lb.scope.get("model", "?")
        means = {(r[0], c[-1]): lb.cell(r, c).mean for r in lb.rows for c in lb.cols}
        supervised = {b: means.get(("supervised", b)) for b in (*FEW, "full")}
        for budget in FEW:
            ssl = {s: means.get((s, budget)) for s in SSL if means.get((s, budget)) is not None}
            base = supervised[budget]
            if base is None or not ssl:
                verdicts.append((f"{model} {budget}: best SSL >= supervised + 5", False, "missing"))
                continue
            best = max(ssl, key=ssl.get)
            gain = ssl[best] - base
            verdicts.append(
                (
                    f"{model} {budget} labels: best SSL >= supervised + {GAIN:.2f}",
                    gain >= GAIN,
                    f"{best} {ssl[best]:.3f} vs supervised {base:.3f} ({gain:+.3f})",
                )
            )
            if model == "cnn_small":
                fix = ssl.get("fixmatch")
                verdicts.append(
                    (
                        f"{model} {budget} labels: fixmatch > supervised",
                        fix is not None and fix > base,
                        f"fixmatch {fix:.3f} vs {base:.3f}" if fix is not None else "missing",
                    )
                )
        base = supervised["full"]
        full = {s: means.get((s, "full")) for s in SSL}
        present = {s: v for s, v in full.items() if v is not None}
        if base is None or len(present) < len(SSL):
            absent = sorted(set(SSL) - set(present))
            verdicts.append((f"{model} full: no SSL > 1 pt below", False, f"missing {absent}"))
            continue
        worst = min(present, key=present.get)
        drop = base - present[worst]
        verdicts.append(
            (
                f"{model} full: no SSL strategy more than {FULL_DROP:.2f} below supervised",
                drop <= FULL_DROP,
                f"worst {worst} {present[worst]:.3f} vs supervised {base:.3f} ({-drop:+.3f})",
            )
        )
    return verdicts


def fit_times(rows: list[dict]) -> str:
    """Median fit seconds per strategy and model, over every ok run (a markdown table)."""
    seconds = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            timings = orjson.loads(Path(row["path"]).read_bytes())["timings"]
            seconds[row["strategy"], row["model"]].append(timings["fit_s"])
    models = sorted({m for _, m in seconds})
    lines = [
        "Median fit time (s) per run:",
        "",
        "| strategy | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for strategy in sorted({s for s, _ in seconds}):
        cells = [
            f"{statistics.median(seconds[strategy, m]):.2f}" if seconds[strategy, m] else "–"
            for m in models
        ]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-ssl"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="cnn_small,mlp")
    args, extra = parser.parse_known_args()
    results = Path(args.results).resolve()

    t0 = time.perf_counter()
    codes = [
        sweep_ssl(
            results,
            args.seeds,
            args.models,
            ["budget=total", f"budget.total={','.join(FEW)}"],
            extra,
        ),
        sweep_ssl(results, args.seeds, args.models, ["budget=full"], extra),
    ]
    wall = time.perf_counter() - t0

    rows = load_rows(results).rows
    boards = build_leaderboards(
        rows, row_fields=("strategy",), col_fields=("budget",),
        filters={"dataset": "digits", "regime": "clean"},
    )  # fmt: skip
    print(to_markdown(boards))
    print(fit_times(rows))
    conclude(check_targets(boards), rows, results, wall, codes)


if __name__ == "__main__":
    main()
