"""The classic SSL preset on STL-10 (classic_ssl_stl10): USB's classic-CV protocol with its
96x96 network (model wrn37_2, USB's wrn_var_37_2) and STL-10's 100,000 unlabeled images as
unlabeled-only items. The registry's sweeps make the 9 x 3 x 3 table once with USB's
settings; on a stand-in of STL-10's shape, splits and columns (the unlabeled split labelled
-1) the run prepares, its pool leaves the unlabeled-only items out and the SSL strategies
learn from them; the network is USB's; the published rows name cells the preset runs."""

from __future__ import annotations

import collections
import csv
import itertools
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF_DIR
from labelbench import presets
from labelbench.config import choices_from, run_key
from labelbench.data.standin import SHAPES, standin_overrides, write_hub_standin
from labelbench.data.task import NO_LABEL
from labelbench.models.wrn import WideResNet, WideResNetVar
from labelbench.overrides import Composer, check_run
from labelbench.results.published import load_published
from labelbench.run import compose, prepare
from labelbench.strategies.semi import SemiSupervised

NAME = "classic_ssl_stl10"
ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "results" / "published" / f"{NAME}.csv"
STEPS = 2**20  # USB num_train_iter 1048576
BUDGETS = (40, 250, 1000)  # USB config/classic_cv/<alg>/<alg>_stl10_{40,250,1000}_0.yaml
SEEDS = (0, 1, 2)
STRATEGIES = (
    "supervised", "pseudo_label", "mean_teacher", "fixmatch", "flexmatch", "freematch",
    "softmatch", "uda", "mixmatch",
)  # fmt: skip
# The methods whose labelbench defaults are USB's stl10 values (the grid); the others run in
# the registry's further sweeps with USB's values (presets._usb_classic, as on CIFAR-10).
GRID = ("supervised", "mean_teacher", "fixmatch", "softmatch", "uda", "mixmatch")
# USB config/classic_cv/<alg>/<alg>_stl10_40_0.yaml, per algorithm, in labelbench's names
# (the same values as its CIFAR-10 configs: freematch without clip_thresh, mixmatch 100).
PER_ALGORITHM = {
    "pseudo_label": {"mu": 1, "warmup_steps": 0, "rampup_steps": round(0.4 * STEPS)},
    "flexmatch": {"mu": 7, "warmup_steps": 0, "threshold_warmup": True},
    "freematch": {"mu": 7, "fairness_weight": 0.001, "clip_thresh": False},
    "fixmatch": {"mu": 7, "threshold": 0.95},
    "uda": {"mu": 7, "threshold": 0.8, "temperature": 0.4},
    "mixmatch": {"mu": 1, "unlabeled_weight": 100.0},
    "mean_teacher": {"mu": 1, "unlabeled_weight": 50.0},
}


def value_of(overrides: list[str], key: str) -> str:
    (value,) = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    return value


@pytest.fixture(scope="module")
def seed0_at_40():
    """The preset's runs at seed 0 and 40 labels, composed as `reproduce` composes them:
    {strategy: (overrides, cfg, choices)}."""
    out = {}
    with Composer([]) as composer:
        for overrides in presets.expand(NAME, ["seed=0", "budget.total=40"]):
            composed = check_run(composer, overrides)
            choices = {k: v for k, v in composed.choices.items() if v}
            out[value_of(overrides, "strategy")] = (overrides, composed.cfg, choices)
    return out


# -- the registry and the YAML -----------------------------------------------------------------
def test_the_sweeps_run_the_table_once_and_the_header_lists_them():
    grid = {k: v.split(",") for k, v in presets.grid_params(NAME).items()}
    assert grid == {
        "strategy": list(GRID),
        "budget.total": [str(b) for b in BUDGETS],
        "seed": [str(s) for s in SEEDS],
    }
    assert presets.PRESETS[NAME].sweeps == presets._usb_classic(STEPS, "stl10")
    done = collections.Counter(
        (value_of(r, "strategy"), int(value_of(r, "budget.total")), int(value_of(r, "seed")))
        for r in presets.expand(NAME)
    )
    assert set(done) == set(itertools.product(STRATEGIES, BUDGETS, SEEDS))
    assert set(done.values()) == {1}, "a cell is run by two sweeps"
    text = (CONF_DIR / "experiment" / f"{NAME}.yaml").read_text()
    header = [line.split("labelbench-run -m ", 1)[1].split() for line in text.splitlines()
              if line.startswith("#   labelbench-run -m ")]  # fmt: skip
    assert header == [[f"experiment={NAME}", *s] for s in presets.PRESETS[NAME].sweeps]


def test_composed_runs_hold_usbs_stl10_settings(seed0_at_40):
    assert set(seed0_at_40) == set(STRATEGIES)
    for strategy, (overrides, cfg, choices) in seed0_at_40.items():
        s, d = cfg.strategy, cfg.dataset
        got = {
            "dataset": choices["dataset"],
            "splits": (d.name, d.split, d.test_split, d.unlabeled_split),
            "columns": (d.input_column, d.label_column),
            "flip": d.flip,
            "val_fraction": d.val_fraction,
            "model": choices["model"],
            "model_target": cfg.model._target_,
            "net": (cfg.model.depth, cfg.model.widen_factor, cfg.model.first_stride),
            "optimizer": (
                s.optimizer._target_,
                s.optimizer.lr,
                s.optimizer.momentum,
                s.optimizer.nesterov,
                s.optimizer.weight_decay,
            ),
            "no_decay_norm_bias": s.no_decay_norm_bias,
            "schedule": (choices["strategy/schedule"], s.schedule.cycles, s.schedule.warmup),
            "steps": (s.max_steps, s.max_epochs),
            "batch": (s.batch_size, s.labeled_sampling),
            "ema": s.ema_decay,
            "augment": (s.augment.image.pad, s.augment.image.n),
            "selection": (s.selection, s.patience, s.eval_every),
            "budget": (cfg.budget._target_, cfg.budget.total, cfg.budget.balanced),
            "regime": cfg.regime._target_,
        }
        assert got == {
            "dataset": "stl10",
            "splits": ("jxie/stl10", "train", "test", "unlabeled"),
            "columns": ("image", "label"),
            "flip": True,  # USB cv_datasets/stl10.py RandomHorizontalFlip
            "val_fraction": 0,
            "model": "wrn37_2",  # USB net: wrn_var_37_2
            "model_target": "labelbench.models.wrn.WideResNetVar",
            "net": (28, 2, 2),
            "optimizer": ("torch.optim.SGD", 0.03, 0.9, True, 5e-4),
            "no_decay_norm_bias": True,
            "schedule": ("cosine", 7 / 16, 0),
            "steps": (STEPS, None),
            "batch": (64, "with_replacement"),
            "ema": 0.999,
            # USB: padding int(96 x (1 - crop_ratio 0.875)) = 12 px; RandAugment(3, 5)
            "augment": (0.125, 3),
            "selection": ("last", 0, 5120),
            "budget": ("labelbench.labels.budget.Total", 40, True),
            "regime": "labelbench.labels.regime.Clean",
        }, f"strategy={strategy}"
        for key, want in PER_ALGORITHM.get(strategy, {}).items():
            have = s[key]
            same = math.isclose(have, want) if isinstance(want, float) else have == want
            assert same and type(have) is type(want), f"{' '.join(overrides)}: {key}={have!r}"


def test_dry_run_lists_every_run_with_its_commands(tmp_path):
    runs = presets.plan(NAME, tmp_path / "store", ["seed=0", "budget.total=40"])
    text = presets.dry_run_text(NAME, runs, ["seed=0", "budget.total=40"])
    assert text.startswith(f"# {NAME}: 9 runs (0 already recorded)")
    todo = [line for line in text.splitlines() if line.startswith("todo ")]
    assert len(todo) == 9 and all(" wrn37_2 clean 40 seed=0 steps=1048576 " in t for t in todo)
    assert {t.split()[2] for t in todo} == {f"{s}[schedule=cosine]" for s in STRATEGIES}
    assert f"labelbench-run -m experiment={NAME} seed=0 budget.total=40 logger=none" in text
    assert "strategy=pseudo_label strategy.mu=1 strategy.warmup_steps=0" in text


# -- on a stand-in of STL-10 ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory, seed0_at_40):
    """The FixMatch run (seed 0, 40 labels) prepared on a stand-in: 60 train, 20 test and 30
    unlabeled 96x96 images, read by the real hub loader."""
    folder = tmp_path_factory.mktemp("stl10_standin")
    overrides = seed0_at_40["fixmatch"][0]
    cfg, _ = compose(
        [
            *standin_overrides(overrides, folder, n_train=60, n_test=20, n_unlabeled=30),
            "logger=none",
            f"paths.results_dir={folder / 'results'}",
        ]
    )
    return prepare(cfg, run_key(cfg))


def test_the_standin_has_stl10s_splits_and_unlabeled_rows_without_labels(prepared):
    import datasets

    task = prepared.task
    assert SHAPES["stl10"] == ((96, 96, 3), 10)
    assert tuple(task.input_shape) == (3, 96, 96) and task.num_classes == 10
    saved = datasets.load_from_disk(str(prepared.parts.source.hub_name))
    assert {s: len(saved[s]) for s in saved} == {"train": 60, "test": 20, "unlabeled": 30}
    feature = saved["unlabeled"].features["label"]
    assert isinstance(feature, datasets.ClassLabel) and set(saved["unlabeled"]["label"]) == {-1}
    # rows: train, then test, then unlabeled; the unlabeled ones have no label
    np.testing.assert_array_equal(task.split.pool, np.arange(60))
    np.testing.assert_array_equal(task.split.test, np.arange(60, 80))
    np.testing.assert_array_equal(task.split.unlabeled, np.arange(80, 110))
    assert (task.y[80:] == NO_LABEL).all() and (task.y[:80] >= 0).all()


def test_the_pool_leaves_out_the_unlabeled_only_items_which_ssl_learns_from(prepared):
    pool, task, strategy = prepared.pool, prepared.task, prepared.parts.strategy
    extra = np.arange(80, 110)
    np.testing.assert_array_equal(np.sort(pool.extra), extra)
    assert len(pool.indices) == 40 and np.bincount(task.y[pool.indices]).tolist() == [4] * 10
    pooled = np.concatenate([pool.indices, pool.unlabeled])
    np.testing.assert_array_equal(np.sort(pooled), np.arange(60))  # the pool: train only
    assert not np.intersect1d(pooled, extra).size and not len(pool.val_indices)
    assert isinstance(strategy, SemiSupervised) and strategy.include_labeled
    unlabeled = strategy.unlabeled_indices(pool)
    # USB's unlabeled set: the unlabeled split and every training image, each once here
    np.testing.assert_array_equal(np.sort(unlabeled), np.concatenate([np.arange(60), extra]))
    assert not np.intersect1d(unlabeled, task.split.test).size


def test_a_hub_standin_without_an_unlabeled_split_is_as_before(tmp_path):
    import datasets

    node = OmegaConf.create(
        {"split": "train", "test_split": "test", "input_column": "img", "label_column": "label"}
    )
    write_hub_standin(tmp_path / "c", "cifar10", node, n_train=12, n_test=5)
    saved = datasets.load_from_disk(str(tmp_path / "c"))
    assert {s: len(saved[s]) for s in saved} == {"train": 12, "test": 5}
    assert saved["train"]["label"] == [i % 10 for i in range(12)]


# -- the network -----------------------------------------------------------------------------------
def usb_parameters(num_classes: int, conv_bias: bool, k: int = 2, n: int = 4) -> int:
    """Parameters of USB's / TorchSSL's WideResNetVar(first_stride=2, depth=28,
    widen_factor=k), counted from the modules its __init__ builds (wrn_var.py): a stem conv
    with bias; per BasicBlock bn1(in), conv1 3x3, bn2(out), conv2 3x3 and, where the width
    changes, a 1x1 shortcut (biases where `conv_bias`: TorchSSL, USB at 167842af; none at
    7c7460fc); then bn1 and the linear head."""
    widths = [16, 16 * k, 32 * k, 64 * k, 128 * k]
    b = int(conv_bias)
    total = 3 * 16 * 9 + 16
    for group in range(4):
        for i in range(n):
            c_in, c_out = (widths[group] if i == 0 else widths[group + 1]), widths[group + 1]
            total += 2 * c_in + c_in * c_out * 9 + b * c_out + 2 * c_out + c_out * c_out * 9
            total += b * c_out
            if c_in != c_out:
                total += c_in * c_out + b * c_out
    return total + 2 * widths[4] + widths[4] * num_classes + num_classes


def test_wrn37_2_is_usbs_wrn_var_37_2():
    net = instantiate(OmegaConf.load(CONF_DIR / "model" / "wrn37_2.yaml"))(
        in_shape=(3, 96, 96), num_classes=10
    )
    assert isinstance(net, WideResNetVar)
    count = sum(p.numel() for p in net.parameters())
    unused_bn = 2 * (32 + 64 + 128)  # USB and TorchSSL build bn1 in groups 2-4's first block
    assert count == 5_933_322 == usb_parameters(10, conv_bias=True) - unused_bn
    assert usb_parameters(10, conv_bias=False) == 5_929_450  # USB's file at 7c7460fc
    net.eval()
    x = torch.rand(2, 3, 96, 96)
    sizes = []
    h = x
    for name, layer in net.named_children():
        h = layer(h)
        if name.startswith("block"):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(32, 48, 48), (64, 24, 24), (128, 12, 12), (256, 6, 6)]
    assert tuple(net(x).shape) == (2, 10) and tuple(net.embed(x).shape) == (2, 256)
    torch.testing.assert_close(net.embed(x) @ net.fc.weight.T + net.fc.bias, net(x))


def test_the_variant_shares_wrn28_2s_blocks_and_init():
    """Groups 1-3 of wrn37_2 are WRN-28-2's groups (same modules, shapes and settings); the
    variant adds group 4 and the first stride."""
    var, wrn = WideResNetVar((3, 96, 96), 10), WideResNet((3, 32, 32), 10)
    for group in ("block1", "block2", "block3"):
        a, b = getattr(var, group), getattr(wrn, group)
        assert [(n, tuple(p.shape)) for n, p in a.named_parameters()] == [
            (n, tuple(p.shape)) for n, p in b.named_parameters()
        ]
    assert var.block1[0].conv1.stride == (2, 2) and wrn.block1[0].conv1.stride == (1, 1)
    bns = [m for m in var.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {(m.momentum, m.eps) for m in bns} == {(0.001, 0.001)}
    with pytest.raises(Exception, match=r"^first_stride=0 must be"):
        WideResNetVar((3, 96, 96), 10, first_stride=0)


# -- the published rows ----------------------------------------------------------------------------
def test_every_published_row_is_a_cell_the_preset_runs(seed0_at_40):
    with CSV.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [
            "dataset", "model", "regime", "budget", "strategy", "metric",
            "value", "spread", "seeds", "reported", "source",
        ]  # fmt: skip
        rows = list(reader)
    strategies = {}
    for strategy, (_, cfg, choices) in seed0_at_40.items():
        names = choices_from(cfg, choices)
        assert (names["dataset"], names["model"]) == ("stl10", "wrn37_2")
        assert instantiate(cfg.regime).label() == "clean"
        strategies[strategy] = names["strategy"]
    cells = {
        ("stl10", "wrn37_2", "clean", str(b), strategies[s]) for s in STRATEGIES for b in BUDGETS
    }
    keys = [tuple(r[k] for k in ("dataset", "model", "regime", "budget", "strategy")) for r in rows]
    assert len(set(keys)) == len(keys) == 18 and set(keys) <= cells
    # TorchSSL's STL-10 table has these six of the nine methods, at every budget
    published = {s for s in STRATEGIES if any(k[4] == strategies[s] for k in keys)}
    assert published == {"pseudo_label", "mean_teacher", "fixmatch", "flexmatch", "uda", "mixmatch"}
    for line, row in enumerate(rows, start=2):
        assert row["metric"] == "test/acc" and row["seeds"] == "3"
        assert "cdfcb3c8e855d5bc49645dfe816e2f894be188be" in row["source"], f"line {line}"
        acc, sd = row["reported"].split(" ", 1)[0].split("±")
        assert row["reported"].endswith("(best accuracy %)")
        assert Decimal(row["value"]) == Decimal(acc) / 100, f"line {line}"
        assert Decimal(row["spread"]) == Decimal(sd) / 100, f"line {line}"
    assert len(load_published([CSV])) == 18  # the leaderboard's own reader takes it
