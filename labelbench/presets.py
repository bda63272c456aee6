"""Experiment presets (conf/experiment/<name>.yaml) and the sweeps that make their tables:
what `labelbench reproduce` and `make reference` run.

A preset's YAML holds its settings and its main grid (`hydra.sweeper.params`), so that
`labelbench-run -m experiment=<name>` runs that grid. Cells a grid cannot express (an
asymmetric-noise column beside symmetric rates, a method's per-rate setting) are further
sweeps, listed here once. `reproduce` runs every sweep into one record store (skipping
runs already recorded there, so it resumes), then writes the preset's page: its
leaderboard, with the published numbers beside ours when results/published/<name>.csv
exists, headed by the date, the commit and the exact commands.

Imports nothing heavy at module level: `labelbench --help` reads this file.
"""

from __future__ import annotations

import datetime
import itertools
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "conf" / "experiment"
PUBLISHED = ROOT / "results" / "published"
COMPUTE = ROOT / "results" / "compute" / "step_seconds.csv"
COMMON = ("logger=none",)  # the record store is the source of truth; no CSV logs


class PresetError(ValueError):
    """A preset that does not exist, or a sweep that cannot be planned."""


@dataclass(frozen=True)
class Preset:
    """What a preset's table shows, the sweeps behind it (`labelbench-run -m` arguments
    after `experiment=<name>`; `()` is the YAML's own grid) and the `labelbench
    leaderboard` options that render it."""

    about: str
    sweeps: tuple[tuple[str, ...], ...] = ((),)
    board: tuple[str, ...] = ()


def _usb_classic(steps: int, dataset: str = "cifar10") -> tuple[tuple[str, ...], ...]:
    """The sweeps of USB's classic-CV table beyond the preset's grid: the methods whose
    labelbench defaults differ from USB's classic_cv configs, with USB's values (Wang et
    al. 2022; config/classic_cv/<algorithm>/*.yaml): pseudo-label with uratio 1, no
    warm-up and the unlabeled weight ramped over 0.4 of training (unsup_warm_up);
    FlexMatch without a labeled-only warm-up; FreeMatch's fairness weight
    (ent_loss_ratio) 0.001 and, on SVHN, its threshold clipped; MixMatch's unlabeled
    weight 150 on CIFAR-100."""
    freematch = ("strategy=freematch", "strategy.fairness_weight=0.001")
    return (
        (),
        ("strategy=pseudo_label", "strategy.mu=1", "strategy.warmup_steps=0",
         f"strategy.rampup_steps={round(0.4 * steps)}"),
        ("strategy=flexmatch", "strategy.warmup_steps=0"),
        (*freematch, *(("strategy.clip_thresh=true",) if dataset == "svhn" else ())),
        *((("strategy=mixmatch", "strategy.unlabeled_weight=150"),) if dataset == "cifar100" else ()),
    )  # fmt: skip


def _dividemix_protocol(asym_map: str, ramp: int) -> tuple[tuple[str, ...], ...]:
    """The sweeps of noise_cifar10 and its twin beyond their grid (cross-entropy and ELR x
    symmetric rates 0.18/0.45/0.72 x seeds): GCE and SCE; Co-teaching forgetting the noise
    rate (Han et al. 2018 assume it known) over its first 10 epochs (`ramp` steps);
    DivideMix with lambda_u as Li et al. 2020 set it per rate (0 at 20%, 25 at 50% and 80%;
    asymmetric 40%: 0, with the confidence penalty in warm-up); then the asymmetric 40%
    column (`asym_map`) for every method (forget rate 0.2: 40% of half the classes)."""
    asym = ("regime=asymmetric", f"regime.map={asym_map}", "regime.rate=0.4")
    return (
        (),
        ("strategy=supervised", "strategy/loss=gce,sce"),
        ("strategy=coteaching", "strategy.forget_rate=${regime.rate}", f"strategy.ramp_steps={ramp}"),
        ("strategy=dividemix", "regime.rate=0.18", "strategy.lambda_u=0"),
        ("strategy=dividemix", "regime.rate=0.45,0.72", "strategy.lambda_u=25"),
        (*asym, "strategy=supervised,elr"),
        (*asym, "strategy=supervised", "strategy/loss=gce,sce"),
        (*asym, "strategy=coteaching", "strategy.forget_rate=0.2", f"strategy.ramp_steps={ramp}"),
        (*asym, "strategy=dividemix", "strategy.lambda_u=0", "strategy.conf_penalty=true"),
    )  # fmt: skip


PRESETS: dict[str, Preset] = {
    "demo": Preset(
        "The demo suite: digits, clean labels, class-balanced budgets of 20, 50, 100 labels "
        "and the whole pool; supervised MLP, logistic regression, label propagation, "
        "self-training, label spreading, kNN.",
        (("budget=total", "budget.total=20,50,100"), ("budget=full",)),
    ),
    "ssl_digits": Preset(
        "Semi-supervised learning on digits: every SSL strategy and the classical peers "
        "against supervised, small CNN and MLP, 20 and 40 labels and the whole pool.",
        (("budget=total", "budget.total=20,40"), ("budget=full",)),
    ),
    "noise_digits": Preset(
        "Noisy labels on digits: 40% symmetric noise on pool and validation, the whole pool; "
        "noise-robust strategies and losses against cross-entropy (supervised); "
        "distill[oracle] is a marked upper bound (its teacher learns the true labels).",
        ((),
         ("strategy=supervised", "strategy/loss=gce,sce,mae,bootstrap"),
         ("strategy=distill", "strategy.teacher_labels=oracle"),
         ("model=cnn_small", "strategy=supervised,coteaching,elr"),
         ("model=cnn_small", "strategy=supervised", "strategy/loss=gce,sce")),
    ),
    "tune_digits": Preset(
        "Fair tuning on digits at 40 labels: supervised, FixMatch and ELR, each tuned with the "
        "same 20 trials on the 8 validation labels the budget pays for (never on test), then "
        "the best settings ('[tuned]', with the tuning cost) and the defaults on seeds 0-2.",
    ),
    "crowd_digits": Preset(
        "Crowd labels on digits: 3 annotators of 70% accuracy, 3 votes per item; 300 "
        "annotations (100 items) and 3507 (the whole pool). Baseline: majority vote.",
        board=("--baseline", "majority_vote"),
    ),
    "weak_digits": Preset(
        "Weak supervision on digits: 20 prototype labeling functions voting on the whole "
        "pool. Baseline: the labeling functions' majority vote.",
        board=("--baseline", "lf_majority"),
    ),
    "partial_digits": Preset(
        "Candidate sets on digits: partial labels (2 distractors) and complementary labels, "
        "the whole pool. Baseline: PRODEN.",
        board=("--baseline", "proden"),
    ),
    "active_digits": Preset(
        "Active learning on digits: every query strategy on supervised training (MLP), 10 "
        "initial labels, +10 per round to 100; AUBC is the area under each run's per-round "
        "curve. `active` is margin sampling. Baseline: random queries.",
        board=("--baseline", "active[query=random]"),
    ),
    "mnist1d": Preset(
        "MNIST-1D: supervised training on the whole pool (3400 labels), the 1-D CNN and the "
        "MLP, tested on the package's own 1000 test signals.",
        board=("--rows", "model", "--cols", "regime,budget", "--baseline", ""),
    ),
    "classic_ssl_cifar10": Preset(
        "USB's classic-CV protocol on CIFAR-10 (Wang et al. 2022; FixMatch's recipe, Sohn et "
        "al. 2020): WRN-28-2, 2^20 steps, 40/250/4000 labels, the nine methods of USB's "
        "table, 3 seeds; the last EMA weights scored (USB: the best checkpoint on test).",
        _usb_classic(2**20),
    ),
    "classic_ssl_cifar100": Preset(
        "USB's classic-CV protocol on CIFAR-100: WRN-28-2 (the network of USB's published "
        "table; FixMatch's WRN-28-8 with model=wrn28_8), 2^20 steps, 400/2500/10000 labels, "
        "the nine methods of USB's table, 3 seeds.",
        _usb_classic(2**20, "cifar100"),
    ),
    "classic_ssl_svhn": Preset(
        "USB's classic-CV protocol on SVHN: WRN-28-2, 2^20 steps, 40/250/1000 labels, the "
        "nine methods of USB's table, 3 seeds.",
        _usb_classic(2**20, "svhn"),
    ),
    "classic_ssl_stl10": Preset(
        "USB's classic-CV protocol on STL-10: WRN-37-2 (USB's wrn_var_37_2) on 96x96 images, "
        "the 5,000 labelled training images as the pool and the 100,000 unlabeled images as "
        "unlabeled-only data, 2^20 steps, 40/250/1000 labels, the nine methods of the CIFAR "
        "presets, 3 seeds.",
        _usb_classic(2**20, "stl10"),
    ),
    "usb_nlp_ag_news": Preset(
        "USB's NLP protocol on AG News (Wang et al. 2022; config/usb_nlp/fixmatch/"
        "fixmatch_ag_news_40_0.yaml): pretrained BERT-base (bert-base-uncased, from the HF "
        "cache) fine-tuned with FixMatch, AdamW lr 5e-5, layer decay 0.65, 5,120 warm-up "
        "steps then cosine, 102,400 steps, 8 + 8 texts a step, 40 labels (10 per class), "
        "3 seeds; the best checkpoint on a 10,000-text labelled validation split tested. "
        "Strong views are token edits standing in for USB's back-translations.",
    ),
    "usb_cv_cifar100": Preset(
        "USB's CV protocol on CIFAR-100 (Wang et al. 2022; config/usb_cv/fixmatch/"
        "fixmatch_cifar100_200_0.yaml): a pretrained ViT-S/2 on 32x32 images (USB's "
        "ImageNet-1k checkpoint, which the user converts to a Hugging Face folder: "
        "model.path) fine-tuned with FixMatch, AdamW lr 5e-4, layer decay 0.5, 5,120 "
        "warm-up steps then cosine, 204,800 steps, 8 + 8 images a step, 200 labels (2 per "
        "class), 3 seeds; the last weights scored (USB: the best test evaluation).",
    ),
    "finetune_topics": Preset(
        "CPU twin of usb_nlp_ag_news: the packaged all-MiniLM-L6-v2 fine-tuned on the shipped "
        "topics sentences, 10 labels per class, with USB's NLP recipe (AdamW, layer decay "
        "0.65, warm-up + cosine, Linear-GELU-Linear head) over 60 steps; supervised and "
        "FixMatch (uratio 1, token-level strong views), 3 seeds.",
        (("strategy=supervised",), ("strategy=fixmatch", "strategy.mu=1")),
    ),
    "noise_cifar10": Preset(
        "DivideMix's protocol on CIFAR-10 (Li et al. 2020): PreAct ResNet-18, 300 epochs, "
        "all 50,000 training labels with symmetric noise of 20/50/80% (DivideMix's "
        "definition: rates 0.18/0.45/0.72 here) and asymmetric 40%; cross-entropy, GCE, "
        "SCE, ELR, Co-teaching, DivideMix, 3 seeds, the last weights scored.",
        _dividemix_protocol("cifar10", ramp=7820),
    ),
    "noise_cifar100": Preset(
        "DivideMix's protocol on CIFAR-100: PreAct ResNet-18, 300 epochs, symmetric noise "
        "of 20/50/80% (rates 0.198/0.495/0.792 here); cross-entropy, GCE, SCE, ELR, "
        "Co-teaching, DivideMix (30 warm-up epochs), 3 seeds.",
        ((),
         ("strategy=supervised", "strategy/loss=gce"),
         ("strategy=supervised", "strategy/loss=sce", "strategy.loss.alpha=6.0", "strategy.loss.beta=0.1"),
         ("strategy=elr", "strategy.beta=0.9", "strategy.lam=7"),
         ("strategy=coteaching", "strategy.forget_rate=${regime.rate}", "strategy.ramp_steps=7820"),
         ("strategy=dividemix", "regime.rate=0.198", "strategy.lambda_u=25", "strategy.warmup_periods=30"),
         ("strategy=dividemix", "regime.rate=0.495,0.792", "strategy.lambda_u=150",
          "strategy.warmup_periods=30")),
    ),
    "noise_cifar10n": Preset(
        "CIFAR-10N's human label sets (Wei et al. 2022): aggre, random1, worst on all "
        "50,000 training images, the benchmark's cross-entropy recipe (ResNet-18 here for "
        "its ResNet-34), 100 epochs, 5 seeds; cross-entropy, GCE, SCE, ELR, Co-teaching, "
        "DivideMix. Needs CIFAR-10_human.pt (see the preset).",
        ((),
         ("strategy=supervised", "strategy/loss=gce,sce"),
         ("strategy=coteaching", "regime.column=aggre", "strategy.forget_rate=0.0903", "strategy.ramp_steps=3910"),
         ("strategy=coteaching", "regime.column=random1", "strategy.forget_rate=0.1723", "strategy.ramp_steps=3910"),
         ("strategy=coteaching", "regime.column=worst", "strategy.forget_rate=0.4021", "strategy.ramp_steps=3910"),
         ("strategy=dividemix",)),
    ),
    "al_cifar10": Preset(
        "Realistic-AL's protocol on CIFAR-10 (Munjal et al. 2022; PrateekMunjal/TorchAL): "
        "ResNet-18, 5,000 random initial labels, +5,000 per round to 20,000, 150 epochs per "
        "round, a 5,000-item validation set; six query strategies, 3 seeds.",
        board=("--baseline", "active[query=random]"),
    ),
    "repro_ssl_digits": Preset(
        "CPU twin of classic_ssl_cifar10: USB's classic-CV recipe (SGD with Nesterov "
        "momentum, cosine decay, EMA weights, labeled batches with replacement, the last "
        "weights scored) scaled to digits: the small CNN, 1000 steps, 40 and 250 labels, "
        "the nine methods of the published table, 3 seeds.",
        _usb_classic(1000),
        board=("--baseline", "supervised[schedule=cosine]"),
    ),
    "repro_al_digits": Preset(
        "CPU twin of al_cifar10: Realistic-AL's protocol scaled to digits: an MLP trained "
        "from scratch each round (SGD, lr 0.1, batch 256, 150 epochs, weights picked on a "
        "labeled validation set apart from the budget), 10% of the pool labeled at first, "
        "+10% per round, 4 fits; six query strategies, 3 seeds.",
        board=("--baseline", "active[query=random]"),
    ),
    "repro_noise_digits": Preset(
        "CPU twin of noise_cifar10: DivideMix's protocol (SGD, lr / 10 at half of "
        "training, the last weights scored) scaled to digits: an MLP, 100 epochs, the whole "
        "pool with DivideMix's symmetric noise of 20/50/80% (rates 0.18/0.45/0.72) and "
        "asymmetric (mnist map) 40%; cross-entropy, GCE, SCE, ELR, Co-teaching, DivideMix, "
        "3 seeds; and cross-entropy at 40% symmetric noise, beside the asymmetric column.",
        (*_dividemix_protocol("mnist", ramp=230), ("strategy=supervised", "regime.rate=0.4")),
        board=("--baseline", "supervised[schedule=step]"),
    ),
}  # fmt: skip


def get(name: str) -> Preset:
    """The preset called `name`; PresetError naming the known ones otherwise."""
    if name not in PRESETS:
        raise PresetError(f"preset {name!r} is not one of: {', '.join(PRESETS)}")
    if not (EXPERIMENTS / f"{name}.yaml").is_file():
        raise PresetError(f"preset {name!r} has no conf/experiment/{name}.yaml")
    return PRESETS[name]


def published_csv(name: str) -> Path | None:
    path = PUBLISHED / f"{name}.csv"
    return path if path.is_file() else None


def restrict(name: str, sweep: Sequence[str], extra: Sequence[str]) -> list[str] | None:
    """A sweep's overrides with the user's. A key the sweep or the preset's grid sets is
    narrowed to the values both give (`strategy=fixmatch` keeps a sweep's fixmatch runs;
    a sweep with none is left out: None); any other key is added. Values compare as
    written; grid keys the user leaves alone stay in the YAML."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    mine = parser.parse_overrides(list(sweep))
    keys = {o.get_key_element() for o in mine}
    grid = [f"{k}={v}" for k, v in grid_params(name).items() if k not in keys]
    own = {o.get_key_element(): o for o in [*mine, *parser.parse_overrides(grid)]}
    lines = {o.get_key_element(): o.input_line for o in mine}
    added = []
    for line, override in zip(extra, parser.parse_overrides(list(extra)), strict=True):
        key = override.get_key_element()
        if key not in own:
            added.append(line)
            continue
        wanted = set(_values(override))
        kept = [v for v in _values(own[key]) if v in wanted]
        if not kept:
            return None
        lines[key] = f"{key}={','.join(kept)}"
    return [*lines.values(), *added]


def _values(override) -> list[str]:
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    try:
        return list(override.sweep_string_iterator())
    except Exception as e:  # glob or range sweeps need Hydra's config loader
        raise PresetError(f"{override.input_line}: cannot list this sweep's values ({e})") from None


def sweep_args(name: str, sweep: Sequence[str], extra: Sequence[str] = ()) -> list[str] | None:
    """The `labelbench-run -m` arguments of one sweep with the user's overrides (launcher,
    a seed, a method ...; see `restrict`), and no loggers; None when the user's overrides
    leave the sweep no run."""
    merged = restrict(name, sweep, extra)
    return None if merged is None else [f"experiment={name}", *merged, *COMMON]


def commands(name: str, extra: Sequence[str] = ()) -> list[str]:
    """The shell commands that run a preset's sweeps, as a user would type them."""
    argv = (sweep_args(name, s, extra) for s in get(name).sweeps)
    return [shlex.join(["labelbench-run", "-m", *a]) for a in argv if a is not None]


def grid_params(name: str) -> dict[str, str]:
    """The preset YAML's `hydra.sweeper.params`, as written (key -> sweep text)."""
    import yaml

    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    node = yaml.safe_load(text) or {}
    params = ((node.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {str(k): str(v) for k, v in params.items()}


def tuning(name: str) -> dict | None:
    """The preset YAML's tuning settings (`hydra.sweeper`: trials, seeds ...) when it tunes
    (its defaults pick `hydra/sweeper: tune`): each run `expand` lists is then a study's
    cell, not a run. None for a preset of plain sweeps."""
    import yaml

    node = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text()) or {}
    picks = [d for d in node.get("defaults") or [] if isinstance(d, dict)]
    if not any(d.get("override /hydra/sweeper") == "tune" for d in picks):
        return None
    from labelbench.tune import TuneSweeperConf

    given = (node.get("hydra") or {}).get("sweeper") or {}
    return {k: given.get(k, getattr(TuneSweeperConf(), k)) for k in ("trials", "seeds", "untuned")}


def expand(name: str, extra: Sequence[str] = ()) -> list[list[str]]:
    """Every run of every sweep of the preset, as the override list Hydra composes it from
    (`experiment=<name>` first; a command-line key replaces the grid's, as in Hydra)."""
    return [run for sweep in get(name).sweeps for run in expand_sweep(name, sweep, extra)]


def expand_sweep(name: str, sweep: Sequence[str], extra: Sequence[str] = ()) -> list[list[str]]:
    """The runs of one sweep of the preset with the user's overrides (`restrict`), over the
    YAML's grid. Sweeps Hydra cannot expand without its loader (glob, ranges) raise
    PresetError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = restrict(name, sweep, extra)
    if given is None:
        return []
    parser = OverridesParser.create()
    cli = parser.parse_overrides(given)
    keys = {o.get_key_element() for o in cli}
    params = [f"{k}={v}" for k, v in grid_params(name).items() if k not in keys]
    axes = [
        [f"{o.get_key_element()}={v}" for v in _values(o)] if o.is_sweep_override() else [text]
        for text, o in zip([*given, *params], [*cli, *parser.parse_overrides(params)], strict=True)
    ]
    return [[f"experiment={name}", *combo] for combo in itertools.product(*axes)]


@dataclass
class PlannedRun:
    """One run of a preset: its overrides, run key, leaderboard names and training length."""

    overrides: list[str]
    key: str
    names: dict[str, str]
    steps: int | None  # optimizer steps of one fit (x rounds for active learning), if known
    recorded: bool
    seconds: float | None = None  # estimated compute, from the step-time table


def plan(name: str, store: Path, extra: Sequence[str] = ()) -> list[PlannedRun]:
    """Compose every run of the preset (as `labelbench-run` would) without building data:
    run keys (and whether `store` holds an ok record of each), names and training length."""
    from labelbench.config import choices_from, run_key
    from labelbench.overrides import Composer, check_run
    from labelbench.results.store import RecordStore

    records = RecordStore(store)
    times = step_seconds()
    out = []
    with Composer([]) as composer:
        for overrides in expand(name, extra):
            composed = check_run(composer, overrides)  # ConfigError: one line
            cfg = composed.cfg
            named = choices_from(cfg, {k: v for k, v in composed.choices.items() if v})
            named.update(regime=_label(cfg.regime, named["regime"]))
            named.update(budget=_label(cfg.budget, named["budget"]))
            key = run_key(cfg)
            steps = fit_steps(cfg)
            per_step = times.get((name, named["strategy"], named["model"]))
            out.append(
                PlannedRun(
                    overrides=overrides,
                    key=key,
                    names=named,
                    steps=steps,
                    recorded=records.is_ok(key),
                    seconds=per_step * steps if per_step is not None and steps else None,
                )
            )
    return out


def _label(node, fallback: str) -> str:
    """A regime's or budget's label as leaderboards show it ('symmetric(0.2)', '40'); the
    option's name when it cannot be built without its data (a label file not there yet)."""
    from hydra.utils import instantiate

    try:
        return str(instantiate(node).label())
    except Exception:
        return fallback


# Training-split sizes of the datasets whose presets train by epochs (the hub cards').
TRAIN_ITEMS = {"cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257}


def fit_steps(cfg) -> int | None:
    """Optimizer steps the run trains for: max_steps, or max_epochs x batches per epoch
    over the revealed items (known for the whole training split of a dataset in
    TRAIN_ITEMS, and for active learning's rounds); summed over an active-learning run's
    rounds. None when unknown."""
    strategy = cfg.strategy
    labels: list[int | None] = [None]  # revealed items per fit (None: the whole split)
    if "inner" in strategy and "query_size" in strategy:  # active learning: a fit per round
        total, initial, size = (
            int(cfg.budget.total),
            int(strategy.initial),
            int(strategy.query_size),
        )
        labels = [*range(initial, total, size), total]
        if strategy.get("rounds"):
            labels = labels[: int(strategy.rounds)]
        strategy = strategy.inner
    if strategy.get("max_steps"):
        return int(strategy.max_steps) * len(labels)
    epochs, batch = strategy.get("max_epochs"), strategy.get("batch_size")
    whole = TRAIN_ITEMS.get(str(cfg.dataset.get("name", "")).rsplit("/", 1)[-1])
    if not (epochs and batch) or (whole is None and None in labels):
        return None
    return sum(int(epochs) * -(-(n or whole) // int(batch)) for n in labels)


def step_seconds(path: Path | None = None) -> dict[tuple[str, str, str], float]:
    """(preset, strategy, model) -> measured seconds per optimizer step, from the table
    scripts/bench/step_time.py writes (COMPUTE); {} before it has been measured."""
    import csv

    path = path or COMPUTE
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {
            (r["preset"], r["strategy"], r["model"]): float(r["seconds_per_step"])
            for r in csv.DictReader(f)
        }


def step_device(path: Path | None = None) -> str | None:
    """Where the step times were measured (the table's device column), if measured."""
    import csv

    path = path or COMPUTE
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        return next((r["device"] for r in csv.DictReader(f)), None)


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 40 s, 8 min, 3.5 h, 1,200 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def dry_run_text(name: str, runs: Sequence[PlannedRun], extra: Sequence[str] = ()) -> str:
    """The runs, the commands and the compute they need, as `reproduce --dry-run` prints."""
    lines = [f"# {name}: {len(runs)} runs ({sum(r.recorded for r in runs)} already recorded)", ""]
    tune = tuning(name)
    if tune is not None:  # the runs listed are the studies' cells, at the tuning seed
        runs_each = len(tune["seeds"]) * (2 if tune["untuned"] else 1)
        lines[0] = (
            f"# {name}: tunes {len(runs)} cells, each {tune['trials']} trials, then"
            f" {runs_each} runs (seeds {tune['seeds']}: the best settings"
            f"{' and the defaults' if tune['untuned'] else ''}); trials already recorded are"
            " not run again. The cells, each trial's steps and its estimated compute:"
        )
    for r in runs:
        n = r.names
        est = duration(r.seconds) if r.seconds is not None else "not measured"
        head = "cell" if tune is not None else f"{'done' if r.recorded else 'todo'} {r.key}"
        lines.append(
            f"{head} {n['strategy']} {n['model']} {n['regime']} {n['budget']}"
            f" seed={_seed(r.overrides)} steps={r.steps if r.steps else '?'} est={est}"
        )
    if tune is None:
        todo = [r for r in runs if not r.recorded]
        known = [r.seconds for r in todo if r.seconds is not None]
        device = step_device() or "nowhere yet (scripts/bench/step_time.py measures it)"
        lines += [
            "",
            f"compute to go: {duration(sum(known))} for {len(known)} of {len(todo)} runs to do"
            f" (seconds per step measured on {device}, times the steps)",
        ]
    lines += ["", "commands:", *commands(name, extra)]
    return "\n".join(lines) + "\n"


def _seed(overrides: Sequence[str]) -> str:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "0")


def run_sweeps(name: str, store: Path, extra: Sequence[str] = ()) -> list[int]:
    """Run the preset's sweeps into `store`, one after another (no stdin); their exit codes.
    A failed run is recorded and the sweep goes on; a failed sweep does not stop the next."""
    binary = Path(sys.executable).parent / "labelbench-run"
    launcher = [str(binary)] if binary.exists() else [sys.executable, "-m", "labelbench.run"]
    codes = []
    for sweep in get(name).sweeps:
        argv = sweep_args(name, sweep, extra)
        if argv is None:  # the user's overrides leave this sweep no run
            continue
        cmd = [*launcher, "-m", *argv, f"paths.results_dir={store}"]
        print(
            "$", shlex.join(["labelbench-run", *cmd[len(launcher) :]]), file=sys.stderr, flush=True
        )
        codes.append(subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL).returncode)
    return codes


def board_args(name: str, store: Path, published: bool = True) -> list[str]:
    """`labelbench leaderboard` arguments of the preset's table (with its published CSV)."""
    args = ["leaderboard", shown(store), "--format", "md", *get(name).board]
    csv_path = published_csv(name) if published else None
    return [*args, "--published", shown(csv_path)] if csv_path else args


def page(
    name: str, store: Path, extra: Sequence[str] = (), title: str = "Reproduction",
    made_by: str = "labelbench reproduce",
) -> str:  # fmt: skip
    """The preset's page: what it is, date, commit, machine, the exact commands, then its
    leaderboard (ours beside the published numbers). Raises PresetError if the leaderboard
    cannot be made."""
    from labelbench.provenance import git_info

    args = board_args(name, store)
    proc = subprocess.run(
        [sys.executable, "-m", "labelbench.cli", *args],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        raise PresetError(f"{name}: leaderboard failed: {proc.stderr.strip()}")
    git = git_info()
    sha = (git["sha"] or "unknown")[:10] + (" (with uncommitted changes)" if git["dirty"] else "")
    shown_cmds = [
        *commands(name, [*extra, f"paths.results_dir={shown(store)}"]),
        shlex.join(["labelbench", *args]),
    ]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (
        f"# {title}: {name}\n\n{get(name).about}\n\n"
        f"Produced on {datetime.date.today().isoformat()} at commit {sha} by `{made_by}` "
        f"({os.cpu_count()} CPU cores, {platform.python_implementation()} "
        f"{platform.python_version()}, OMP_NUM_THREADS={threads}), that is:\n\n"
        "```bash\n" + "\n".join(shown_cmds) + "\n```\n\n" + proc.stdout
    )


def shown(path: Path) -> str:
    """A path as the commands show it: relative to the project when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
