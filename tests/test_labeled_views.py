"""Every network strategy trains on views of its labeled batches: the weak view of
`strategy/augment=` (by_modality by default; `none` feeds the inputs as they are), and
image datasets declare whether a left-right flip keeps the label (`dataset.flip`).

That each kind of module really feeds `weak(x)` to its network is checked against an
independent loop in tests/test_bench.py (test_plain_loop_reproduces_the_lightning_fit):
the plain loop augments every labeled batch, so a module that did not would part ways."""

from __future__ import annotations

import pytest

from conftest import CONF_DIR, refusal_lines
from labelbench.config import run_key
from labelbench.run import build, run
from labelbench.strategies.active import Active
from labelbench.strategies.augment import ByModality, Identity
from labelbench.strategies.lightning import LightningStrategy

SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "budget.total=40", "logger=none"]
# Strategies whose settings need their own regime to build.
REGIMES = {
    "majority_vote": "regime=crowd", "soft_crowd": "regime=crowd", "dawid_skene": "regime=crowd",
    "lf_majority": "regime=weak", "label_model": "regime=weak",
    "proden": "regime=partial", "complementary": "regime=partial",
}  # fmt: skip
STRATEGIES = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))


def built(compose_fast, *overrides: str):
    cfg, _ = compose_fast(*overrides, fast=False)
    return build(cfg, run_key(cfg))


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_network_strategy_trains_on_the_weak_view_by_default(name, compose_fast):
    """...and a strategy that trains no network takes no views at all."""
    extra = [REGIMES[name]] if name in REGIMES else []
    cfg, _ = compose_fast(*SYNTHETIC, f"strategy={name}", *extra, fast=False)
    strategy = build(cfg, run_key(cfg)).strategy
    if isinstance(strategy, Active):  # its rounds fit the inner strategy, with its views
        strategy = strategy.inner
    if isinstance(strategy, LightningStrategy):
        assert isinstance(strategy.augment, ByModality)
    else:
        assert "augment" not in cfg.strategy, f"{name} trains no network but takes views"


@pytest.mark.parametrize(
    ("name", "group"),
    [("supervised", "strategy/augment"), ("active", "strategy/augment@strategy.inner.augment")],
)
def test_augment_none_feeds_the_inputs_as_they_are(name, group, compose_fast):
    off = built(compose_fast, *SYNTHETIC, f"strategy={name}", f"{group}=none").strategy
    assert isinstance(getattr(off, "inner", off).augment, Identity)


def test_supervised_learns_something_else_from_weak_views(compose_fast):
    short = ["strategy=supervised", "strategy.max_steps=60", "strategy.eval_every=20"]
    records = {}
    for views in ("by_modality", "none"):
        cfg, choices = compose_fast(*SYNTHETIC, *short, f"strategy/augment={views}", fast=False)
        record = run(cfg, choices)
        assert record.status == "ok", record.error
        records[views] = record
    assert records["by_modality"].run_key != records["none"].run_key
    assert records["by_modality"].metrics["test/nll"] != records["none"].metrics["test/nll"]


def test_datasets_declare_whether_flips_keep_the_label(compose_fast, tmp_path):
    digits = built(compose_fast, "dataset=digits", "logger=none").source
    assert digits.load(0).flip_invariant is False  # a mirrored digit is another symbol
    forced = built(compose_fast, "dataset=digits", "dataset.flip=true", "logger=none").source
    assert forced.load(0).flip_invariant is True
    cifar = built(compose_fast, "dataset=cifar10", f"dataset.name={tmp_path}", "logger=none")
    assert cifar.source.flip_invariant is True  # CIFAR-10: flips in FixMatch and USB
    hub = built(compose_fast, "dataset=hub", f"dataset.name={tmp_path}", "logger=none").source
    assert hub.flip_invariant is False  # a dataset of unknown content: say so to flip


def test_a_flip_that_is_not_a_boolean_is_one_line(tmp_path):
    (line,) = refusal_lines(tmp_path, "dataset=digits", "dataset.flip=yes", "logger=none")
    assert line == (
        "labelbench-run: error: dataset.flip='yes' must be true or false (whether a left-right"
        " mirror keeps an image's class)"
    )
