"""The noisy-label and active-learning presets (issue 19): noise_cifar10, noise_cifar100
(DivideMix's protocol), noise_cifar10n (CIFAR-10N) and al_cifar10 (Realistic-AL). Each
preset's runs, as the registry (labelbench.presets) expands its sweeps (the YAML's grid,
hydra.sweeper.params, and the further sweeps it lists, which the YAML's header documents),
are composed at seed 0; the composed configs must hold the sources' settings below, every
cell must be run once per seed, and every published row must name a cell the sweeps run.
No dataset is built here (no CIFAR on this machine)."""

from __future__ import annotations

import collections
import csv
import math
import re
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from labelbench import presets
from labelbench.config import choices_from
from labelbench.overrides import Composed, Composer, check_run

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "conf" / "experiment"
PUBLISHED = ROOT / "results" / "published"
PRESETS = ("noise_cifar10", "noise_cifar100", "noise_cifar10n", "al_cifar10")

SGD = "torch.optim.SGD"
STEP = "labelbench.strategies.schedules.Step"
CONSTANT = "labelbench.strategies.schedules.Constant"
PREACT = "labelbench.models.preact_resnet.PreActResNet18"
RESNET18 = "labelbench.models.resnet.ResNet18Cifar"
SYMMETRIC = "labelbench.labels.noise.Symmetric"
ASYMMETRIC = "labelbench.labels.noise.Asymmetric"
LABEL_FILE = "labelbench.labels.label_file.LabelFile"
FULL = "labelbench.labels.budget.Full"
TOTAL = "labelbench.labels.budget.Total"

# The sources' values (see each preset's comments for where each comes from).
DIVIDEMIX_RECIPE = {  # LiJunnan1992/DivideMix Train_CIFAR.py
    "optimizer": SGD,
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": STEP,
    "milestones": [0.5],  # lr / 10 at epoch 150 of 300
    "gamma": 0.1,
    "max_epochs": 300,
    "batch_size": 64,
    "model": PREACT,
    "budget": FULL,
    "val_fraction": 0,
    "selection": "last",
    "patience": 0,
}
# The methods of the noisy-label presets, as their leaderboard rows are named (the step
# schedule the presets set is a nested choice the YAMLs' defaults do not make).
NOISE_METHODS = {
    "supervised[schedule=step]", "supervised[loss=gce,schedule=step]",
    "supervised[loss=sce,schedule=step]", "coteaching[schedule=step]", "elr[schedule=step]",
    "dividemix",
}  # fmt: skip

SOURCE = {
    "noise_cifar10": {
        **DIVIDEMIX_RECIPE,
        "dataset": "uoft-cs/cifar10",
        "seeds": [0, 1, 2],
        # DivideMix's sym r -> labelbench rate r x 9/10; asym 40% as is
        "regimes": {
            "symmetric(0.18)": (SYMMETRIC, 0.18, None),
            "symmetric(0.45)": (SYMMETRIC, 0.45, None),
            "symmetric(0.72)": (SYMMETRIC, 0.72, None),
            "asymmetric(cifar10 0.4)": (ASYMMETRIC, 0.4, "cifar10"),
        },
        "strategies": NOISE_METHODS,
    },
    "noise_cifar100": {
        **DIVIDEMIX_RECIPE,
        "dataset": "uoft-cs/cifar100",
        "seeds": [0, 1, 2],
        "regimes": {  # sym r -> r x 99/100; DivideMix has no asymmetric CIFAR-100 cell
            "symmetric(0.198)": (SYMMETRIC, 0.198, None),
            "symmetric(0.495)": (SYMMETRIC, 0.495, None),
            "symmetric(0.792)": (SYMMETRIC, 0.792, None),
        },
        "strategies": NOISE_METHODS,
    },
    "noise_cifar10n": {  # UCSC-REAL/cifar-10-100n main.py (ResNet-34 -> resnet18_cifar)
        "optimizer": SGD,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": STEP,
        "milestones": [0.6],  # 0.1 for 60 epochs, then 0.01
        "gamma": 0.1,
        "max_epochs": 100,
        "batch_size": 128,
        "model": RESNET18,
        "budget": FULL,
        "val_fraction": 0,
        "selection": "last",
        "patience": 0,
        "dataset": "uoft-cs/cifar10",
        "seeds": [0, 1, 2, 3, 4],
        "regimes": {
            "label_file(CIFAR-10_human aggre_label)": (LABEL_FILE, None, "aggre"),
            "label_file(CIFAR-10_human random_label1)": (LABEL_FILE, None, "random1"),
            "label_file(CIFAR-10_human worse_label)": (LABEL_FILE, None, "worst"),
        },
        "strategies": NOISE_METHODS,
    },
    "al_cifar10": {  # PrateekMunjal/TorchAL configs/CIFAR10/resnet/R-18_4gpu.yaml + README
        "optimizer": SGD,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": CONSTANT,  # LR_POLICY steps, STEPS [0]
        "milestones": None,
        "gamma": None,
        "max_epochs": 150,
        "batch_size": 256,
        "model": RESNET18,
        "budget": TOTAL,
        "val_fraction": 0.1,
        "selection": "best_val",
        "patience": 0,
        "dataset": "uoft-cs/cifar10",
        "seeds": [0, 1, 2],
        "regimes": {"clean": ("labelbench.labels.regime.Clean", None, None)},
        "strategies": {
            f"active{q}"
            for q in (
                "[query=random]",
                "[query=entropy]",
                "",  # margin: active.yaml's default query
                "[query=least_confidence]",
                "[query=coreset]",
                "[query=badge]",
            )
        },
    },
}
# DivideMix's settings per cell (Appendix B Table 7; Train_CIFAR.py warm_up, conf_penalty).
DIVIDEMIX_CELLS = {
    ("noise_cifar10", "symmetric(0.18)"): {"lambda_u": 0, "warmup_periods": 10},
    ("noise_cifar10", "symmetric(0.45)"): {"lambda_u": 25, "warmup_periods": 10},
    ("noise_cifar10", "symmetric(0.72)"): {"lambda_u": 25, "warmup_periods": 10},
    ("noise_cifar10", "asymmetric(cifar10 0.4)"): {
        "lambda_u": 0,
        "warmup_periods": 10,
        "conf_penalty": True,
    },
    ("noise_cifar100", "symmetric(0.198)"): {"lambda_u": 25, "warmup_periods": 30},
    ("noise_cifar100", "symmetric(0.495)"): {"lambda_u": 150, "warmup_periods": 30},
    ("noise_cifar100", "symmetric(0.792)"): {"lambda_u": 150, "warmup_periods": 30},
    # lambda_u 25: the CIFAR-N authors' first setting at every level (their issue #7)
    ("noise_cifar10n", "label_file(CIFAR-10_human aggre_label)"): {"lambda_u": 25},
    ("noise_cifar10n", "label_file(CIFAR-10_human random_label1)"): {"lambda_u": 25},
    ("noise_cifar10n", "label_file(CIFAR-10_human worse_label)"): {"lambda_u": 25},
}
DIVIDEMIX_FIXED = {"p_threshold": 0.5, "temperature": 0.5, "alpha": 4.0, "rampup_periods": 16}
# Co-teaching forgets the expected noise rate (bhanML/Co-teaching main.py).
COTEACHING_FORGET = {
    "symmetric(0.18)": 0.18,
    "symmetric(0.45)": 0.45,
    "symmetric(0.72)": 0.72,
    "asymmetric(cifar10 0.4)": 0.2,  # 40% of 5 of the 10 classes
    "symmetric(0.198)": 0.198,
    "symmetric(0.495)": 0.495,
    "symmetric(0.792)": 0.792,
    "label_file(CIFAR-10_human aggre_label)": 0.0903,
    "label_file(CIFAR-10_human random_label1)": 0.1723,
    "label_file(CIFAR-10_human worse_label)": 0.4021,
}
# Methods whose CIFAR-100 values differ from their YAML's CIFAR-10 defaults.
CIFAR100_METHOD = {
    "supervised[loss=sce,schedule=step]": ("loss", {"alpha": 6.0, "beta": 0.1}),
    "elr[schedule=step]": (None, {"beta": 0.9, "lam": 7}),
}
AL_PROTOCOL = {"initial": 5000, "query_size": 5000, "total": 20000, "rounds": 4}
RANDOM_KEYS = ("random_label1", "random_label2", "random_label3")  # CIFAR-10N's
CSV_COLUMNS = [
    "dataset",
    "model",
    "regime",
    "budget",
    "strategy",
    "metric",
    "value",
    "spread",
    "seeds",
    "reported",
    "source",
]


def seeds_of(preset: str) -> list[int]:
    """The seeds of the preset's grid (hydra.sweeper.params)."""
    return sorted(int(s) for s in presets.grid_params(preset)["seed"].split(","))


def split_seed(run: list[str]) -> tuple[tuple[str, ...], int]:
    """A run's overrides without its seed, and the seed."""
    (seed,) = [int(o.split("=", 1)[1]) for o in run if o.startswith("seed=")]
    return tuple(o for o in run if not o.startswith("seed=")), seed


def regime_label(node, tmp_dir: Path) -> str:
    """The regime's leaderboard label; a label file is read from a stand-in of the same
    name (the label shows the file's stem and key, not its labels)."""
    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    if node._target_ == LABEL_FILE:
        stand_in = tmp_dir / Path(node.path).name
        if not stand_in.exists():
            torch.save(
                {
                    k: torch.zeros(10, dtype=torch.long)
                    for k in ("clean_label", "aggre_label", "worse_label", *RANDOM_KEYS)
                },
                stand_in,
            )
        node.path = str(stand_in)
    return instantiate(node).label()


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict[str, list[dict]]:
    """Every preset's runs of seed 0 (the registry's sweeps, labelbench.presets): overrides,
    config and leaderboard cell. The other seeds run the same overrides (checked below)."""
    tmp = tmp_path_factory.mktemp("label_files")
    out: dict[str, list[dict]] = {}
    with Composer([]) as composer:  # one Hydra initialisation for all, as `reproduce` plans
        for preset in PRESETS:
            out[preset] = [
                cell_of(check_run(composer, overrides), overrides, tmp)
                for overrides in presets.expand(preset, ["seed=0"])
            ]
    return out


def cell_of(composed: Composed, overrides: list[str], tmp: Path) -> dict:
    """A run's overrides, config and leaderboard cell."""
    cfg = composed.cfg
    names = choices_from(cfg, {k: v for k, v in composed.choices.items() if v})
    cell = (
        names["dataset"],
        names["model"],
        regime_label(cfg.regime, tmp),
        instantiate(cfg.budget).label(),
        names["strategy"],
    )
    return {"overrides": overrides, "cfg": cfg, "cell": cell}


def network(cfg):
    """The strategy node that trains the network (active learning's inner one)."""
    return cfg.strategy.inner if "inner" in cfg.strategy else cfg.strategy


@pytest.mark.parametrize("preset", PRESETS)
def test_the_registry_starts_with_the_grid(preset):
    sweeps = presets.PRESETS[preset].sweeps
    assert sweeps and sweeps[0] == (), "the first sweep should run the YAML's grid alone"
    assert seeds_of(preset) == SOURCE[preset]["seeds"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_sweep_runs_each_of_its_runs_once_per_seed(preset):
    """Each sweep runs its seed-0 overrides once with every seed of the grid, and nothing
    else: so a cell that seed 0 runs once is run once per seed."""
    seeds = seeds_of(preset)
    for sweep in presets.PRESETS[preset].sweeps:
        first = presets.expand_sweep(preset, sweep, ["seed=0"])
        assert first, f"{sweep} runs nothing"
        runs = presets.expand_sweep(preset, sweep)
        per_seed = collections.Counter(split_seed(run) for run in runs)
        assert max(per_seed.values()) == 1, f"{sweep} runs an override list twice"
        assert set(per_seed) == {(split_seed(run)[0], s) for run in first for s in seeds}, sweep


@pytest.mark.parametrize("preset", PRESETS)
def test_composed_configs_hold_the_sources_recipe(preset, cells):
    src = SOURCE[preset]
    for run in cells[preset]:
        cfg, where = run["cfg"], " ".join(run["overrides"])
        net = network(cfg)
        assert net.optimizer._target_ == src["optimizer"], where
        for key in ("lr", "momentum", "weight_decay"):
            assert net.optimizer[key] == pytest.approx(src[key]), f"{key}: {where}"
        assert net.schedule._target_ == src["schedule"], where
        if src["milestones"] is not None:
            assert list(net.schedule.milestones) == src["milestones"], where
            assert net.schedule.gamma == src["gamma"], where
        assert net.max_epochs == src["max_epochs"] and net.max_steps is None, where
        assert net.batch_size == src["batch_size"], where
        assert (net.selection, net.patience) == (src["selection"], src["patience"]), where
        assert cfg.model._target_ == src["model"], where
        assert cfg.budget._target_ == src["budget"], where
        assert cfg.dataset.name == src["dataset"], where
        assert cfg.dataset.val_fraction == src["val_fraction"], where


@pytest.mark.parametrize("preset", PRESETS)
def test_every_cell_runs_once_with_its_regime(preset, cells):
    src = SOURCE[preset]
    seen = [run["cell"] for run in cells[preset]]
    assert len(seen) == len(set(seen)), "a cell is run by two sweeps (with other settings)"
    regimes = {cell[2] for cell in seen}
    strategies = {cell[4] for cell in seen}
    assert regimes == set(src["regimes"])
    assert strategies == src["strategies"]
    assert set(seen) >= {  # every method on every regime of the source's table
        (seen[0][0], seen[0][1], r, seen[0][3], s) for r in regimes for s in strategies
    }
    for run in cells[preset]:
        target, rate, extra = src["regimes"][run["cell"][2]]
        regime = run["cfg"].regime
        assert regime._target_ == target
        if rate is not None:
            assert regime.rate == pytest.approx(rate)
        if target == ASYMMETRIC:
            assert regime.map == extra
        if target == LABEL_FILE:
            assert regime.column == extra
            assert Path(regime.path) == Path("data/CIFAR-10_human.pt")


def test_symmetric_rates_are_dividemixs_noise():
    """DivideMix's sym r draws the new label from all K classes: r (K-1)/K end up wrong."""
    for preset, k in (("noise_cifar10", 10), ("noise_cifar100", 100)):
        rates = sorted(
            rate for target, rate, _ in SOURCE[preset]["regimes"].values() if target == SYMMETRIC
        )
        assert rates == pytest.approx([r * (k - 1) / k for r in (0.2, 0.5, 0.8)])


def test_dividemix_settings_per_cell(cells):
    found = {}
    for preset in PRESETS:
        for run in cells[preset]:
            if run["cell"][4] != "dividemix":
                continue
            regime, s = run["cell"][2], run["cfg"].strategy
            expect = {"conf_penalty": False, "warmup_periods": 10} | DIVIDEMIX_CELLS[
                (preset, regime)
            ]
            for key, value in (expect | DIVIDEMIX_FIXED).items():
                assert s[key] == value, f"{key} of dividemix on {preset} {regime}"
            found[(preset, regime)] = True
    assert set(found) == set(DIVIDEMIX_CELLS)


def test_coteaching_forgets_the_noise_rate_over_ten_epochs(cells):
    for preset in ("noise_cifar10", "noise_cifar100", "noise_cifar10n"):
        runs = [r for r in cells[preset] if r["cell"][4].startswith("coteaching")]
        assert runs
        for run in runs:
            s = run["cfg"].strategy
            assert s.forget_rate == pytest.approx(COTEACHING_FORGET[run["cell"][2]])
            assert s.ramp_steps == 10 * math.ceil(50000 / s.batch_size)  # num_gradual=10 epochs


def test_cifar100_method_values(cells):
    for run in cells["noise_cifar100"]:
        name = run["cell"][4]
        node = run["cfg"].strategy
        if name in CIFAR100_METHOD:
            sub, values = CIFAR100_METHOD[name]
            node = node[sub] if sub else node
            for key, value in values.items():
                assert node[key] == value, f"{key} of {name}"
        if name == "supervised[loss=gce,schedule=step]":
            assert node.loss.q == 0.7  # Zhang & Sabuncu 2018


def test_active_learning_protocol(cells):
    for run in cells["al_cifar10"]:
        cfg = run["cfg"]
        assert cfg.strategy._target_ == "labelbench.strategies.active.Active"
        assert (cfg.strategy.initial, cfg.strategy.query_size, cfg.budget.total) == (
            AL_PROTOCOL["initial"],
            AL_PROTOCOL["query_size"],
            AL_PROTOCOL["total"],
        )
        fits = 1 + (cfg.budget.total - cfg.strategy.initial) // cfg.strategy.query_size
        assert fits == AL_PROTOCOL["rounds"]
        assert cfg.budget.balanced is False and cfg.budget.val_paid is False


def published(preset: str) -> list[dict[str, str]]:
    with (PUBLISHED / f"{preset}.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        return list(reader)


@pytest.mark.parametrize(
    "preset", [p for p in PRESETS if (PUBLISHED / f"{p}.csv").exists()] or ["noise_cifar10"]
)
def test_published_rows_parse_and_name_cells_the_sweeps_run(preset, cells):
    rows = published(preset)
    assert rows
    run_cells = {run["cell"] for run in cells[preset]}
    for row in rows:
        cell = (row["dataset"], row["model"], row["regime"], row["budget"], row["strategy"])
        assert cell in run_cells, f"{cell} is not a cell of {preset}'s sweeps"
        assert row["metric"] == "test/acc"
        value = float(row["value"])
        assert 0 <= value <= 1
        if row["spread"]:
            assert 0 <= float(row["spread"]) <= 1
        if row["seeds"]:
            assert int(row["seeds"]) >= 1
        assert row["source"].strip() and row["reported"].strip()
        last = re.search(r"last ([0-9.]+)", row["reported"])
        if last:  # value is the last-epoch number, as a fraction
            assert value == pytest.approx(float(last.group(1)) / 100)
