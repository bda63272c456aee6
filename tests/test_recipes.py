"""The shared loop's recipe settings (issue 16): learning-rate schedules against their
formulas, EMA evaluation, with-replacement labeled batches, training length in epochs,
selection of the last weights without a validation split, optimizer groups, gradient
clipping, exact resume with all of it on, and one-line refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_resumes_exactly, refusal_lines
from labelbench.config import ConfigError, run_key
from labelbench.run import build, run
from labelbench.strategies.lightning import MinibatchStream
from labelbench.strategies.schedules import Constant, Cosine, Step, steps_of

SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "budget.total=40", "logger=none"]
SHORT = ["strategy.max_steps=60", "strategy.eval_every=20"]


# -- schedules against their formulas ------------------------------------------------------


def test_constant_with_warmup():
    s = Constant(warmup=10).bind(100)
    assert [s.factor(k) for k in (0, 5, 10, 99)] == [0.0, 0.5, 1.0, 1.0]
    assert Constant().constant and not Constant(warmup=10).constant


def test_cosine_is_fixmatchs_formula():
    K = 2**20
    s = Cosine().bind(K)  # cycles 7/16, final 0, no warm-up: FixMatch / USB
    for k in (0, 1, 12345, K // 2, K - 1):
        assert s.factor(k) == pytest.approx(math.cos(7 * math.pi * k / (16 * K)), abs=1e-12)
    assert s.factor(K) == pytest.approx(math.cos(7 * math.pi / 16))  # lr0 * 0.195 at the end


def test_cosine_with_warmup_floor_and_half_cycle():
    s = Cosine(warmup=0.1, cycles=0.5, final=0.2).bind(1000)  # warm-up: 100 steps
    assert s.warmup_steps == 100
    assert s.factor(50) == pytest.approx(0.5)
    assert s.factor(100) == pytest.approx(1.0)
    assert s.factor(550) == pytest.approx(0.2 + 0.8 * math.cos(math.pi * 0.5 * 0.5))
    assert s.factor(1000) == pytest.approx(0.2)


def test_step_schedule_in_steps_and_fractions():
    s = Step(milestones=[0.5, 0.75], gamma=0.1).bind(400)
    assert s.milestone_steps == [200, 300]
    assert [s.factor(k) for k in (0, 199, 200, 299, 300, 399)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    assert Step(milestones=[30, 60], gamma=0.5).bind(100).factor(60) == pytest.approx(0.25)


def test_lengths_in_steps_or_fractions():
    assert steps_of("x", 0.4, 1500) == 600
    assert steps_of("x", 250, 1500) == 250
    assert steps_of("x", 0, 1500) == 0
    with pytest.raises(ConfigError, match=r"^x=2.5 must be a whole number"):
        steps_of("x", 2.5, 1500)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Constant(warmup=100).bind(100), r"^warmup=100 \(100 steps\) is not shorter than"),
        (lambda: Cosine(warmup=1.5), r"^warmup=1.5"),
        (lambda: Step(milestones=[0.75, 0.5]).bind(100), r"^milestones=\[0.75, 0.5\] must be strictly increasing"),
        (lambda: Step(milestones=[50, 150]).bind(100), r"^milestones=\[50, 150\] must fall inside"),
        (lambda: Cosine(cycles=0), r"^cycles=0 is outside \(0, 1\]"),
    ],
)  # fmt: skip
def test_bad_schedules_are_one_line(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


# -- the loop ---------------------------------------------------------------------------------


def test_with_replacement_batches_are_full_from_three_labels_and_seeded():
    def draws(seed):
        stream = MinibatchStream(3, 64, seed, torch.device("cpu"), replacement=True)
        return [next(stream) for _ in range(5)]

    batches = draws(7)
    assert all(len(b) == 64 and b.min() >= 0 and b.max() <= 2 for b in batches)
    assert all(torch.equal(a, b) for a, b in zip(batches, draws(7), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(batches, draws(8), strict=True))
    # resumable: a stream restored mid-way draws what the unbroken one draws
    stream = MinibatchStream(3, 64, 7, torch.device("cpu"), replacement=True)
    next(stream), next(stream)
    other = MinibatchStream(3, 64, 0, torch.device("cpu"), replacement=True)
    other.load_state_dict(stream.state_dict())
    assert torch.equal(next(other), batches[2])


def fit(compose_fast, *overrides):
    cfg, choices = compose_fast(*SYNTHETIC, *overrides, fast=False)
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    return record


def test_ema_weights_are_what_is_evaluated(compose_fast):
    """With ema_decay the predictor holds the EMA network (an average over steps, kept
    without gradients), not the network of the last step."""
    from conftest import revealed

    cfg, _ = compose_fast(*SYNTHETIC, *SHORT, "strategy.ema_decay=0.9", fast=False)
    parts, task, pool = revealed(cfg)
    predictor = parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    assert not any(p.requires_grad for p in predictor.net.parameters())
    cfg, _ = compose_fast(*SYNTHETIC, *SHORT, fast=False)
    parts, task, pool = revealed(cfg)
    predictor = parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    assert all(p.requires_grad for p in predictor.net.parameters())


def test_ema_run_differs_from_plain_and_resumes_exactly(compose_fast, monkeypatch, tmp_path):
    """Resume in the middle of a cosine schedule with EMA and with-replacement batches ends
    bit for bit like an uninterrupted fit (CPU)."""
    recipe = [
        *SHORT,
        "strategy.patience=0",
        "strategy/schedule=cosine",
        "strategy.ema_decay=0.9",
        "strategy.labeled_sampling=with_replacement",
        "strategy.grad_clip=5.0",
        "strategy.no_decay_norm_bias=true",
        "strategy.optimizer.weight_decay=0.01",
        "checkpoint.every_steps=20",
    ]
    cfg, choices = compose_fast(*SYNTHETIC, *recipe, fast=False)
    whole = run(cfg, choices)
    assert whole.status == "ok", whole.error
    plain = fit(compose_fast, *SHORT, "strategy.patience=0")
    assert whole.metrics["test/nll"] != plain.metrics["test/nll"]
    cfg.paths.results_dir = str(tmp_path / "again")
    assert_resumes_exactly(cfg, choices, whole, monkeypatch, tmp_path, lambda m: m.steps_done == 40)


def test_lr_follows_the_schedule_and_is_logged(compose_fast, tmp_path):
    cfg, choices = compose_fast(
        *[s for s in SYNTHETIC if s != "logger=none"], *SHORT, "logger=csv",
        "strategy/schedule=step", "strategy.schedule.milestones=[30]", "strategy.patience=0",
        fast=False,
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    import csv

    (log,) = (tmp_path / "results").rglob("metrics.csv")
    rows = [r for r in csv.DictReader(log.open()) if r.get("train/lr")]
    lr = {int(r["step"]): float(r["train/lr"]) for r in rows}
    assert lr[20] == pytest.approx(1e-3)  # before the milestone
    assert lr[40] == pytest.approx(1e-4) and lr[60] == pytest.approx(1e-4)


def test_max_epochs_counts_passes_over_the_labeled_items(compose_fast):
    record = fit(
        compose_fast, "train.max_steps=null", "train.max_epochs=3", "strategy.batch_size=16",
        "strategy.eval_every=5", "strategy.patience=0",
    )  # fmt: skip
    assert record.metrics["fit/steps"] == 3 * math.ceil(40 / 16)


def test_val_free_run_selects_the_last_weights(compose_fast, tmp_path):
    record = fit(
        compose_fast, *SHORT, "dataset.val_fraction=0", "strategy.selection=last",
        "strategy.patience=0",
    )  # fmt: skip
    assert record.config["strategy"]["selection"] == "last"
    assert record.labels["val_count"] == 0
    assert not any(k.startswith(("fit/best", "test_last/")) for k in record.metrics)
    assert record.metrics["fit/steps"] == 60


def test_best_val_also_reports_the_last_weights(compose_fast):
    # a fast learning rate: some seed's best validation step comes before its last
    for seed in range(4):
        record = fit(compose_fast, "strategy.max_steps=200", "strategy.eval_every=10",
                     "strategy.patience=0", "strategy.optimizer.lr=0.05", f"seed={seed}")  # fmt: skip
        if record.metrics["fit/best_step"] != record.metrics["fit/steps"]:
            break
    else:
        pytest.fail("no run with a best step before the last")
    assert set(record.metrics) >= {"test_last/acc", "test_last/nll"}
    assert record.directions["test_last/acc"] == "max"


def test_norm_and_bias_parameters_get_no_weight_decay():
    from labelbench.strategies.lightning import LabelModule, Recipe

    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    data = {"train_y": torch.zeros(4, dtype=torch.long)}
    module = LabelModule(
        net, lambda groups: torch.optim.SGD(groups, lr=0.1, weight_decay=5e-4), data,
        max_steps=10, eval_every=5, batch_size=2, seed=0, recipe=Recipe(no_decay_norm_bias=True),
    )  # fmt: skip
    decay, no_decay = module.configure_optimizers().param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2}  # the two Linear weights
    assert len(no_decay["params"]) == 4  # two biases, the norm's weight and bias
    assert decay["initial_lr"] == no_decay["initial_lr"] == 0.1


def test_grad_clip_bounds_the_update(compose_fast):
    free = fit(
        compose_fast, *SHORT, "strategy.patience=0", "strategy.optimizer._target_=torch.optim.SGD"
    )
    clipped = fit(
        compose_fast, *SHORT, "strategy.patience=0", "strategy.optimizer._target_=torch.optim.SGD",
        "strategy.grad_clip=1e-6",
    )  # fmt: skip
    # with every step's gradient norm clipped to 1e-6, SGD barely moves from the init
    assert clipped.metrics["test/nll"] == pytest.approx(math.log(4), abs=0.1)
    assert free.metrics["test/nll"] < clipped.metrics["test/nll"] - 0.1


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["strategy.ema_decay=1.0"], "strategy.ema_decay=1.0 is outside [0, 1)"),
        (["strategy/schedule=cosine", "strategy.schedule.warmup=2000"],
         "strategy.schedule.warmup=2000 (2000 steps) is not shorter than the training (1500 optimizer steps)"),
        (["strategy/schedule=step", "strategy.schedule.milestones=[0.9,0.5]"],
         "strategy.schedule.milestones=[0.9, 0.5] must be strictly increasing (as steps: [1350, 750])"),
        (["train.max_epochs=10"],
         "strategy.max_steps=1500 and max_epochs=10: set exactly one training length (e.g. train.max_steps=null train.max_epochs=200)"),
        (["dataset.val_fraction=0"],
         "strategy.selection=best_val needs validation labels but the split has none (dataset.val_fraction=0); use strategy.selection=last"),
        (["strategy.labeled_sampling=bootstrap"],
         "strategy.labeled_sampling='bootstrap' is not one of epochs, with_replacement"),
    ],
)  # fmt: skip
def test_bad_recipes_refused_in_one_line(compose_fast, overrides, line):
    """In process (the CLI prints the same message after `labelbench-run: error:`; the
    unknown-schedule test below goes through it): refused before training, no record."""
    cfg, choices = compose_fast(*SYNTHETIC, *overrides, fast=False)
    with pytest.raises(ConfigError) as info:
        run(cfg, choices)
    assert str(info.value) == line
    assert not list(Path(cfg.paths.results_dir).glob("runs/*.json"))


def test_unknown_schedule_is_one_line(tmp_path):
    (line,) = refusal_lines(tmp_path, "strategy/schedule=cosin")
    assert "did you mean cosine" in line


def test_mean_teacher_defaults_are_usbs_and_use_the_shared_ema(compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, "strategy=mean_teacher", fast=False)
    usb = {"mu": 1, "unlabeled_weight": 50, "ema_decay": 0.999, "rampup_steps": 0.4,
           "ramp": "linear"}  # semilearn meanteacher: uratio, lambda_u, ema_m, unsup_warmup  # fmt: skip
    assert {k: cfg.strategy[k] for k in usb} == usb
    strategy = build(cfg, run_key(cfg)).strategy
    assert (strategy.recipe.ema_decay, strategy.rampup_steps) == (0.999, 0.4)
    record = fit(compose_fast, "strategy=mean_teacher", *SHORT)
    assert np.isfinite(record.metrics["test/acc"])
    with pytest.raises(ConfigError, match="mean teacher's teacher is the EMA"):
        cfg, _ = compose_fast(
            *SYNTHETIC, "strategy=mean_teacher", "strategy.ema_decay=null", fast=False
        )
        build(cfg, run_key(cfg))
