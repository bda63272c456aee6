"""The embedding cache on topics with MiniLM, and what the embeddings are worth.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench/embed_cache.py [--repeats 3]
        [--results results/bench-embed] [--seeds 0,1,2] [--skip-quality]

1. Speed: `Topics(minilm).load(0)` in a fresh process with an empty cache (loads
   sentence-transformers and the model, encodes 400 sentences, writes the entry) vs the
   same in a fresh process on the filled cache (hashes the weights, reads the entry
   memory-mapped and checks its sha256). Each timed inside the process (interpreter and
   labelbench imports excluded; the whole process's wall time is printed too), medians
   over --repeats, each cold run on a new empty cache. Target: cached >= 20x faster.
2. Quality: dataset=topics (minilm) + model=linear, strategy=supervised, 10 labels per
   class, seeds 0-2; mean test accuracy. Target: well above chance (1/5): >= 0.6.

Exits 1 if a target is missed or a run failed. About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMED = (
    "import time, sys; from labelbench.data.text import Topics;"
    " from labelbench.data.encoders import SentenceEncoder;"
    " t = time.perf_counter(); task = Topics(SentenceEncoder(), cache_dir=sys.argv[1]).load(0);"
    " print(time.perf_counter() - t, task.x.shape)"
)
QUALITY = ["dataset=topics", "model=linear", "strategy=supervised", "budget=per_class",
           "budget.per_class=10", "logger=none"]  # fmt: skip
WANTED = ["topics", "linear", "supervised", "per_class"]


def timed_load(cache_dir: Path) -> tuple[float, float]:
    """(seconds inside the process, seconds for the whole process) of one topics load."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", TIMED, str(cache_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    return float(out.split()[0]), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", default=str(ROOT / "results" / "bench-embed"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    ok = True

    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            folder = Path(tmp) / f"cache{i}"
            cold.append(timed_load(folder))  # empty cache: encode and write
            warm.append(timed_load(folder))  # the entry it just wrote
    first = statistics.median(c[0] for c in cold)
    second = statistics.median(w[0] for w in warm)
    ratio = first / second
    print(
        f"topics + minilm, load(0): first run (encode) {first:.3f} s, second run (cache)"
        f" {second:.4f} s: {ratio:.0f}x faster (target >= 20x)"
    )
    print(
        f"  whole processes: {statistics.median(c[1] for c in cold):.2f} s vs"
        f" {statistics.median(w[1] for w in warm):.2f} s; medians of {args.repeats}"
    )
    ok &= ratio >= 20

    if not args.skip_quality:
        results = Path(args.results).resolve()
        cmd = [str(BIN / "labelbench-run"), "-m", *QUALITY, f"seed={args.seeds}",
               f"paths.results_dir={results}"]  # fmt: skip
        print("$", " ".join(cmd[1:]), flush=True)
        code = subprocess.run(
            cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True
        ).returncode
        seeds = {int(s) for s in args.seeds.split(",")}
        accs = {}
        for path in (results / "runs").glob("*.json"):
            rec = json.loads(path.read_text())
            c = rec["choices"]
            mine = [c["dataset"], c["model"], c["strategy"], c["budget"]] == WANTED
            if not mine or rec["config"]["budget"]["per_class"] != 10 or rec["seed"] not in seeds:
                continue
            if rec["status"] == "ok":
                accs[rec["seed"]] = rec["metrics"]["test/acc"]
        if code or set(accs) != seeds:
            print(f"runs failed or missing (exit {code}); seeds with records: {sorted(accs)}")
            ok = False
        else:
            mean = statistics.mean(accs.values())
            sd = statistics.stdev(accs.values()) if len(accs) > 1 else 0.0
            per_seed = ", ".join(f"{s}: {a:.3f}" for s, a in sorted(accs.items()))
            print(
                f"topics, minilm + linear, supervised, 10 labels/class: test acc {mean:.3f}"
                f" ± {sd:.3f} (seeds {per_seed}); chance 0.200 (target >= 0.6)"
            )
            ok &= mean >= 0.6
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
