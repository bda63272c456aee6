"""Dawid-Skene at crowd scale (issue 26): our sparse `dawid_skene` against crowd-kit's
DawidSkene on the same simulated votes, then one whole `labelbench-run` of dawid_skene on
a crowd-labeled synthetic pool of 100k items.

    .venv/bin/python scripts/bench/crowd_scale.py [--repeats 3] [--skip-crowdkit-large]
        [--crowdkit-timeout 180] [--no-run] [--run-items 100000] [--run-annotators 1000]
        [--out results/bench-crowd/crowd_scale.json] [--json FILE]

The crowds (`simulate`): 10 classes, 3 distinct annotators per item, annotator accuracies
uniform in [0.5, 0.95], a third of the annotators spammers who answer uniformly at random.
Each measurement is a fresh process (this script with --measure), so its peak memory is
that method's alone: the votes are built first, then the aggregation call alone is timed;
peak RSS is the process's (imports, votes and fit; `rss_before_mb` is the same before the
fit), tracemalloc's peak is over a second, untimed fit in that process (numpy and pandas
report their buffers to it). Medians of --repeats processes; crowd-kit on the 1M-vote crowd
runs once, and is given up after --crowdkit-timeout seconds.

Targets (the issue's): 20,000 items x 300 annotators: our time <= crowd-kit's, our peak
RSS <= 1.2 x crowd-kit's, aggregated-label accuracy within 0.1 point (0.001) of crowd-kit's;
1M votes (333,334 items x 10,000 annotators): <= 20 s and <= 2 GB (2048 MiB) peak RSS. The
whole run (regime, aggregation, network fit) has no target: its time is stated.

--json FILE writes `make bench`'s figure rows (scripts/bench/all.py); --out the full
measurements (every repeat, the whole run's record figures and stage timings).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import BIN, ROOT, figure

K = 10  # classes
PER_ITEM = 3  # distinct annotators per item
ACCURACY = (0.5, 0.95)  # a non-spammer's accuracy, drawn uniformly from this range
SPAMMERS = 1 / 3  # share of annotators answering uniformly at random
SEED = 0
CROWDKIT_ITERATIONS = 100  # crowd-kit's own default n_iter
# (name, items, annotators): the two crowds, and one of 1M votes.
CROWDS = [
    ("2k", 2_000, 30),
    ("20k", 20_000, 300),
    ("1M", 333_334, 10_000),
]
TIME_RATIO, MEMORY_RATIO, ACC_GAP = 1.0, 1.2, 0.001  # the 20k crowd, against crowd-kit
LARGE_S, LARGE_MB = 20.0, 2048.0  # the 1M-vote crowd, ours alone


def simulate(
    n_items: int,
    n_annotators: int,
    num_classes: int = K,
    per_item: int = PER_ITEM,
    accuracy: tuple[float, float] = ACCURACY,
    spammers: float = SPAMMERS,
    seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A simulated crowd: (truth, item, worker, label), the last three one entry per vote.

    True classes are uniform over `num_classes`. Each annotator's accuracy is uniform in
    `accuracy`; a share `spammers` of the annotators (chosen at random) instead answer
    uniformly over all classes. A non-spammer's wrong answer is uniform over the other
    classes. Each item gets `per_item` distinct annotators, every set of them equally likely:
    a uniform first annotator a, then a + d (mod n_annotators) for distinct offsets d drawn
    uniformly from 1..n_annotators-1 (each draw from those left, by skipping the ones taken)
    — whole arrays at a time, no loop over items. Seeded: the same arguments give the same
    crowd."""
    if not 1 <= per_item <= n_annotators:
        raise ValueError(f"per_item={per_item} must be in 1..n_annotators={n_annotators}")
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, n_items)
    acc = rng.uniform(*accuracy, n_annotators)
    spam = np.zeros(n_annotators, dtype=bool)
    spam[rng.permutation(n_annotators)[: round(spammers * n_annotators)]] = True

    first = rng.integers(0, n_annotators, n_items)
    offsets = np.zeros((n_items, per_item), dtype=np.int64)  # column 0: the first annotator
    for j in range(1, per_item):
        d = rng.integers(1, n_annotators - j + 1, n_items)  # the d-th of the offsets left
        for taken in np.sort(offsets[:, 1:j], axis=1).T:  # ascending: each skip can reach the next
            d += d >= taken
        offsets[:, j] = d
    worker = ((first[:, None] + offsets) % n_annotators).ravel()
    item = np.repeat(np.arange(n_items), per_item)

    said = truth[item]
    wrong = (said + rng.integers(1, num_classes, len(item))) % num_classes
    noise = rng.integers(0, num_classes, len(item))
    right = rng.random(len(item)) < acc[worker]
    label = np.where(spam[worker], noise, np.where(right, said, wrong))
    return truth, item, worker, label


# --- one measurement, in its own process -------------------------------------------------


def _mb(rss_kb: int) -> float:
    return rss_kb / 1024  # Linux reports ru_maxrss in KiB


def measure(method: str, n_items: int, n_annotators: int, trace: bool) -> dict:
    """In this (fresh) process: build the crowd, then time `method`'s aggregation of it
    ('ours': labelbench's dawid_skene with its defaults; 'crowdkit': crowd-kit's
    DawidSkene(n_iter=100).fit_predict), with peak RSS before and after and accuracy vs the
    truth; with `trace`, tracemalloc's peak over a second fit."""
    truth, item, worker, label = simulate(n_items, n_annotators)
    if method == "ours":
        import scipy.sparse  # noqa: F401  (imported by the fit on first use: not the fit's time)

        from labelbench.labels.votes import Votes
        from labelbench.strategies.aggregate import dawid_skene

        votes = Votes(item, worker, label, n_items, n_annotators)

        def fit():
            result = dawid_skene(votes, K)
            return result.posteriors.argmax(axis=1), result.iterations, bool(result.converged)

    else:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene

        frame = pd.DataFrame({"task": item, "worker": worker, "label": label})

        def fit():
            model = DawidSkene(n_iter=CROWDKIT_ITERATIONS)
            labels = model.fit_predict(frame).reindex(range(n_items)).to_numpy()
            history = model.loss_history_  # one entry per EM iteration; stopped on < tol
            stopped = len(history) >= 2 and history[-1] - history[-2] < model.tol
            return labels, len(history), bool(stopped)

    del item, worker, label
    gc.collect()
    before = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    t = time.perf_counter()
    predicted, iterations, converged = fit()
    seconds = time.perf_counter() - t
    peak = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    out = {
        "method": method,
        "items": n_items,
        "annotators": n_annotators,
        "votes": n_items * PER_ITEM,
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "accuracy": float(np.mean(predicted == truth)),
        "iterations": iterations,
        "converged": converged,
    }
    if trace:
        import tracemalloc

        del predicted
        gc.collect()
        tracemalloc.start()
        fit()
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def measured(
    method: str, n_items: int, n_annotators: int, trace: bool, timeout: float | None
) -> dict:
    """`measure` in a fresh process of this script; {'error': ...} if it fails or times out."""
    cmd = [sys.executable, __file__, "--measure", method, str(n_items), str(n_annotators)]
    cmd += ["--trace"] if trace else []
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return {"error": f"gave up after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def medians(runs: list[dict]) -> dict:
    """The median of each figure over the repeats that succeeded; the deterministic ones
    (accuracy, iterations) as the first repeat's, tracemalloc's from the repeat that traced."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"], "repeats": len(runs)}
    out = dict(ok[0])
    for key in ("seconds", "rss_before_mb", "peak_rss_mb"):
        out[key] = statistics.median(r[key] for r in ok)
    out["seconds_each"] = [round(r["seconds"], 3) for r in ok]
    out["repeats"] = len(ok)
    if len(ok) < len(runs):
        out["failed_repeats"] = [r["error"] for r in runs if "error" in r]
    return out


# --- the whole run ------------------------------------------------------------------------


def whole_run(items: int, annotators: int, max_steps: int) -> dict:
    """One `labelbench-run` of strategy=dawid_skene on a crowd of `annotators` (3 votes per
    item, accuracies 0.7 ± 0.2, random confusions) labeling all of a synthetic pool of about
    `items` items (10 classes; the pool is 65% of the data, the rest validation and test),
    an MLP trained `max_steps` steps. Its wall time, peak RSS and the record's figures."""
    pool_share = 1 - 0.15 - 0.2  # conf/dataset/synthetic.yaml's val and test fractions
    n_samples = math.ceil(items / pool_share)
    with tempfile.TemporaryDirectory(prefix="lb-bench-crowd-") as results:
        cmd = [
            str(BIN / "labelbench-run"),
            "strategy=dawid_skene",
            "regime=crowd",
            f"regime.annotators={annotators}",
            "regime.per_item=3",
            "regime.spread=0.2",
            "budget=full",
            "dataset=synthetic",
            f"dataset.n_samples={n_samples}",
            "dataset.n_classes=10",
            "model=mlp",
            f"strategy.max_steps={max_steps}",
            f"strategy.eval_every={max(max_steps // 2, 1)}",
            "checkpoint.every_steps=0",
            "logger=none",
            f"paths.results_dir={results}",
        ]
        print("$", " ".join(cmd[1:-1]), file=sys.stderr, flush=True)
        with tempfile.TemporaryFile("w+") as log:
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t
            log.seek(0)
            tail = log.read()[-3000:]
        out = {
            "command": " ".join(cmd[1:-1]),
            "wall_s": wall,
            "exit": os.waitstatus_to_exitcode(status),
            "peak_rss_mb": usage.ru_maxrss / 1024,
        }
        records = list(Path(results, "runs").glob("*.json"))
        if not records:
            return {**out, "error": tail}
        record = json.loads(records[0].read_text())
    metrics, labels = record["metrics"], record["labels"]
    realised = labels.get("realised", {})
    return {
        **out,
        "status": record["status"],
        "error": record.get("error"),
        "items_labeled": labels.get("count"),
        "annotations": realised.get("annotations"),
        "majority_vote_acc": realised.get("majority_vote_acc"),
        "timings": record["timings"],
        "fit_info": {k[4:]: v for k, v in metrics.items() if k.startswith("fit/")},
        "test_acc": metrics.get("test/acc"),
    }


# --- the report ---------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def row(m: dict) -> str:
    if "error" in m:
        return f"— ({m['error'].splitlines()[0][:80]})"
    conv = "converged" if m["converged"] else "not converged"
    traced = m.get("tracemalloc_peak_mb")
    traced = f", tracemalloc {traced:.0f} MB" if traced is not None else ""
    return (
        f"acc {m['accuracy']:.4f}, {m['seconds']:.2f} s, {m['peak_rss_mb']:.0f} MB peak RSS"
        f" ({m['rss_before_mb']:.0f} before the fit{traced}); {m['iterations']} EM it., {conv}"
    )


def report(results: dict) -> tuple[list[dict], list[tuple[str, bool, str]]]:
    """Print the table and the verdicts; return `make bench`'s figure rows and the verdicts."""
    print(
        f"Simulated crowds: {K} classes, {PER_ITEM} votes per item, accuracies uniform in"
        f" {ACCURACY}, {SPAMMERS:.0%} spammers; medians of {results['repeats']} processes.\n"
    )
    print("| crowd | votes | ours (labelbench dawid_skene) | crowd-kit DawidSkene | ratios |")
    print("|---|---|---|---|---|")
    for name, items, annotators in CROWDS:
        if name not in results["crowds"]:
            continue
        ours, ck = results["crowds"][name]["ours"], results["crowds"][name]["crowdkit"]
        ratios = "—"
        if "error" not in ours and "error" not in ck:
            ratios = (
                f"time {ours['seconds'] / ck['seconds']:.2f}x,"
                f" RSS {ours['peak_rss_mb'] / ck['peak_rss_mb']:.2f}x,"
                f" acc {ours['accuracy'] - ck['accuracy']:+.4f}"
            )
        print(
            f"| {items:,} items x {annotators:,} annotators | {items * PER_ITEM:,} | {row(ours)}"
            f" | {row(ck)} | {ratios} |"
        )

    nan = {"seconds": math.nan, "peak_rss_mb": math.nan, "accuracy": math.nan}
    figures, verdicts = [], []
    mid = results["crowds"].get("20k")
    if mid:
        ours, ck = ({**nan, **mid[m]} for m in ("ours", "crowdkit"))
        gap = abs(ours["accuracy"] - ck["accuracy"])
        label = "crowd: Dawid-Skene, 20,000 items x 300 annotators,"
        verdicts += [
            (f"20k: time <= crowd-kit's ({ck['seconds']:.2f} s)",
             ours["seconds"] <= TIME_RATIO * ck["seconds"], f"{ours['seconds']:.2f} s"),
            (f"20k: peak RSS <= {MEMORY_RATIO} x crowd-kit's ({ck['peak_rss_mb']:.0f} MB)",
             ours["peak_rss_mb"] <= MEMORY_RATIO * ck["peak_rss_mb"],
             f"{ours['peak_rss_mb']:.0f} MB"),
            (f"20k: |accuracy - crowd-kit's| <= {ACC_GAP}", gap <= ACC_GAP,
             f"{ours['accuracy']:.4f} vs {ck['accuracy']:.4f}"),
        ]  # fmt: skip
        figures += [
            figure(f"{label} time (target: crowd-kit's)", TIME_RATIO * ck["seconds"],
                   ours["seconds"], "s", ours["peak_rss_mb"], crowdkit_s=ck["seconds"]),
            figure(f"{label} peak RSS (target: {MEMORY_RATIO} x crowd-kit's)",
                   MEMORY_RATIO * ck["peak_rss_mb"], ours["peak_rss_mb"], " MB",
                   ours["peak_rss_mb"], crowdkit_mb=ck["peak_rss_mb"]),
            figure(f"{label} |accuracy - crowd-kit's|", ACC_GAP, gap, "", ours["peak_rss_mb"],
                   accuracy=ours["accuracy"], crowdkit_accuracy=ck["accuracy"]),
        ]  # fmt: skip
    small = results["crowds"].get("2k")
    if small:
        ours = {**nan, **small["ours"]}
        figures.append(
            figure("crowd: Dawid-Skene, 2,000 items x 30 annotators, time", None,
                   ours["seconds"], "s", ours["peak_rss_mb"], accuracy=ours["accuracy"],
                   crowdkit_s=small["crowdkit"].get("seconds"))
        )  # fmt: skip
    large = results["crowds"].get("1M")
    if large:
        ours = {**nan, **large["ours"]}
        label = "crowd: Dawid-Skene, 1M votes (333,334 items x 10,000 annotators),"
        verdicts += [
            (f"1M votes: time <= {LARGE_S:g} s", ours["seconds"] <= LARGE_S,
             f"{ours['seconds']:.2f} s"),
            (f"1M votes: peak RSS <= {LARGE_MB:g} MB", ours["peak_rss_mb"] <= LARGE_MB,
             f"{ours['peak_rss_mb']:.0f} MB"),
        ]  # fmt: skip
        figures += [
            figure(f"{label} time", LARGE_S, ours["seconds"], "s", ours["peak_rss_mb"],
                   accuracy=ours["accuracy"], crowdkit_s=large["crowdkit"].get("seconds")),
            figure(f"{label} peak RSS", LARGE_MB, ours["peak_rss_mb"], " MB",
                   ours["peak_rss_mb"]),
        ]  # fmt: skip

    print("\n| target | verdict | ours |\n|---|---|---|")
    for target, ok, got in verdicts:
        print(f"| {target} | {verdict(ok)} | {got} |")

    run = results.get("run")
    if run:
        print(f"\nWhole run: {run['command']}")
        if run.get("status") != "ok":
            print(f"  FAILED (exit {run['exit']}): {run.get('error')}")
        else:
            t = run["timings"]
            info = run["fit_info"]
            print(
                f"  {run['wall_s']:.1f} s wall ({run['peak_rss_mb']:.0f} MB peak RSS);"
                f" record: load {t['load_s']:.1f} s, fit {t['fit_s']:.1f} s,"
                f" eval {t['eval_s']:.1f} s, total {t['total_s']:.1f} s\n"
                f"  {run['items_labeled']:,} items, {run['annotations']:,} annotations;"
                f" trained_on {info.get('trained_on', math.nan):,.0f}, em_iterations"
                f" {info.get('em_iterations', math.nan):.0f}, em_converged"
                f" {info.get('em_converged')}, majority vote acc {run['majority_vote_acc']:.4f},"
                f" test acc {run['test_acc']:.4f}"
            )
        figures.append(
            figure(f"crowd: whole dawid_skene run, {run.get('items_labeled') or 0:,} items",
                   None, run["wall_s"] if run.get("status") == "ok" else math.nan, "s",
                   run["peak_rss_mb"])
        )  # fmt: skip
    return figures, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="processes per measurement")
    parser.add_argument("--crowds", default=",".join(c for c, _, _ in CROWDS))
    parser.add_argument(
        "--skip-crowdkit-large", action="store_true", help="no crowd-kit on the 1M-vote crowd"
    )
    parser.add_argument("--crowdkit-timeout", type=float, default=180.0)
    parser.add_argument("--no-run", action="store_true", help="aggregation only, no whole run")
    parser.add_argument("--run-items", type=int, default=100_000)
    parser.add_argument("--run-annotators", type=int, default=1000)
    parser.add_argument("--run-steps", type=int, default=200, help="the whole run's max_steps")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench-crowd" / "crowd_scale.json"))
    parser.add_argument("--json", metavar="FILE", help="also write the figure rows to FILE")
    parser.add_argument("--measure", nargs=3, metavar=("METHOD", "ITEMS", "ANNOTATORS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        method, items, annotators = args.measure
        print(json.dumps(measure(method, int(items), int(annotators), args.trace)))
        return
    known = [c for c, _, _ in CROWDS]
    chosen = [c for c in args.crowds.split(",") if c]
    if not chosen or any(c not in known for c in chosen):
        parser.error(f"--crowds {args.crowds!r}: allowed: {', '.join(known)}")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: allowed: 1 or more")

    t_all = time.perf_counter()
    results: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": os.getloadavg(),  # others' work on these cores makes noise
        "repeats": args.repeats,
        "simulation": {
            "classes": K,
            "per_item": PER_ITEM,
            "accuracy": ACCURACY,
            "spammers": SPAMMERS,
            "seed": SEED,
        },
        "crowds": {},
    }
    for name, items, annotators in CROWDS:
        if name not in chosen:
            continue
        both = {}
        for method in ("ours", "crowdkit"):
            repeats, timeout = args.repeats, None
            if method == "crowdkit" and name == "1M":
                if args.skip_crowdkit_large:
                    both[method] = {"error": "skipped (--skip-crowdkit-large)"}
                    continue
                repeats, timeout = 1, args.crowdkit_timeout
            print(f"crowd {name}: {method} x{repeats} ...", file=sys.stderr, flush=True)
            # tracemalloc's fit in the first process; not crowd-kit's 1M one (minutes more)
            trace = timeout is None
            runs = [
                measured(method, items, annotators, trace and r == 0, timeout)
                for r in range(repeats)
            ]
            both[method] = medians(runs)
        results["crowds"][name] = both
    if not args.no_run:
        print(f"whole run, {args.run_items:,} items ...", file=sys.stderr, flush=True)
        results["run"] = whole_run(args.run_items, args.run_annotators, args.run_steps)
    results["script_s"] = time.perf_counter() - t_all
    results["load_average_after"] = os.getloadavg()

    figures, verdicts = report(results)
    results["verdicts"] = [{"target": t, "met": ok, "ours": got} for t, ok, got in verdicts]
    print(
        f"\nthe whole script took {results['script_s']:.0f} s; load average (1, 5, 15 min)"
        f" before {results['load_average_before']}, after {results['load_average_after']}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    failed = [m for c in results["crowds"].values() for m in c.values() if "error" in m]
    if any("skipped" not in m["error"] and "gave up" not in m["error"] for m in failed):
        sys.exit(1)  # a measurement crashed (a missed target is all.py's to judge)


if __name__ == "__main__":
    main()
