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
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import BIN, ROOT, git_commit, sweep
from labelbench.results.atomic import atomic_write


@dataclass(frozen=True)
class Reference:
    """One published table: what it shows, the sweeps behind it (`labelbench-run -m`
    arguments) and the `labelbench leaderboard` options that render it."""

    about: str
    sweeps: tuple[tuple[str, ...], ...]
    board: tuple[str, ...] = ()


REFERENCES = {
    "demo": Reference(
        "The demo suite: digits, clean labels, class-balanced budgets of 20, 50, 100 labels "
        "and the whole pool; supervised MLP, logistic regression, label propagation, "
        "self-training, label spreading, kNN.",
        (("experiment=demo", "budget=total", "budget.total=20,50,100"),
         ("experiment=demo", "budget=full")),
    ),
    "ssl_digits": Reference(
        "Semi-supervised learning on digits: every SSL strategy and the classical peers "
        "against supervised, small CNN and MLP, 20 and 40 labels and the whole pool.",
        (("experiment=ssl_digits", "budget=total", "budget.total=20,40"),
         ("experiment=ssl_digits", "budget=full")),
    ),
    "noise_digits": Reference(
        "Noisy labels on digits: 40% symmetric noise on pool and validation, the whole pool; "
        "noise-robust strategies and losses against cross-entropy (supervised); "
        "distill[oracle] is a marked upper bound (its teacher learns the true labels).",
        (("experiment=noise_digits",),
         ("experiment=noise_digits", "strategy=supervised", "strategy/loss=gce,sce,mae,bootstrap"),
         ("experiment=noise_digits", "strategy=distill", "strategy.teacher_labels=oracle"),
         ("experiment=noise_digits", "model=cnn_small", "strategy=supervised,coteaching,elr"),
         ("experiment=noise_digits", "model=cnn_small", "strategy=supervised", "strategy/loss=gce,sce")),
    ),
    "crowd_digits": Reference(
        "Crowd labels on digits: 3 annotators of 70% accuracy, 3 votes per item; 300 "
        "annotations (100 items) and 3507 (the whole pool). Baseline: majority vote.",
        (("experiment=crowd_digits",),),
        ("--baseline", "majority_vote"),
    ),
    "weak_digits": Reference(
        "Weak supervision on digits: 20 prototype labeling functions voting on the whole "
        "pool. Baseline: the labeling functions' majority vote.",
        (("experiment=weak_digits",),),
        ("--baseline", "lf_majority"),
    ),
    "partial_digits": Reference(
        "Candidate sets on digits: partial labels (2 distractors) and complementary labels, "
        "the whole pool. Baseline: PRODEN.",
        (("experiment=partial_digits",),),
        ("--baseline", "proden"),
    ),
    "active_digits": Reference(
        "Active learning on digits: every query strategy on supervised training (MLP), 10 "
        "initial labels, +10 per round to 100; AUBC is the area under each run's per-round "
        "curve. `active` is margin sampling. Baseline: random queries.",
        (("experiment=active_digits",),),
        ("--baseline", "active[query=random]"),
    ),
    "mnist1d": Reference(
        "MNIST-1D: supervised training on the whole pool (3400 labels), the 1-D CNN and the "
        "MLP, tested on the package's own 1000 test signals.",
        (("experiment=mnist1d",),),
        ("--rows", "model", "--cols", "regime,budget", "--baseline", ""),
    ),
}  # fmt: skip

COMMON = ("logger=none",)  # the record store is the source of truth; no CSV logs


def render(name: str, ref: Reference, store: Path, commands: list[str]) -> str | None:
    """The leaderboard page, or None (with the reason on stderr) if it cannot be made."""
    board = [str(BIN / "labelbench"), "leaderboard", relative(store), "--format", "md", *ref.board]
    proc = subprocess.run(board, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        print(f"{name}: leaderboard failed: {proc.stderr.strip()}", file=sys.stderr)
        return None
    shown = [*commands, shlex.join(["labelbench", *board[1:]])]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (
        f"# Reference: {name}\n\n{ref.about}\n\n"
        f"Produced on {datetime.date.today().isoformat()} at commit {git_commit()} by "
        f"`make reference` ({os.cpu_count()} CPU cores, {platform.python_implementation()} "
        f"{platform.python_version()}, OMP_NUM_THREADS={threads}), that is:\n\n"
        "```bash\n" + "\n".join(shown) + "\n```\n\n" + proc.stdout
    )


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


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
        ref, store = REFERENCES[name], out / name
        t0 = time.perf_counter()
        codes = [sweep([*s, *COMMON], store) for s in ref.sweeps]
        commands = [
            shlex.join(
                ["labelbench-run", "-m", *s, *COMMON, f"paths.results_dir={relative(store)}"]
            )
            for s in ref.sweeps
        ]
        page = None if any(codes) else render(name, ref, store, commands)
        if page is None:
            failed.append(name)
            print(f"{name}: a sweep failed (exit codes {codes}); its table is left as it was",
                  file=sys.stderr)  # fmt: skip
            continue
        atomic_write(out / f"{name}.md", page)
        print(f"{name}: wrote {relative(out / f'{name}.md')} ({time.perf_counter() - t0:.0f} s)")
    if failed:
        sys.exit(f"reference: {', '.join(failed)} failed; see above")


if __name__ == "__main__":
    main()
