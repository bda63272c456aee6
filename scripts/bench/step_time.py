"""Seconds per optimizer step of the protocol presets' runs, so that a user knows the
compute a table costs before launching it (`labelbench reproduce PRESET --dry-run`).

Each distinct (method, backbone) of a preset trains twice on stand-in data of the real
dataset's shape (labelbench.data.standin: random CIFAR-sized images through the real hub
loader), for K1 and K2 optimizer steps; the difference of the two fit times over K2 - K1
steps is the cost of a step, set-up, data loading and the final evaluation cancelling out.
The batch, mu, augmentations, backbone and method are the preset's own. Writes
results/compute/step_seconds.csv (preset, strategy, model, device, seconds_per_step ...),
then prints each preset's total: the sum over its runs of steps x seconds per step.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/bench/step_time.py [--presets a,b]
        [--steps 2,5] [--trainer cpu|gpu]

On this project's machines there is no GPU: the figures are CPU figures and the table says
so in its device column. With a GPU, `--trainer gpu` measures there.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT
from labelbench import presets
from labelbench.provenance import git_info

# The presets measured, and those whose runs cost what another's do (the same backbone,
# batch and methods; only the number of classes or the pixels differ).
MEASURED = ("classic_ssl_cifar10", "noise_cifar10", "noise_cifar10n", "al_cifar10")
SAME_COST = {
    "classic_ssl_cifar100": "classic_ssl_cifar10",
    "classic_ssl_svhn": "classic_ssl_cifar10",
    "noise_cifar100": "noise_cifar10",
}
# Methods whose first steps are a cheaper warm-up: measured past it. DivideMix warms up
# with cross-entropy for 10 (CIFAR-100: 30) epochs, then trains both networks on MixMatch
# batches every step (its per-epoch division, a pass over the pool, is not counted).
PAST_WARMUP = {"dividemix": ["strategy.warmup_periods=0"]}
N_TRAIN = 1000  # stand-in items: more than one unlabeled batch (mu x 64 = 448)
COLUMNS = ("preset", "strategy", "model", "device", "seconds_per_step", "steps", "measured",
           "commit", "note")  # fmt: skip


def device_name(trainer: str) -> str:
    if trainer == "gpu":
        import torch

        return f"GPU: {torch.cuda.get_device_name(0)}"
    import torch

    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    return f"CPU: {model}, {torch.get_num_threads()} threads (not a GPU)"


def fit_seconds(overrides: list[str], steps: int, store: Path) -> float:
    """Fit time of the run cut to `steps` optimizer steps (one round for active learning)."""
    from labelbench.run import compose, run

    cut = [f"train.max_steps={steps}", "train.max_epochs=null", "checkpoint.every_steps=0",
           "logger=none", f"paths.results_dir={store}"]  # fmt: skip
    cfg, choices = compose([*overrides, *cut])
    record = run(cfg, choices)
    if record is None or record.status != "ok":
        raise SystemExit(f"step_time: {' '.join(overrides)} failed: {record and record.error}")
    return float(record.timings["fit_s"])


def cheap_labels(overrides: list[str]) -> list[str]:
    """Labels that fit the stand-in; the step's cost does not depend on them (labeled
    batches are full batches, drawn with replacement, or passes over the whole pool)."""
    from labelbench.run import compose

    cfg, _ = compose(overrides)
    if "total" not in cfg.budget:
        return []
    if "initial" in cfg.strategy:  # active learning: one round of 100 labels
        return ["budget.total=100", "strategy.initial=100", "strategy.query_size=10"]
    return ["budget.total=100"]


def measure(
    name: str, k1: int, k2: int, trainer: str, folder: Path, only: set[str] | None = None
) -> list[dict]:
    """One row per distinct (strategy, model) of the preset's runs (seed 0); `only`: the
    methods (names before any '[') to measure, all when None."""
    from labelbench.data.standin import standin_overrides

    seen: dict[tuple[str, str], list[str]] = {}
    for run in presets.plan(name, folder / "none", ["seed=0"]):
        seen.setdefault((run.names["strategy"], run.names["model"]), run.overrides)
    rows = []
    for (strategy, model), overrides in seen.items():
        if only is not None and strategy.split("[", 1)[0] not in only:
            continue
        base = standin_overrides(overrides, folder, n_train=N_TRAIN)
        base += [*cheap_labels(base), f"trainer={trainer}"]
        base += PAST_WARMUP.get(strategy.split("[", 1)[0], [])
        with tempfile.TemporaryDirectory() as store:
            t1 = fit_seconds(base, k1, Path(store) / "a")
            t2 = fit_seconds(base, k2, Path(store) / "b")
        per_step = max(t2 - t1, 0.0) / (k2 - k1)
        print(f"{name} {strategy} {model}: {per_step:.3f} s/step", file=sys.stderr, flush=True)
        rows.append({"preset": name, "strategy": strategy, "model": model,
                     "seconds_per_step": f"{per_step:.4g}", "steps": f"{k1},{k2}"})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=",".join(MEASURED))
    parser.add_argument("--steps", default="2,5", help="K1,K2: the two fits' optimizer steps")
    parser.add_argument("--trainer", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--out", default=str(presets.COMPUTE))
    parser.add_argument(
        "--only",
        default="",
        help="methods to measure (e.g. dividemix); the other rows of --out are kept",
    )
    args = parser.parse_args()
    k1, k2 = (int(k) for k in args.steps.split(","))
    if not 0 < k1 < k2:
        parser.error(f"--steps {args.steps}: want K1,K2 with 0 < K1 < K2")
    names = [n for n in args.presets.split(",") if n]
    for n in names:
        presets.get(n)
    git = git_info()
    common = {"device": device_name(args.trainer), "measured": datetime.date.today().isoformat(),
              "commit": (git["sha"] or "unknown")[:10], "note": ""}  # fmt: skip
    only = {m for m in args.only.split(",") if m} or None
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            rows += [
                {**common, **r} for r in measure(name, k1, k2, args.trainer, Path(folder), only)
            ]
    for alias, source in SAME_COST.items():
        if source in names:
            rows += [{**r, "preset": alias, "note": f"as {source}"} for r in rows
                     if r["preset"] == source]  # fmt: skip
    from labelbench.results.atomic import atomic_write

    if only is not None and Path(args.out).is_file():  # keep the rows not measured now
        with Path(args.out).open(newline="") as f:
            new = {(r["preset"], r["strategy"], r["model"]) for r in rows}
            kept = [
                r for r in csv.DictReader(f) if (r["preset"], r["strategy"], r["model"]) not in new
            ]
        rows = kept + rows
    lines = [",".join(COLUMNS)]
    for r in rows:
        lines.append(",".join(_cell(r.get(c, "")) for c in COLUMNS))
    atomic_write(Path(args.out), "\n".join(lines) + "\n")
    print(f"wrote {presets.shown(Path(args.out))}", file=sys.stderr)
    print_totals([*names, *(a for a, s in SAME_COST.items() if s in names)], Path(args.out))


def _cell(value: str) -> str:
    text = str(value)
    return f'"{text}"' if any(c in text for c in ',"\n') else text


def print_totals(names: list[str], table: Path) -> None:
    """Each preset's runs, steps and estimated compute, as docs/guide/reproducing.md shows them."""
    print(f"| preset | runs | optimizer steps | estimated compute ({presets.step_device(table)}) |")
    print("|---|---|---|---|")
    for name in names:
        runs = presets.plan(name, ROOT / "results" / "reproduce" / name)
        known = [r.seconds for r in runs if r.seconds is not None]
        steps = sum(r.steps or 0 for r in runs)
        missing = "" if len(known) == len(runs) else f" ({len(runs) - len(known)} runs unknown)"
        print(f"| {name} | {len(runs)} | {steps:,} | {presets.duration(sum(known))}{missing} |")


if __name__ == "__main__":
    main()
