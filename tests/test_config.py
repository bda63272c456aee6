"""Every conf/ option composes and validates; the allowlist and run keys behave."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR
from labelbench.config import (
    ConfigError,
    check_int,
    check_number,
    check_run_fields,
    check_targets,
    run_key,
)
from labelbench.run import build

# conf/search/ holds the tuner's search spaces (labelbench/tune.py), not a config group
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "search")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]
# Options that need a value the repo cannot ship (a user's file) or hardware it lacks.
TEN_CLASS_NOISE = [[0.8 if j == i else 0.2 if j == (i + 1) % 10 else 0 for j in range(10)] for i in range(10)]  # fmt: skip
NEEDS = {
    ("dataset", "files"): ["dataset.path=tests/data/tiny.csv"],
    ("dataset", "folder"): ["dataset.root=tests/data"],
    ("dataset", "hub"): ["dataset.name=uoft-cs/cifar10", "dataset.input_column=img"],
    ("regime", "transition"): [f"regime.matrix={TEN_CLASS_NOISE}".replace(" ", "")],
    ("regime", "label_file"): ["regime.path=tests/data/tiny_noisy_labels.csv"],
    ("regime", "vote_file"): ["regime.path=tests/data/tiny_votes.csv"],
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


@pytest.mark.parametrize(
    ("value", "least", "message"),
    [
        (-1, 0, "n=-1 must be a non-negative integer"),
        (0, 1, "n=0 must be a positive integer"),
        (2, 3, "n=2 must be an integer >= 3"),
        (1.0, 0, "n=1.0 must be a non-negative integer"),
        (True, 0, "n=True must be a non-negative integer"),
        ("3", 0, "n=3 must be a non-negative integer"),
    ],
)
def test_check_int_refuses(value, least, message):
    with pytest.raises(ConfigError) as info:
        check_int("n", value, least)
    assert str(info.value) == message


def test_check_int_accepts_and_names_the_unit():
    assert check_int("n", 0) == 0 and check_int("n", 5, least=5) == 5
    with pytest.raises(ConfigError, match=r"^n=0 must be a positive integer \(optimizer steps\)$"):
        check_int("n", 0, least=1, unit="optimizer steps")


@pytest.mark.parametrize(
    ("interval", "inside", "outside"),
    [
        ("(0, 1]", [1e-9, 0.5, 1, 1.0], [0, -0.1, 1.0001, float("nan"), float("inf")]),
        ("[0, 1)", [0, 0.0, 0.999], [1, 1.0, -1e-9, float("nan")]),
        ("(0, 1)", [0.5], [0, 1]),
        ("[0, inf)", [0, 3, 1e300], [-1, float("inf"), float("nan")]),
    ],
)
def test_check_number_bounds(interval, inside, outside):
    for value in inside:
        assert check_number("x", value, interval) == float(value)
        assert isinstance(check_number("x", value, interval), float)
    for value in outside:
        with pytest.raises(ConfigError) as info:
            check_number("x", value, interval)
        expected = "must be a non-negative number" if interval == "[0, inf)" else "is outside"
        assert str(info.value).startswith(f"x={value} {expected}")
    for value in (True, "0.5", None):
        with pytest.raises(ConfigError):
            check_number("x", value, interval)


def test_strategy_variants_are_named_by_their_changed_nested_options(compose_fast):
    """A leaderboard must tell supervised with GCE from supervised with cross-entropy."""
    from labelbench.config import choices_from

    for overrides, name in [
        ((), "supervised"),
        (("strategy/loss=gce",), "supervised[loss=gce]"),
        (("strategy=fixmatch", "strategy/augment=none"), "fixmatch[augment=none]"),
        (("strategy=fixmatch",), "fixmatch"),
        (("strategy=label_smoothing", "strategy/loss=gce"), "label_smoothing[loss=gce]"),
    ]:
        cfg, choices = compose_fast(*overrides)
        assert choices_from(cfg, choices)["strategy"] == name
    # datasets by their encoder, against what the option's YAML (and those it extends) picks
    for overrides, name in [
        (("dataset=topics",), "topics"),
        (("dataset=ag_news",), "ag_news"),  # extends hub, overrides its encoder: the default
        (("dataset=cifar10", "dataset/encoder=resnet18"), "cifar10[encoder=resnet18]"),
    ]:
        cfg, choices = compose_fast(*overrides)
        assert choices_from(cfg, choices)["dataset"] == name


def test_run_folders_fit_any_file_system_name_limit():
    from labelbench.config import short_dirname

    assert short_dirname("seed=1,dataset/encoder=tokens") == "seed=1,dataset.encoder=tokens"
    long = ",".join(f"strategy.inner.setting_{i}=value_{i}" for i in range(40))
    short = short_dirname(long)
    assert len(short.encode()) <= 200 and short != short_dirname(long + "x")
    assert short.startswith(long[:100])
