"""Fair tuning on digits: the `tune_digits` preset (supervised, FixMatch and ELR at 40 labels,
each tuned with the same 20 trials on the 8 validation labels the budget pays for, then the
best settings and the defaults on seeds 0-2), and what tuning changed.

    .venv/bin/python scripts/bench/quality_tune.py [--results results/bench-tune]
        [extra labelbench-run overrides, e.g. launcher=joblib hydra.sweeper.trials=10]

Records go to --results; trials and runs already recorded there are not run again, so an
interrupted benchmark resumes where it stopped. About 20 minutes on 2 CPU cores.

Prints the leaderboard, then for supervised and fixmatch: default vs tuned test accuracy
(mean ± sd over the seeds, the paired difference), the tuning cost, and whether the two
methods' ranking changes after tuning. Exits 1 if a run failed, a trial computed a test
metric, or the methods' tuning budgets differ.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import orjson

from benchlib import ROOT, conclude, sweep
from labelbench.results.leaderboard import build_leaderboards, config_value
from labelbench.results.render import to_markdown
from labelbench.results.table import load_rows
from labelbench.tune import SEARCH_DIR, load_space

COMPARED = ("supervised", "fixmatch")


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "bench-tune")
    args, extra = parser.parse_known_args()
    t = time.perf_counter()
    code = sweep(["experiment=tune_digits", "logger=none"], args.results, extra)
    wall = time.perf_counter() - t

    loaded = load_rows(args.results, use_cache=False)
    rows = loaded.rows
    boards = build_leaderboards(rows, baseline="supervised", read_configs=None)
    print(to_markdown(boards))

    # test accuracy by (strategy row, seed); trials and their metrics apart
    acc: dict[str, dict[int, float]] = defaultdict(dict)
    trials: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("trial") is not None:
            trials[r["study"]].append(r)
        elif r["status"] == "ok":
            acc[r["strategy"]][r["seed"]] = r["metrics"]["test/acc"]
    leaked = sorted(
        r["path"]
        for rs in trials.values()
        for r in rs
        if any(k.startswith("test") for k in r["metrics"])
    )
    per_study = {study: len(rs) for study, rs in trials.items()}

    print("| method | default | tuned | tuned - default (paired) | trials | tuning fit time |")
    print("|---|---|---|---|---|---|")
    for name in COMPARED:
        default, tuned = acc.get(name, {}), acc.get(f"{name}[tuned]", {})
        seeds = sorted(set(default) & set(tuned))
        studies = sorted({r["study"] for r in rows if r["strategy"] == f"{name}[tuned]"})
        spent = [r for s in studies for r in trials.get(s, [])]
        diffs = [tuned[s] - default[s] for s in seeds]
        print(
            f"| {name} | {spread(list(default.values())) if default else '–'}"
            f" | {spread(list(tuned.values())) if tuned else '–'}"
            f" | {spread(diffs) if diffs else '–'} ({len(seeds)} seeds)"
            f" | {len(spent)} | {sum(r.get('fit_s') or 0 for r in spent):.0f} s |"
        )
    means = {key: statistics.fmean(values.values()) for key, values in acc.items() if values}

    def ranking(suffix: str) -> list[str]:
        shown = [n for n in COMPARED if f"{n}{suffix}" in means]
        return sorted(shown, key=lambda n: -means[f"{n}{suffix}"])

    before, after = ranking(""), ranking("[tuned]")
    print(f"\nranking with defaults: {' > '.join(before)}; after tuning: {' > '.join(after)}")
    print(f"the ranking {'does not change' if before == after else 'CHANGES'} after tuning")
    for r in sorted(rows, key=lambda r: (r["strategy"], r["seed"])):  # what the studies chose
        if r.get("tuned_trials") and r["seed"] == min(acc[r["strategy"]], default=r["seed"]):
            config = orjson.loads(Path(r["path"]).read_bytes())["config"]
            space = load_space(SEARCH_DIR / f"{r['strategy'].removesuffix('[tuned]')}.yaml")
            chosen = " ".join(f"{k}={config_value(config, k)}" for k in space)
            print(f"{r['strategy']} (study {r['study']}): {chosen}")

    verdicts = [
        ("every method tuned with the same number of trials", len(set(per_study.values())) == 1,
         ", ".join(f"{s}: {n}" for s, n in sorted(per_study.items()))),
        ("no trial computed a test metric", not leaked, f"{len(leaked)} trials with test metrics"),
        ("the preset's rows are all there", all(
            f"{n}{s}" in means for n in COMPARED for s in ("", "[tuned]")),
         f"{len(means)} rows with test/acc"),
    ]  # fmt: skip
    conclude(verdicts, rows, args.results, wall, [code])


if __name__ == "__main__":
    main()
