"""The benchmark scripts' contracts: the reference presets are registered presets; the plain PyTorch loops of the fit-overhead benchmark reproduce every strategy's
Lightning fit exactly (an independent reimplementation of each loss, and the proof that
the benchmark compares the same work); bad arguments are refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, ROOT, run_script_here
from labelbench import presets

sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import fit_overhead
import reference


def test_references_are_presets_that_run_here():
    """`make reference` runs presets (their sweeps: labelbench.presets) on digits data."""
    assert set(reference.REFERENCES) <= set(presets.PRESETS)
    assert all("cifar" not in name for name in reference.REFERENCES)


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
