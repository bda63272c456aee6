"""The benchmark scripts' contracts: the reference presets are registered presets; the plain PyTorch loops of the fit-overhead benchmark reproduce every strategy's
Lightning fit exactly (an independent reimplementation of each loss, and the proof that
the benchmark compares the same work); bad arguments are refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, ROOT, run_script_here
from labelbench import presets

sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import crowd_scale
import fit_overhead
import reference


def test_references_are_presets_that_run_here():
    """`make reference` runs presets (their sweeps: labelbench.presets) on digits data."""
    assert set(reference.REFERENCES) <= set(presets.PRESETS)
    assert all("cifar" not in name for name in reference.REFERENCES)


def test_crowd_benchmark_simulates_the_crowd_it_says():
    """crowd_scale's crowds: 3 distinct annotators an item, every set of them equally
    likely; a third of the annotators spammers at chance, the others in [0.5, 0.95]."""
    truth, item, worker, label = crowd_scale.simulate(60_000, 5, seed=1)
    assert np.array_equal(item, np.repeat(np.arange(60_000), 3))
    sets = np.sort(worker.reshape(-1, 3), axis=1)
    assert (np.diff(sets, axis=1) > 0).all()  # distinct annotators
    _, counts = np.unique(sets[:, 0] * 25 + sets[:, 1] * 5 + sets[:, 2], return_counts=True)
    assert len(counts) == 10 and counts.min() > 5_600 and counts.max() < 6_400  # 6,000 each
    truth, item, worker, label = crowd_scale.simulate(30_000, 30, seed=2)
    right = np.bincount(worker, weights=label == truth[item], minlength=30)
    accuracy = right / np.bincount(worker, minlength=30)
    spam = accuracy < 0.3
    assert spam.sum() == 10 and np.allclose(accuracy[spam], 0.1, atol=0.05)
    assert accuracy[~spam].min() > 0.45 and accuracy[~spam].max() < 1.0


@pytest.mark.parametrize("strategy", list(fit_overhead.SETTINGS))
def test_plain_loop_reproduces_the_lightning_fit(strategy, tmp_path):
    # Step for step: a few steps show it as well as the benchmark's own max_steps (the
    # per-step losses, schedules and validations are the same code at any length). WRN-28-2
    # and MiniLM fine-tuning take seconds a step here: fewest; every fit validated twice or more.
    if "wrn28_2" in strategy:
        steps, every = 2, 1
    elif "hf-text" in strategy:
        steps, every = 4, 2
    else:
        steps, every = 60, 20
    extra = [f"{fit_overhead.training_key(strategy)}.eval_every={every}"]  # several validations
    if "wrn28_2" in strategy:
        extra.append("strategy.mu=1")  # 8 unlabeled a step, not 56: the same loop, 5x cheaper
    if strategy == "cl_filter":
        extra.append("strategy.cv_max_steps=40")  # its fold networks
    case = fit_overhead.Case(strategy, "none", steps, tmp_path, extra=tuple(extra))
    lightning, plain = case.fit(plain=False), case.fit(plain=True)
    assert lightning["steps"] == plain["steps"] > 0
    assert lightning["best_val/acc"] == pytest.approx(plain["best_val/acc"], abs=1e-6)


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("reference.py", ["--only", "nope"], "--only 'nope': allowed: demo,"),
        ("fit_overhead.py", ["--strategies", "nope"], "--strategies: nope not in: supervised,"),
        ("all.py", ["--only", "nope"], "--only 'nope': allowed: fit, demo"),
    ],
)
def test_bad_arguments_are_one_line(script, args, message):
    """reference.py (light) as a real process; the others, which import torch first, as
    __main__ in this process (conftest.run_script_here)."""
    path = ROOT / "scripts" / "bench" / script
    if script == "reference.py":
        proc = subprocess.run(
            [str(BIN / "python"), str(path), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    else:
        proc = run_script_here(path, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not Path(ROOT / "results" / "reference" / "nope.md").exists()
