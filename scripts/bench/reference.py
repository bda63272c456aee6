"""Reference leaderboards: run each experiment preset's sweeps into a record store of its
own, then write its Markdown leaderboard to results/reference/<name>.md, headed by the date,
the commit and the exact commands that produced it. `make reference` runs them all; the
.md files are committed, so a change that moves a published number shows in review.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench/reference.py [--only noise_digits,...]
        [--out results/reference]

Records go to <out>/<name>/ (git-ignored) and the sweeps skip runs already recorded
there, so an interrupted run resumes and a second run only rewrites the tables. A preset
with a failed run or sweep keeps its previous table (nothing half-written) and the script
exits 1. About an hour on 2 CPU cores, most of it ssl_digits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchlib import ROOT
from labelbench import presets
from labelbench.results.atomic import atomic_write

# The presets whose tables run here on CPU and are committed as results/reference/<name>.md;
# their sweeps are labelbench.presets'. The CIFAR presets need a GPU cluster; their CPU
# twins (repro_*) have pages of their own under results/reproduce/ (`labelbench reproduce`).
REFERENCES = (
    "demo", "ssl_digits", "noise_digits", "crowd_digits", "weak_digits", "partial_digits",
    "active_digits", "mnist1d", "tune_digits",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(REFERENCES), help="presets, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "results" / "reference"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in REFERENCES]
    if unknown or not names:
        parser.error(f"--only {args.only!r}: allowed: {', '.join(REFERENCES)}")
    out = Path(args.out).resolve()

    failed = []
    for name in names:
        store = out / name
        t0 = time.perf_counter()
        codes = presets.run_sweeps(name, store)
        try:
            if any(codes):
                raise presets.PresetError(f"a sweep failed (exit codes {codes})")
            page = presets.page(name, store, title="Reference", made_by="make reference")
        except presets.PresetError as e:
            failed.append(name)
            print(f"{name}: {e}; its table is left as it was", file=sys.stderr)
            continue
        atomic_write(out / f"{name}.md", page)
        print(
            f"{name}: wrote {presets.shown(out / f'{name}.md')} ({time.perf_counter() - t0:.0f} s)"
        )
    if failed:
        sys.exit(f"reference: {', '.join(failed)} failed; see above")


if __name__ == "__main__":
    main()
