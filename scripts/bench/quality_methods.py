"""The methods the published tables compare (issue 18), on digits, seeds 0-2, the same
revealed labels for every method of a cell: the quality targets, each with the figures
that decide it, and the mean test accuracy of every cell.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench/quality_methods.py \\
        [--results results/bench-methods] [--seeds 0,1,2] [--only ssl,noise,active]
        [extra labelbench-run overrides]

Records go to --results and the sweeps skip runs already recorded there, so an interrupted
benchmark resumes where it stopped (copying ssl_digits' fixmatch records there first saves
their runs: they have the same run keys). Exits 1 if a target is missed or a run failed.

Targets:
- ssl: freematch and softmatch at 20 and 40 labels with cnn_small score at least fixmatch
  minus 1 point (mean test accuracy); uda and mixmatch are reported beside them.
- noise (MLP, the whole pool, noise on pool and validation as in noise_digits): dividemix
  beats cross-entropy (supervised) by >= 3 points under 40% symmetric and under 40%
  asymmetric noise (the MNIST map 2->7, 3->8, 5<->6, 7->1); forward correction with the
  known (realised) transition matrix, a marked upper bound, beats cross-entropy under the
  asymmetric noise. The other noisy-label methods are reported beside them.
- active (active_digits, MLP with dropout 0.3 for every query, so BALD's MC-dropout and
  random see the same network): bald's AUBC >= random's.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchlib import ROOT, conclude, sweep
from labelbench.results.leaderboard import aubc
from labelbench.results.table import load_rows

DROP = 0.01  # ssl: at most this far below fixmatch
GAIN = 0.03  # noise: dividemix at least this far above cross-entropy
SYMMETRIC = ["regime=symmetric", "regime.rate=0.4"]
ASYMMETRIC = ["regime=asymmetric", "regime.map=mnist", "regime.rate=0.4"]
NOISY = "supervised,dividemix,forward_correction,backward_correction,coteaching_plus,jocor"
SWEEPS = {
    "ssl": [
        ["experiment=ssl_digits", "model=cnn_small", "budget=total", "budget.total=20,40",
         "strategy=fixmatch,freematch,softmatch,uda,mixmatch"],
    ],
    "noise": [
        ["experiment=noise_digits", *regime, f"strategy={NOISY}"]
        for regime in (SYMMETRIC, ASYMMETRIC)
    ] + [
        ["experiment=noise_digits", *regime, "strategy=forward_correction",
         "strategy.transition=known"]
        for regime in (SYMMETRIC, ASYMMETRIC)
    ],
    "active": [
        ["experiment=active_digits", "model.dropout=0.3",
         "strategy/query=random,margin,bald,typiclust"],
        # BatchBALD's reference settings (100 passes, 40000 joint samples) take minutes a
        # round on 2 CPU cores: fewer of both here
        ["experiment=active_digits", "model.dropout=0.3", "strategy/query=batch_bald",
         "strategy.query.samples=20", "strategy.query.joint_samples=1000"],
    ],
}  # fmt: skip


def cells(rows: list[dict]) -> dict[tuple[str, str, str, str], dict[int, dict]]:
    """(regime label, budget label, model, strategy) -> seed -> row, for the ok runs."""
    out: dict[tuple[str, str, str, str], dict[int, dict]] = defaultdict(dict)
    for r in rows:
        if r["status"] == "ok":
            out[r["regime_label"], r["budget_label"], r["model"], r["strategy"]][r["seed"]] = r
    return out


def accuracy(cell: dict[int, dict], seeds: list[int]) -> float | None:
    """Mean test accuracy over `seeds`, or None when a seed is missing."""
    if set(seeds) - set(cell):
        return None
    return float(np.mean([cell[s]["metrics"]["test/acc"] for s in seeds]))


def area(cell: dict[int, dict], seeds: list[int]) -> float | None:
    """Mean AUBC of the per-round curves over `seeds`, or None when a seed is missing."""
    if set(seeds) - set(cell):
        return None
    return float(np.mean([aubc([(int(p["labels"]), float(p["test/acc"])) for p in cell[s]["curve"]])
                          for s in seeds]))  # fmt: skip


def table(found: dict, seeds: list[int], score=accuracy, label: str = "test/acc") -> None:
    """Every cell's mean over the seeds (and its std), grouped by regime, budget and model."""
    print(f"| regime | budget | model | strategy | {label} ± std (n) |")
    print("|---|---|---|---|---|")
    for key in sorted(found):
        cell = found[key]
        values = [score({s: cell[s]}, [s]) for s in seeds if s in cell]
        spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
        print(f"| {' | '.join(key)} | {np.mean(values):.3f} ± {spread:.3f} ({len(values)}) |")
    print()


def compare(name: str, mine: float | None, base: float | None, margin: float, what: str):
    """A verdict: `mine` >= `base` + margin (margin < 0: may lose that much)."""
    if mine is None or base is None:
        return (name, False, "missing runs")
    return (name, mine >= base + margin, f"{what} {mine:.3f} vs {base:.3f} ({mine - base:+.3f})")


def find(found: dict, regime: str, budget: str, model: str, strategy: str) -> dict[int, dict]:
    """The cell whose regime label starts with `regime` (labels carry the settings)."""
    for (reg, bud, mod, strat), cell in found.items():
        if reg.startswith(regime) and bud == budget and mod == model and strat == strategy:
            return cell
    return {}


def ssl_verdicts(found: dict, seeds: list[int]) -> list:
    verdicts = []
    for budget in ("20", "40"):
        fixmatch = accuracy(find(found, "clean", budget, "cnn_small", "fixmatch"), seeds)
        for method in ("freematch", "softmatch"):
            mine = accuracy(find(found, "clean", budget, "cnn_small", method), seeds)
            verdicts.append(compare(f"{method} cnn_small {budget}: >= fixmatch - {DROP:g}",
                                    mine, fixmatch, -DROP, f"{method}"))  # fmt: skip
    return verdicts


def noise_verdicts(found: dict, seeds: list[int]) -> list:
    verdicts = []
    for regime in ("symmetric(0.4)", "asymmetric"):
        ce = accuracy(find(found, regime, "full", "mlp", "supervised"), seeds)
        mine = accuracy(find(found, regime, "full", "mlp", "dividemix"), seeds)
        verdicts.append(compare(f"{regime} 40%: dividemix >= cross-entropy + {GAIN:g}",
                                mine, ce, GAIN, "dividemix"))  # fmt: skip
    ce = accuracy(find(found, "asymmetric", "full", "mlp", "supervised"), seeds)
    oracle = accuracy(find(found, "asymmetric", "full", "mlp", "forward_correction[oracle]"), seeds)
    verdicts.append(compare("asymmetric 40%: forward correction, known T > cross-entropy",
                            oracle, ce, 1e-9, "forward_correction[oracle]"))  # fmt: skip
    return verdicts


def active_verdicts(found: dict, seeds: list[int]) -> list:
    queries = {key[3]: cell for key, cell in found.items() if key[3].startswith("active")}
    random = next((c for s, c in queries.items() if "query=random" in s), {})
    bald = next((c for s, c in queries.items() if "query=bald" in s), {})
    return [compare("bald AUBC >= random AUBC (MLP, dropout 0.3)", area(bald, seeds),
                    area(random, seeds), 0.0, "bald")]  # fmt: skip


VERDICTS = {"ssl": ssl_verdicts, "noise": noise_verdicts, "active": active_verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-methods"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default=",".join(SWEEPS))
    args, extra = parser.parse_known_args()
    results, seeds = Path(args.results).resolve(), [int(s) for s in args.seeds.split(",")]
    only = args.only.split(",")
    unknown = set(only) - set(SWEEPS)
    if unknown:
        parser.error(f"--only {','.join(sorted(unknown))}: allowed: {', '.join(SWEEPS)}")

    t0 = time.perf_counter()
    codes = [
        sweep([*args_, f"seed={args.seeds}", "logger=none"], results / part, extra)
        for part in only
        for args_ in SWEEPS[part]
    ]
    wall = time.perf_counter() - t0

    verdicts, everything = [], []
    for part in only:
        rows = load_rows(results / part).rows
        everything += rows
        found = cells(rows)
        print(f"## {part}\n")
        if part == "active":
            table({k: v for k, v in found.items() if k[3].startswith("active")}, seeds, area,
                  "AUBC")  # fmt: skip
        else:
            table(found, seeds)
        verdicts += VERDICTS[part](found, seeds)
    conclude(verdicts, everything, results, wall, codes)


if __name__ == "__main__":
    main()
