"""The benchmark scripts' contracts: every experiment preset and reference sweep composes and
builds; the plain PyTorch loops of the fit-overhead benchmark reproduce every strategy's
Lightning fit exactly (an independent reimplementation of each loss, and the proof that
the benchmark compares the same work); bad arguments are refused in one line."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import BIN, CONF_DIR, ROOT
from labelbench.run import build, compose, run_key

sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import fit_overhead
import reference


def expand(overrides: list[str]) -> list[list[str]]:
    """Every combination of a command line's comma sweeps (seeds left at their default)."""
    choices = [
        [f"{key}={v}" for v in value.split(",")]
        for key, value in (o.split("=", 1) for o in overrides)
        if key != "seed"
    ]
    return [list(c) for c in itertools.product(*choices)]


def preset_runs(sweep: tuple[str, ...]) -> list[list[str]]:
    """The runs of `labelbench-run -m <sweep>`: its experiment's sweeper params, less the
    keys the command line sets, and the command line."""
    experiment = next(o.split("=", 1)[1] for o in sweep if o.startswith("experiment="))
    params = OmegaConf.load(CONF_DIR / "experiment" / f"{experiment}.yaml").hydra.sweeper.params
    keys = {o.split("=", 1)[0] for o in sweep}
    swept = [f"{k}={v}" for k, v in params.items() if k not in keys]
    return expand([*sweep, *swept])


SWEEPS = [(name, s) for name, ref in reference.REFERENCES.items() for s in ref.sweeps]


@pytest.mark.parametrize(("name", "sweep"), SWEEPS, ids=[f"{n}:{' '.join(s)}" for n, s in SWEEPS])
def test_reference_sweeps_compose_and_build(name, sweep, tmp_path):
    runs = preset_runs(sweep)
    assert runs, f"{name}: an empty sweep"
    for overrides in runs:
        cfg, choices = compose([*overrides, "logger=none", f"paths.results_dir={tmp_path}"])
        build(cfg, run_key(cfg))  # instantiates every component: a typo fails here
        assert choices["experiment"] == overrides[0].split("=", 1)[1]


def test_every_preset_has_a_reference():
    presets = {p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")}
    assert presets == set(reference.REFERENCES)


@pytest.mark.parametrize("strategy", list(fit_overhead.SETTINGS))
def test_plain_loop_reproduces_the_lightning_fit(strategy, tmp_path):
    steps, every = (4, 2) if "wrn28_2" in strategy else (120, 40)  # WRN: seconds a step here
    extra = [f"{fit_overhead.training_key(strategy)}.eval_every={every}"]  # several validations
    if strategy == "cl_filter":
        extra.append("strategy.cv_max_steps=80")  # its fold networks
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
    proc = subprocess.run(
        [str(BIN / "python"), str(ROOT / "scripts" / "bench" / script), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not Path(ROOT / "results" / "reference" / "nope.md").exists()
