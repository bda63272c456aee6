"""The classic SSL presets (issue 19): USB's classic-CV protocol for CIFAR-10, CIFAR-100 and
SVHN. Their runs, as the registry (labelbench.presets) expands the preset's sweeps, make USB's
table once (9 strategies x budgets x seeds); every run composed (seed 0) holds USB's settings,
shared and per algorithm (the tables below, from the source); and every published row names
a cell that the sweeps run. No dataset is built here."""

from __future__ import annotations

import collections
import csv
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from labelbench import presets
from labelbench.config import choices_from
from labelbench.overrides import Composer, check_run
from labelbench.results.published import load_published
from labelbench.run import compose

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "published"
STEPS = 2**20  # USB num_train_iter 1048576 (FixMatch: 2^20)

# -- the source's values ---------------------------------------------------------------------
# USB config/classic_cv/<alg>/<alg>_<dataset>_<labels>_0.yaml (microsoft/Semi-supervised-learning),
# semilearn/core/utils/build.py (get_optimizer, get_cosine_schedule_with_warmup) and
# results/README.md; shared by every algorithm of a dataset.
SHARED: dict[str, Any] = {
    "optimizer": "torch.optim.SGD",  # optim: SGD
    "lr": 0.03,  # lr: 0.03
    "momentum": 0.9,  # momentum: 0.9
    "nesterov": True,  # get_optimizer(nesterov=True)
    "no_decay_norm_bias": True,  # get_optimizer(bn_wd_skip=True)
    "schedule": "labelbench.strategies.schedules.Cosine",  # get_cosine_schedule_with_warmup
    "cycles": 7 / 16,  # num_cycles 7/16
    "final": 0.0,
    "warmup": 0,  # num_warmup_iter 0
    "max_steps": STEPS,  # num_train_iter
    "batch_size": 64,  # batch_size
    "ema_decay": 0.999,  # ema_m
    "grad_clip": None,  # clip 0.0
    "labeled_sampling": "with_replacement",  # full labeled batches however few the labels
    "randaugment_n": 3,  # cv_datasets/*.py RandAugment(3, 5)
    "eval_every": 5120,  # num_eval_iter
    "seeds": (0, 1, 2),  # results/README.md: 3 random seeds per setting
    "regime": "labelbench.labels.regime.Clean",
    "budget": "labelbench.labels.budget.Total",
    "balanced": True,  # split_ssl_data: num_labels / num_classes per class
}
PRESETS: dict[str, dict[str, Any]] = {
    "classic_ssl_cifar10": {
        "dataset": "cifar10",
        "hub": ("uoft-cs/cifar10", None, "train", "test", "img", "label"),
        "flip": True,  # cv_datasets/cifar.py RandomHorizontalFlip
        "model": "wrn28_2",  # net: wrn_28_2
        "widen_factor": 2,
        "weight_decay": 5e-4,  # weight_decay: 0.0005
        "budgets": (40, 250, 4000),
    },
    "classic_ssl_cifar100": {
        "dataset": "cifar100",
        "hub": ("uoft-cs/cifar100", None, "train", "test", "img", "fine_label"),
        "flip": True,
        "model": "wrn28_2",  # the published runs: wrn_28_2 (issues #75, #142; not FixMatch's 28-8)
        "widen_factor": 2,
        "weight_decay": 1e-3,  # weight_decay: 0.001
        "budgets": (400, 2500, 10000),
    },
    "classic_ssl_svhn": {
        "dataset": "svhn",
        "hub": ("ufldl-stanford/svhn", "cropped_digits", "train+extra", "test", "image", "label"),
        "flip": True,  # cv_datasets/svhn.py flips SVHN too (FixMatch does not)
        "model": "wrn28_2",
        "widen_factor": 2,
        "weight_decay": 5e-4,
        "budgets": (40, 250, 1000),
    },
}
STRATEGIES = (
    "supervised", "pseudo_label", "mean_teacher", "fixmatch", "flexmatch", "freematch",
    "softmatch", "uda", "mixmatch",
)  # fmt: skip
# Per-algorithm values of USB's classic configs (*_cifar10_40_0.yaml as stored at cc260087 /
# 69a2afc8, the current file layout; older layouts differ: mixmatch ulb_loss_ratio 75 at
# 32d207a2, softmatch without uratio at 69a2afc8), in labelbench's key names.
ALGORITHM: dict[str, dict[str, Any]] = {
    "supervised": {},
    "pseudo_label": {  # p_cutoff 0.95, ulb_loss_ratio 1.0, uratio 1, unsup_warm_up 0.4
        "mu": 1, "threshold": 0.95, "unlabeled_weight": 1.0, "include_labeled": True,
        "warmup_steps": 0, "rampup_steps": round(0.4 * STEPS),
    },
    "mean_teacher": {  # uratio 1, ulb_loss_ratio 50, unsup_warm_up 0.4, ema_m 0.999
        "mu": 1, "unlabeled_weight": 50.0, "include_labeled": True, "rampup_steps": 0.4,
        "ramp": "linear",
    },
    "fixmatch": {  # p_cutoff 0.95, ulb_loss_ratio 1.0, uratio 7
        "mu": 7, "threshold": 0.95, "unlabeled_weight": 1.0, "include_labeled": True,
        "warmup_steps": 0,
    },
    "flexmatch": {  # p_cutoff 0.95, thresh_warmup True, ulb_loss_ratio 1.0, uratio 7
        "mu": 7, "threshold": 0.95, "threshold_warmup": True, "unlabeled_weight": 1.0,
        "include_labeled": True, "warmup_steps": 0,
    },
    "freematch": {  # ema_p 0.999, ent_loss_ratio 0.001, uratio 7, use_quantile False
        "mu": 7, "unlabeled_weight": 1.0, "ema_p": 0.999, "fairness_weight": 0.001,
        "use_quantile": False, "clip_thresh": False, "include_labeled": True, "warmup_steps": 0,
    },
    "softmatch": {  # uratio 7 (config @ 9288db0d), ema_p 0.999, n_sigma 2, dist_align True
        "mu": 7, "unlabeled_weight": 1.0, "ema_p": 0.999, "n_sigma": 2.0, "dist_align": True,
        "include_labeled": True, "warmup_steps": 0,
    },
    "uda": {  # T 0.4, p_cutoff 0.8, ulb_loss_ratio 1.0, uratio 7, tsa_schedule none
        "mu": 7, "threshold": 0.8, "temperature": 0.4, "unlabeled_weight": 1.0,
        "tsa_schedule": "none", "include_labeled": True, "warmup_steps": 0,
    },
    "mixmatch": {  # uratio 1, mixup_alpha 0.5, T 0.5, ulb_loss_ratio 100, unsup_warm_up 0.4
        "mu": 1, "mixup_alpha": 0.5, "temperature": 0.5, "unlabeled_weight": 100.0,
        "rampup_steps": 0.4, "augmentations": 2, "include_labeled": True,
    },
}  # fmt: skip
# Where another dataset's configs say otherwise: (algorithm, preset) -> values.
ALGORITHM_BY_DATASET: dict[tuple[str, str], dict[str, Any]] = {
    ("freematch", "classic_ssl_svhn"): {"clip_thresh": True},  # freematch_svhn_*_0.yaml
    ("mixmatch", "classic_ssl_cifar100"): {"unlabeled_weight": 150.0},  # mixmatch_cifar100_*
}
# labelbench's strategy defaults (conf/strategy/<name>.yaml, composed without the preset's
# sweeps) where they differ from USB's. A preset's grid holds only the strategies that
# differ nowhere on its dataset; the registry's further sweeps (presets._usb_classic) run
# the others with USB's values, and results/published/README.md lists each of these.
DIFFERS: dict[tuple[str, str], Any] = {
    ("pseudo_label", "mu"): 7,
    ("pseudo_label", "warmup_steps"): 200,
    ("pseudo_label", "rampup_steps"): 400,
    ("flexmatch", "warmup_steps"): 200,
    ("freematch", "fairness_weight"): 0.01,
    ("freematch", "clip_thresh"): False,
    ("mixmatch", "unlabeled_weight"): 100.0,
}


def usb_value(strategy: str, preset: str, key: str) -> Any:
    """USB's value of `key` for this algorithm on this preset's dataset."""
    return ALGORITHM_BY_DATASET.get((strategy, preset), {}).get(key, ALGORITHM[strategy][key])


# -- composing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One seed-0 run of a preset's sweeps: its overrides, config, group choices and cell."""

    overrides: tuple[str, ...]
    cfg: DictConfig
    choices: dict[str, str]
    strategy: str  # the strategy= choice
    budget: int  # budget.total

    def cell(self) -> tuple[str, ...]:
        """(dataset, model, regime, budget, strategy) as the leaderboard shows the cell."""
        names = choices_from(self.cfg, self.choices)
        regime = instantiate(self.cfg.regime).label()
        label = instantiate(self.cfg.budget).label()
        return names["dataset"], names["model"], regime, label, names["strategy"]


def value_of(overrides: Sequence[str], key: str) -> str:
    """The one value a run's override list gives `key`."""
    (value,) = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    return value


@functools.cache
def runs(preset: str) -> tuple[Run, ...]:
    """Every seed-0 run of the preset's sweeps, composed as `labelbench reproduce` plans them
    (one Hydra initialisation, each override list once)."""
    out = []
    with Composer([]) as composer:
        for overrides in presets.expand(preset, ["seed=0"]):
            composed = check_run(composer, overrides)
            choices = {k: v for k, v in composed.choices.items() if v}
            strategy, budget = value_of(overrides, "strategy"), value_of(overrides, "budget.total")
            out.append(Run(tuple(overrides), composed.cfg, choices, strategy, int(budget)))
    return tuple(out)


def run_of(preset: str, strategy: str) -> Run:
    """The preset's seed-0 run of `strategy` at its first budget."""
    (run,) = [
        r
        for r in runs(preset)
        if r.strategy == strategy and r.budget == PRESETS[preset]["budgets"][0]
    ]
    return run


@functools.cache
def defaults(overrides: tuple[str, ...]) -> DictConfig:
    """A strategy's settings as labelbench composes them without any preset sweep."""
    return compose(list(overrides))[0].strategy


def default(strategy: str) -> DictConfig:
    return defaults((f"strategy={strategy}",))


def defaults_are_usbs(strategy: str, preset: str) -> bool:
    s = default(strategy)
    return all(close(s[k], usb_value(strategy, preset, k)) for k in ALGORITHM[strategy])


def close(have: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(have, int | float) and not isinstance(have, bool):
        return math.isclose(have, want, rel_tol=1e-12)
    return type(have) is type(want) and have == want


# -- the grid and the sweeps -------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_the_grid_holds_the_strategies_whose_defaults_are_usbs(preset):
    """strategy x budget.total x seed: the strategies that run on their labelbench defaults,
    every budget and seed of USB's table for this dataset."""
    grid = {k: v.split(",") for k, v in presets.grid_params(preset).items()}
    assert set(grid) == {"strategy", "budget.total", "seed"}
    assert grid["strategy"] == [s for s in STRATEGIES if defaults_are_usbs(s, preset)]
    assert [int(b) for b in grid["budget.total"]] == list(PRESETS[preset]["budgets"])
    assert tuple(int(s) for s in grid["seed"]) == SHARED["seeds"]


@pytest.mark.parametrize("preset", PRESETS)
def test_the_sweeps_run_the_source_table_once(preset):
    """The union of the registry's sweeps is USB's table: every strategy x budget x seed,
    each exactly once."""
    sweeps = presets.PRESETS[preset].sweeps
    assert sweeps[0] == (), "the first sweep should run the YAML's grid alone"
    done = collections.Counter(
        (value_of(r, "strategy"), int(value_of(r, "budget.total")), int(value_of(r, "seed")))
        for r in presets.expand(preset)
    )
    table = itertools.product(STRATEGIES, PRESETS[preset]["budgets"], SHARED["seeds"])
    assert set(done) == set(table)
    assert set(done.values()) == {1}, "a cell is run by two sweeps"


# -- the settings ------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("preset", PRESETS)
def test_composed_settings_are_usbs(preset, strategy):
    source = PRESETS[preset]
    budget = source["budgets"][0]
    run = run_of(preset, strategy)
    cfg, choices = run.cfg, run.choices
    s, want = cfg.strategy, SHARED
    opt = s.optimizer
    got = {
        "optimizer": opt._target_,
        "lr": opt.lr,
        "momentum": opt.momentum,
        "nesterov": opt.nesterov,
        "weight_decay": opt.weight_decay,
        "no_decay_norm_bias": s.no_decay_norm_bias,
        "schedule": s.schedule._target_,
        "cycles": s.schedule.cycles,
        "final": s.schedule.final,
        "warmup": s.schedule.warmup,
        "max_steps": s.max_steps,
        "max_epochs": s.max_epochs,
        "batch_size": s.batch_size,
        "ema_decay": s.ema_decay,
        "grad_clip": s.grad_clip,
        "labeled_sampling": s.labeled_sampling,
        "randaugment_n": s.augment.image.n,
        "eval_every": s.eval_every,
        "selection": s.selection,
        "patience": s.patience,
        "val_fraction": cfg.dataset.val_fraction,
        "regime": cfg.regime._target_,
        "budget": cfg.budget._target_,
        "balanced": cfg.budget.balanced,
        "total": cfg.budget.total,
        "model": choices["model"],
        "model_target": cfg.model._target_,
        "depth": cfg.model.depth,
        "widen_factor": cfg.model.widen_factor,
        "dataset": choices["dataset"],
        "hub": tuple(
            cfg.dataset[k]
            for k in ("name", "config", "split", "test_split", "input_column", "label_column")
        ),
        "flip": cfg.dataset.flip,
    }
    expected = {
        **{k: want[k] for k in want if k in got},
        "weight_decay": source["weight_decay"],
        "max_epochs": None,  # the length is in steps
        "selection": "last",  # no test-set selection: no validation split, last weights
        "patience": 0,
        "val_fraction": 0,
        "total": budget,
        "model": source["model"],
        "model_target": "labelbench.models.wrn.WideResNet",
        "depth": 28,
        "widen_factor": source["widen_factor"],
        "dataset": source["dataset"],
        "hub": source["hub"],
        "flip": source["flip"],
    }
    wrong = {k: (got[k], expected[k]) for k in expected if not close(got[k], expected[k])}
    assert not wrong, f"{preset} strategy={strategy}: (composed, source) {wrong}"
    assert choices["strategy/schedule"] == "cosine"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_run_has_usbs_per_algorithm_settings(preset):
    """Keys only some strategies have: in every run of the preset's sweeps (seed 0, every
    budget), USB's value exactly, whether from the strategy's YAML or a sweep's override."""
    for run in runs(preset):
        s = run.cfg.strategy
        for key in ALGORITHM[run.strategy]:
            want = usb_value(run.strategy, preset, key)
            assert key in s, f"{run.strategy} has no key {key}"
            assert close(s[key], want), (
                f"{' '.join(run.overrides)}: {key}={s[key]!r}; want {want!r}"
            )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_defaults_are_usbs_or_listed(strategy):
    """labelbench's own defaults of the per-algorithm keys (no preset sweep) are USB's on
    every dataset, or the value DIFFERS lists."""
    s = default(strategy)
    for key in ALGORITHM[strategy]:
        for preset in PRESETS:
            want = DIFFERS.get((strategy, key), usb_value(strategy, preset, key))
            assert key in s, f"{strategy} has no key {key}"
            assert close(s[key], want), f"{strategy}.{key}={s[key]!r}; want {want!r} ({preset})"


def test_listed_differences_are_real():
    """Each listed difference differs from USB somewhere, and names a key the table knows."""
    for (strategy, key), ours in DIFFERS.items():
        assert key in ALGORITHM[strategy], f"{strategy}.{key} is not in USB's table"
        usb = {usb_value(strategy, p, key) for p in PRESETS}
        assert any(not close(ours, v) for v in usb), f"{strategy}.{key}={ours!r} equals USB's"


def test_readme_lists_every_difference():
    text = (PUBLISHED / "README.md").read_text(encoding="utf-8")
    section = text.split("## classic_ssl", 1)[1].split("\n## ", 1)[0]
    listed = section.split("**Per-algorithm settings**", 1)[1].split("\n- **", 1)[0]
    for strategy, _ in DIFFERS:
        assert strategy in listed
    assert "labelbench/presets.py" in listed  # where the sweeps that set USB's values are
    assert "selection: last" in section and "wrn28_2" in section and "train+extra" in section


# -- the published rows ------------------------------------------------------------------------
COLUMNS = [
    "dataset", "model", "regime", "budget", "strategy", "metric",
    "value", "spread", "seeds", "reported", "source",
]  # fmt: skip


@pytest.mark.parametrize("preset", PRESETS)
def test_every_published_row_is_a_cell_the_preset_runs(preset):
    """Each row names (dataset, model, regime, budget, strategy) as the composed runs show
    it, one row per cell of the sweeps, and parses: numbers in range, spread >= 0, a source."""
    path = PUBLISHED / f"{preset}.csv"
    with path.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    cells = [run.cell() for run in runs(preset)]
    assert len(set(cells)) == len(cells) == len(STRATEGIES) * len(PRESETS[preset]["budgets"])
    seen = []
    for line, row in enumerate(rows, start=2):
        key = tuple(row[k] for k in ("dataset", "model", "regime", "budget", "strategy"))
        assert key in cells, f"{path.name} line {line}: {key} is no cell of {preset}"
        seen.append(key)
        assert row["metric"] == "test/acc"
        value, spread = float(row["value"]), float(row["spread"])
        assert 0.0 <= value <= 1.0 and 0.0 <= spread < 1.0, f"line {line}"
        assert row["seeds"] == "3"  # USB results/README.md: 3 seeds per setting
        assert row["source"].strip() and "44995033" in row["source"]
        # reported: 'err±std (best error rate %)'; value = 1 - err / 100, spread = std / 100
        err, std = row["reported"].split(" ", 1)[0].split("±")
        assert "error rate %" in row["reported"]
        assert Decimal(row["value"]) == (100 - Decimal(err)) / 100, f"line {line}"
        assert Decimal(row["spread"]) == Decimal(std) / 100, f"line {line}"
    assert sorted(seen) == sorted(cells), "one published row per cell of the sweeps"
    assert len(load_published([path])) == len(rows)  # the leaderboard's own reader takes it
