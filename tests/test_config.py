"""Every conf/ option composes and validates; the allowlist and run keys behave."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR
from labelbench.config import ConfigError, check_run_fields, check_targets, run_key
from labelbench.run import build

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]
# Options that need a value the repo cannot ship (a user's file) or hardware it lacks.
NEEDS = {
    ("dataset", "files"): ["dataset.path=tests/data/tiny.csv"],
}


def test_every_group_has_options():
    for group in (
        "dataset",
        "regime",
        "budget",
        "strategy",
        "model",
        "trainer",
        "logger",
        "launcher",
    ):
        assert any(g == group for g, _ in OPTIONS), f"conf/{group}/ has no options"


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_validates(group, option, compose_fast, tmp_path):
    cfg, choices = compose_fast(f"{group}={option}", *NEEDS.get((group, option), []), fast=False)
    assert choices[group] == option
    check_run_fields(cfg)
    assert len(run_key(cfg)) == 16
    if group == "trainer" and option == "gpu":
        pytest.importorskip("torch")
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(ConfigError, match="trainer"):
                build(cfg, run_key(cfg))
            return
    if group == "experiment":
        return  # an experiment is a sweep declaration; its runs are composed in test_sweep
    if group == "dataset" and option == "files":
        return  # built in test_bad_input / test_sources with real files
    build(cfg, run_key(cfg))


def test_run_key_ignores_paths_and_logger(compose_fast, tmp_path):
    a, _ = compose_fast("seed=3")
    b, _ = compose_fast("seed=3", "logger=csv")
    b.paths.results_dir = str(tmp_path / "elsewhere")
    assert run_key(a) == run_key(b)
    c, _ = compose_fast("seed=4")
    assert run_key(c) != run_key(a)
    d, _ = compose_fast("seed=3", "strategy.optimizer.lr=0.01")
    assert run_key(d) != run_key(a)


@pytest.mark.parametrize(
    "target",
    [
        "os.system",
        "builtins.eval",
        "subprocess.run",
        "torch.load",
        "torch.hub.load",
        "labelbenchx.evil",
    ],
)
def test_targets_outside_allowlist_are_refused(target):
    cfg = OmegaConf.create(
        {
            "strategy": {
                "_target_": "labelbench.strategies.logreg.LogReg",
                "nested": [{"_target_": target}],
            }
        }
    )
    with pytest.raises(
        ConfigError, match=r"strategy\.nested\[0\]\._target_=" + target.replace(".", r"\.")
    ):
        check_targets(cfg)


def test_allowlisted_targets_pass():
    check_targets(
        OmegaConf.create(
            {"a": {"_target_": "torch.optim.Adam"}, "b": {"_target_": "sklearn.svm.SVC"}}
        )
    )


def test_unexpected_component_argument_is_a_config_error(compose_fast):
    cfg, _ = compose_fast("+budget.bogus=1")
    with pytest.raises(ConfigError, match=r"budget: .*bogus"):
        build(cfg, run_key(cfg))
