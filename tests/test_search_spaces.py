"""Every conf/search/<strategy>.yaml is a search space that `labelbench tune` can sample for
that strategy: known distributions with valid bounds, keys of the strategy's composed config,
the untuned default inside each range, and values at the bounds that the strategy accepts."""

from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf

from conftest import CONF_DIR
from labelbench.run import compose

SEARCH_DIR = CONF_DIR / "search"
SPACES = sorted(SEARCH_DIR.glob("*.yaml"))
STRATEGIES = {p.stem for p in (CONF_DIR / "strategy").glob("*.yaml")}
REQUIRED = ("supervised", "fixmatch", "elr")  # the spaces the tuner's first studies need
ABSENT = object()
# Fields each distribution takes (required, optional), as in the format the tuner reads.
FIELDS = {
    "float": ({"low", "high"}, {"log"}),
    "int": ({"low", "high"}, {"step", "log"}),
    "categorical": ({"choices"}, set()),
}
SCALAR = (str, int, float, bool, type(None))


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The space as plain YAML reads it (what the tuner's loader sees, without OmegaConf's
    lenient number parsing: `1e-4` stays a string here and fails the type checks)."""
    space = yaml.safe_load(path.read_text())
    assert isinstance(space, dict) and space, f"{path.name}: not a non-empty mapping"
    return space


@cache
def defaults(strategy: str) -> DictConfig:
    """The run config an untuned `strategy=<name>` run composes (once per strategy)."""
    cfg, choices = compose([f"strategy={strategy}"])
    assert choices["strategy"] == strategy
    return cfg


def same(a: Any, b: Any) -> bool:
    """Equal, without letting True pass for 1 or 1 for True."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def check_spec(key: str, spec: Any) -> None:
    """One distribution: known type, exactly its fields, bounds the sampler can use."""
    assert isinstance(spec, dict), f"{key}: {spec!r} is not a mapping"
    kind = spec.get("type")
    assert kind in FIELDS, f"{key}: type {kind!r} is not one of {sorted(FIELDS)}"
    required, optional = FIELDS[kind]
    fields = set(spec) - {"type"}
    assert required <= fields, f"{key}: missing {sorted(required - fields)}"
    assert fields <= required | optional, f"{key}: unknown {sorted(fields - required - optional)}"
    if kind == "categorical":
        choices = spec["choices"]
        assert isinstance(choices, list) and len(choices) >= 2, f"{key}: needs 2+ choices"
        for c in choices:
            assert isinstance(c, SCALAR), f"{key}: choice {c!r} is not a scalar"
        for i, c in enumerate(choices):
            assert not any(same(c, d) for d in choices[:i]), f"{key}: choice {c!r} twice"
        return
    number = float if kind == "float" else int
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    for name, value in (("low", low), ("high", high)):
        # type(...) is, not isinstance: a bool is an int, and YAML reads `1e-4` as a string.
        assert type(value) is number, f"{key}: {name}={value!r} is not a YAML {number.__name__}"
        assert math.isfinite(value), f"{key}: {name}={value!r}"
    assert low <= high, f"{key}: low {low} > high {high}"
    assert type(log) is bool, f"{key}: log={log!r} is not true/false"
    if log:
        assert low > 0, f"{key}: log-uniform needs low > 0, got {low}"
    if kind == "int":
        step = spec.get("step", 1)
        assert type(step) is int and step >= 1, f"{key}: step={step!r}"
        assert not (log and step != 1), f"{key}: a log-uniform int range takes step 1 only"
        assert (high - low) % step == 0, f"{key}: high - low is not a multiple of step {step}"


def check_default(key: str, spec: dict[str, Any], value: Any) -> None:
    """The untuned run's value lies in the range (or among the choices)."""
    if spec["type"] == "categorical":
        assert any(same(value, c) for c in spec["choices"]), (
            f"{key}: default {value!r} is not among {spec['choices']}"
        )
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert ok, f"{key}: default {value!r} is not a number"
    assert spec["low"] <= value <= spec["high"], (
        f"{key}: default {value} is outside [{spec['low']}, {spec['high']}]"
    )
    if spec["type"] == "int":
        step = spec.get("step", 1)
        assert (value - spec["low"]) % step == 0, f"{key}: default {value} is off the step grid"


def at_bound(spec: dict[str, Any], upper: bool) -> Any:
    """The range's low (upper=False) or high end; a categorical's first or last choice."""
    if spec["type"] == "categorical":
        return spec["choices"][-1 if upper else 0]
    return spec["high" if upper else "low"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_spaces_exist(name):
    assert (SEARCH_DIR / f"{name}.yaml").is_file(), f"conf/search/{name}.yaml is missing"


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_space_is_valid_for_its_strategy(path):
    assert path.stem in STRATEGIES, f"{path.name}: no conf/strategy/{path.name}"
    cfg = defaults(path.stem)
    for key, spec in load(path).items():
        assert isinstance(key, str) and key.startswith(("strategy.", "model.")), (
            f"{path.name}: {key!r} is not a dotted strategy./model. key"
        )
        check_spec(key, spec)
        value = OmegaConf.select(cfg, key, default=ABSENT)
        assert value is not ABSENT, f"{path.name}: {key} is not in the strategy={path.stem} config"
        assert not OmegaConf.is_config(value), f"{path.name}: {key} is a node, not a value"
        check_default(key, spec, value)


@pytest.mark.parametrize("upper", [False, True], ids=["low", "high"])
@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_strategy_accepts_the_bounds(path, upper):
    """A trial at either end of every range builds: the strategy's own checks pass and the
    optimizer takes the rates, so no corner of the space is a wasted (failed) trial."""
    pytest.importorskip("torch")
    import torch
    from hydra.utils import instantiate

    cfg = copy.deepcopy(defaults(path.stem))  # the cached default stays untouched
    for key, spec in load(path).items():
        OmegaConf.update(cfg, key, at_bound(spec, upper), merge=False)
    strategy = instantiate(cfg.strategy)
    strategy.optimizer([torch.nn.Parameter(torch.zeros(1))])
