"""Label regimes and the strategies built for them, on digits (MLP; noise also with the
small CNN), seeds 0-2, the same splits and revealed items for every strategy of a regime:
the quality targets of issue 6, each with the figures that decide it, and the leaderboard
of every sweep.

    .venv/bin/python scripts/bench/quality_regimes.py [--results results/bench-regimes]
        [--seeds 0,1,2] [--only noise,crowd,weak,partial,longtail] [extra overrides]

Records go to --results and the sweeps skip runs already recorded there, so an interrupted
benchmark resumes where it stopped; delete the folder to measure from scratch. About 15
minutes on 2 CPU cores (OMP_NUM_THREADS=1). Exits 1 if a target is missed or a run failed.

Targets:
- realised symmetric noise is within 1 point of the configured rate on pools >= 1000
  (digits' pool: 1169 items; rates 0.1-0.8, seeds 0-4; no training);
- under 40% symmetric noise at full budget, gce or coteaching beats cross-entropy
  (supervised) by >= 3 points of mean test accuracy (checked for each model);
- with 3 annotators of 70% accuracy, dawid_skene >= majority_vote (mean test accuracy).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchlib import ROOT, conclude, sweep
from labelbench.results.leaderboard import build_leaderboards
from labelbench.results.render import to_markdown
from labelbench.results.table import load_rows

COMMON = ["dataset=digits", "logger=none"]
NOISE_GAIN = 0.03

# Each sweep: one regime (or a few), the strategies that learn from what it gives; the
# presets (conf/experiment/*_digits.yaml) are the ones `make reference` publishes.
SWEEPS = {
    "noise": [
        ["experiment=noise_digits"],
        ["experiment=noise_digits", "strategy=supervised", "strategy/loss=gce,sce,mae,bootstrap"],
        ["experiment=noise_digits", "strategy=distill", "strategy.teacher_labels=oracle"],
        ["experiment=noise_digits", "model=cnn_small", "strategy=supervised,coteaching,elr"],
        ["experiment=noise_digits", "model=cnn_small", "strategy=supervised", "strategy/loss=gce,sce"],
    ],
    "crowd": [["experiment=crowd_digits"]],
    "weak": [["experiment=weak_digits"]],
    "partial": [["experiment=partial_digits"]],
    "longtail": [
        ["regime=stack", "regime.stages.imbalance.ratio=20", "regime.stages.noise.rate=0.3",
         "model=mlp", "budget=full", "strategy=supervised,coteaching"],
        ["regime=stack", "regime.stages.imbalance.ratio=20", "regime.stages.noise.rate=0.3",
         "model=mlp", "budget=full", "strategy=supervised", "strategy/loss=gce"],
    ],
}  # fmt: skip


def realised_noise(seeds=range(5), rates=(0.1, 0.2, 0.4, 0.6, 0.8)) -> tuple[float, int]:
    """Largest |realised - configured| symmetric noise rate over the digits pool."""
    from labelbench.data.sources import Digits
    from labelbench.labels import Full, Symmetric, reveal

    task = Digits().load(split_seed=0)
    worst = 0.0
    for rate in rates:
        for seed in seeds:
            _, acc = reveal(task, Symmetric(rate), Full(), seed=seed, split_seed=0)
            worst = max(worst, abs(acc.noise_rate - rate))
    return worst, len(task.split.pool)


def means(rows: list[dict], regime_prefix: str, budget: str, model: str) -> dict[str, float]:
    """Mean test accuracy per strategy over the ok runs of one regime label, budget and model."""
    scores: dict[str, list[float]] = {}
    for r in rows:
        ok = r["status"] == "ok" and r["budget_label"] == budget and r["model"] == model
        if ok and r["regime_label"].startswith(regime_prefix):
            scores.setdefault(r["strategy"], []).append(r["metrics"]["test/acc"])
    return {s: float(np.mean(v)) for s, v in scores.items()}


def check_targets(rows: list[dict], only: set[str]) -> list[tuple[str, bool, str]]:
    verdicts = []
    worst, pool = realised_noise()
    verdicts.append(
        (
            "realised symmetric noise within 0.01 of the rate (pool >= 1000)",
            worst <= 0.01 and pool >= 1000,
            f"worst gap {worst:.4f} on a pool of {pool}",
        )
    )
    for model in ("mlp", "cnn_small") if "noise" in only else ():
        m = means(rows, "symmetric(0.4)", "full", model)
        ce = m.get("supervised")
        robust = {s: m[s] for s in ("supervised[loss=gce]", "coteaching") if s in m}
        target = f"{model}, 40% symmetric, full: gce or coteaching >= CE + {NOISE_GAIN:.2f}"
        if ce is None or not robust:
            verdicts.append((target, False, "missing"))
            continue
        best = max(robust, key=robust.get)
        gain = robust[best] - ce
        others = {s: v - ce for s, v in m.items() if s not in robust and s != "supervised"}
        verdicts.append(
            (
                target,
                gain >= NOISE_GAIN,
                f"{best} {robust[best]:.3f} vs CE {ce:.3f} ({gain:+.3f}); others: "
                + ", ".join(f"{s} {d:+.3f}" for s, d in sorted(others.items())),
            )
        )
    if "crowd" in only:
        for budget in ("300", "3507"):
            m = means(rows, "crowd(3of3@0.7)", budget, "mlp")
            ds, mv = m.get("dawid_skene"), m.get("majority_vote")
            verdicts.append(
                (
                    f"3 annotators at 70%, {budget} annotations: dawid_skene >= majority_vote",
                    ds is not None and mv is not None and ds >= mv,
                    f"dawid_skene {ds:.3f} vs majority_vote {mv:.3f} ({ds - mv:+.3f})"
                    if ds is not None and mv is not None
                    else "missing",
                )
            )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-regimes"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default=",".join(SWEEPS))
    args, extra = parser.parse_known_args()
    results = Path(args.results).resolve()
    only = set(args.only.split(","))
    unknown = only - set(SWEEPS)
    if unknown:
        parser.error(f"--only {','.join(sorted(unknown))}: allowed: {', '.join(SWEEPS)}")

    t0 = time.perf_counter()
    codes = [
        sweep([*COMMON, *overrides, f"seed={args.seeds}"], results, extra)
        for family in SWEEPS
        if family in only
        for overrides in SWEEPS[family]
    ]
    wall = time.perf_counter() - t0

    rows = load_rows(results).rows
    boards = build_leaderboards(
        rows, row_fields=("strategy",), col_fields=("regime", "budget"),
        filters={"dataset": "digits"},
    )  # fmt: skip
    print(to_markdown(boards))
    conclude(check_targets(rows, only), rows, results, wall, codes)


if __name__ == "__main__":
    main()
