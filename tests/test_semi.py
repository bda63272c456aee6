"""Semi-supervised strategies: real runs on tiny data, the hidden-label contract, the pieces
(EMA, masks, class-wise thresholds, ramps) on hand-made tensors, exact resume, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_hidden_labels_unused, assert_resumes_exactly, run_here
from labelbench.config import ConfigError, run_key
from labelbench.data.sources import Synthetic
from labelbench.labels import Clean, Total, reveal
from labelbench.models import takes_images
from labelbench.run import build, run
from labelbench.strategies.augment import ImageAugment, VectorAugment
from labelbench.strategies.ema import EMA
from labelbench.strategies.flexmatch import flexmatch_thresholds
from labelbench.strategies.label_propagation import certainty, knn_graph, propagate
from labelbench.strategies.pseudo_label import PseudoLabelModule
from labelbench.strategies.semi import (
    confidence_mask,
    linear_rampup,
    masked_cross_entropy,
    sigmoid_rampup,
)

# Network strategies that use the unlabeled pool; SHORT keeps each run to a few seconds.
SEMI = ["pseudo_label", "mean_teacher", "fixmatch", "flexmatch"]
DEEP = [*SEMI, "self_training", "label_propagation"]
SHORT = ["strategy.max_steps=60", "strategy.eval_every=20"]
# The unlabeled loss must act within SHORT: no warm-up, no ramp.
EARLY = {
    "pseudo_label": [
        "strategy.warmup_steps=0",
        "strategy.rampup_steps=0",
        "strategy.threshold=0.5",
    ],
    "mean_teacher": ["strategy.rampup_steps=0", "strategy.unlabeled_weight=1.0"],
    "fixmatch": ["strategy.threshold=0.5"],
    "flexmatch": ["strategy.threshold=0.5"],
    "self_training": ["strategy.rounds=1", "strategy.threshold=0.5"],
    "label_propagation": [],
}
SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "budget.total=40", "logger=none"]
# Which items a run reveals is settled before any training: a few steps do for tests of that.
FEW_STEPS = ["strategy.max_steps=10", "strategy.eval_every=5"]
ERROR_PREFIX = "labelbench-run: error:"


def _overrides(strategy: str, *extra: str) -> list[str]:
    return [*SYNTHETIC, f"strategy={strategy}", *SHORT, *EARLY[strategy], *extra]


# --- real runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", DEEP)
def test_runs_end_to_end_on_synthetic(strategy, compose_fast, tmp_path):
    record = run(*compose_fast(*_overrides(strategy), fast=False))
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == strategy
    assert record.metrics["test/acc"] > 0.4, record.metrics  # 4 classes: chance is 0.25
    assert record.labels["count"] == 40
    if strategy in SEMI:
        # include_labeled (the default): the unlabeled set is the whole pool
        pool = Synthetic(n_samples=400).load(record.split_seed).split.pool
        assert record.metrics["fit/unlabeled"] == len(pool)
        assert record.metrics["fit/steps"] == 60
    if strategy == "self_training":
        assert record.metrics["fit/rounds"] == 1
        assert record.metrics["fit/pseudo_labeled"] > 0
    if strategy == "label_propagation":
        assert record.metrics["fit/propagated"] > 0
        assert 0 < record.metrics["fit/mean_certainty"] <= 1


def test_include_labeled_switch(compose_fast):
    on = run(*compose_fast(*_overrides("fixmatch", *FEW_STEPS), fast=False))
    off = run(*compose_fast(
        *_overrides("fixmatch", "strategy.include_labeled=false", *FEW_STEPS), fast=False
    ))  # fmt: skip
    assert on.metrics["fit/unlabeled"] == off.metrics["fit/unlabeled"] + 40
    assert on.labels["indices"] == off.labels["indices"]


@pytest.mark.parametrize(("model", "views"), [("cnn_small", ImageAugment), ("mlp", VectorAugment)])
def test_fixmatch_on_digit_images_augments_what_the_network_sees(model, views, compose_fast):
    """The image path (reflect-padded crops, RandAugment and Cutout on 8x8 digits) for a
    CNN; feature noise and masking for an MLP, which flattens the pixels."""
    cfg, _ = compose_fast(
        "strategy=fixmatch",
        f"model={model}",
        "budget.total=40",
        "strategy.max_steps=40",
        "strategy.eval_every=20",
        "strategy.mu=2",
        "logger=none",
        fast=False,
    )
    parts = build(cfg, run_key(cfg))
    task = parts.source.load(0)
    pool, _ = reveal(task, parts.regime, parts.budget, seed=0, split_seed=0)
    predictor = parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    # what the shared loop binds for this model (LightningStrategy.train)
    assert type(parts.strategy.augment.bind(task.view(), takes_images(parts.model))) is views
    test = task.split.test
    accuracy = (predictor.predict_proba(task.x[test]).argmax(1) == task.y[test]).mean()
    assert accuracy > 0.3  # 10 classes, 40 steps: well above chance


def test_ssl_sees_the_revealed_items_supervised_sees(compose_fast):
    common = ["budget.total=30", "seed=3"]
    supervised = run(*compose_fast(*SYNTHETIC, "strategy=supervised", *FEW_STEPS, *common,
                                   fast=False))  # fmt: skip
    for strategy in ("fixmatch", "label_propagation"):
        other = run(*compose_fast(*_overrides(strategy, *common, *FEW_STEPS), fast=False))
        assert other.labels["indices"] == supervised.labels["indices"]


@pytest.mark.parametrize("strategy", DEEP)
def test_hidden_pool_labels_change_nothing(strategy, compose_fast):
    """Pseudo-labels, propagated labels and consistency targets come from inputs and
    revealed labels only: scrambling the true labels of the unrevealed pool leaves the
    fitted model's predictions bit-identical (CPU). Random reveal order, as in
    test_labels: the class-balanced order reads pool labels by design."""
    cfg, _ = compose_fast(*_overrides(strategy, "budget.balanced=false"), fast=False)
    assert_hidden_labels_unused(cfg)


@pytest.mark.parametrize("strategy", ["fixmatch", "mean_teacher", "flexmatch", "self_training"])
def test_crashed_fit_resumes_exactly(strategy, compose_fast, tmp_path, monkeypatch):
    """A crash mid-fit and a relaunch give the metrics of an uninterrupted fit, bit for bit:
    the unlabeled stream, the augmentation generator, the EMA teacher, FlexMatch's
    pseudo-label memory and self-training's rounds are all in the checkpoint."""
    resumable = _overrides(strategy, "strategy.patience=0", "checkpoint.every_steps=20")
    whole = run(*compose_fast(*resumable, fast=False))
    assert whole.status == "ok", whole.error

    cfg, choices = compose_fast(*resumable, fast=False)
    crash_at = {"self_training": 2}  # the round to crash in (self-training fits 2 models)
    fits = {"n": 0, "last": None}

    def crashes(module) -> bool:
        if fits["last"] is not module:
            fits["n"], fits["last"] = fits["n"] + 1, module
        return fits["n"] >= crash_at.get(strategy, 1) and module.steps_done >= 40

    assert_resumes_exactly(cfg, choices, whole, monkeypatch, tmp_path, crashes)


# --- the pieces, by hand ---------------------------------------------------------------------


def test_ema_by_hand():
    student = nn.Linear(2, 1)
    with torch.no_grad():
        student.weight.copy_(torch.tensor([[1.0, 2.0]]))
        student.bias.fill_(0.0)
    ema = EMA(student, decay=0.75)  # starts as a copy of the student
    with torch.no_grad():
        student.weight.copy_(torch.tensor([[3.0, -2.0]]))
        student.bias.fill_(10.0)
    ema.update(student, step=100)  # past the warm-up: decay 0.75
    assert torch.allclose(ema.average.weight, torch.tensor([[1.5, 1.0]]))  # .75*1+.25*3, .75*2-.5
    assert torch.allclose(ema.average.bias, torch.tensor([2.5]))
    assert torch.equal(student.weight, torch.tensor([[3.0, -2.0]]))  # the student is untouched
    ema.update(student, step=1)  # the warm-up: decay min(0.75, 1 - 1/2) = 0.5
    assert torch.allclose(ema.average.weight, torch.tensor([[2.25, -0.5]]))
    assert not ema.average.weight.requires_grad


def test_ema_copies_buffers():
    student = nn.BatchNorm1d(3)
    ema = EMA(student, decay=0.9)
    student.running_mean.fill_(4.0)
    student.num_batches_tracked.fill_(9)
    ema.update(student, step=50)
    assert torch.equal(ema.average.running_mean, torch.full((3,), 4.0))
    assert ema.average.num_batches_tracked.item() == 9


def test_confidence_mask_by_hand():
    confidence = torch.tensor([0.3, 0.95, 0.951, 1.0])
    assert confidence_mask(confidence, 0.95).tolist() == [0.0, 1.0, 1.0, 1.0]
    per_row = torch.tensor([0.2, 0.99, 0.99, 0.5])
    assert confidence_mask(confidence, per_row).tolist() == [1.0, 0.0, 0.0, 1.0]


def test_masked_cross_entropy_averages_over_all_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 0])
    mask = torch.tensor([1.0, 0.0, 1.0])
    kept = -math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(0.5)
    assert masked_cross_entropy(logits, targets, mask).item() == pytest.approx(kept / 3)
    assert masked_cross_entropy(logits, targets, torch.zeros(3)).item() == 0.0


def test_flexmatch_thresholds_by_hand():
    # 6 items: class 0 committed to 3 times, class 1 once, class 2 never, 2 not yet.
    selected = torch.tensor([0, 0, 0, 1, -1, -1])
    no_warmup = flexmatch_thresholds(selected, 3, 0.9, warmup=False)
    beta = torch.tensor([1.0, 1 / 3, 0.0])  # sigma / max sigma
    assert torch.allclose(no_warmup, 0.9 * beta / (2 - beta))
    assert no_warmup[0].item() == pytest.approx(0.9)  # the best-learnt class keeps the threshold
    # with warm-up the denominator is max(max sigma, unused) = max(3, 2) = 3: the same here
    assert torch.allclose(flexmatch_thresholds(selected, 3, 0.9, warmup=True), no_warmup)
    # mostly unused: every threshold stays low
    early = torch.tensor([0, 1, -1, -1, -1, -1, -1, -1])
    beta = torch.tensor([1 / 6, 1 / 6, 0.0])
    assert torch.allclose(flexmatch_thresholds(early, 3, 0.9), 0.9 * beta / (2 - beta))
    # nothing selected yet and no warm-up: zero thresholds rather than 0/0
    assert flexmatch_thresholds(torch.full((4,), -1), 3, 0.9, warmup=False).tolist() == [0.0] * 3


def test_ramps_by_hand():
    assert [linear_rampup(s, 4) for s in (0, 1, 4, 9)] == [0.0, 0.25, 1.0, 1.0]
    assert linear_rampup(0, 0) == 1.0
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(10, 10) == sigmoid_rampup(50, 10) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0


def test_pseudo_label_weight_schedule():
    module = PseudoLabelModule.__new__(PseudoLabelModule)  # only the schedule's fields
    module.unlabeled_weight, module.warmup_steps, module.rampup_steps = 2.0, 10, 4
    weights = []
    for step in (0, 9, 10, 11, 12, 14, 100):
        module.steps_done = step
        weights.append(module.weight())
    assert weights == [0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 2.0]


def test_label_propagation_spreads_along_the_graph():
    """Two well-separated chains, one labeled end each: every node takes its chain's class."""
    chain = np.arange(10, dtype=float)[:, None] * np.array([[1.0, 0.0]])
    x = np.concatenate([chain, chain + np.array([0.0, 100.0])])
    seeds = np.zeros((20, 2))
    seeds[0, 0] = seeds[10, 1] = 1.0
    scores = propagate(knn_graph(x, 2), seeds, alpha=0.99, max_iter=200)
    assert (scores.argmax(axis=1) == np.repeat([0, 1], 10)).all()
    assert certainty(np.array([[1.0, 0.0], [0.5, 0.5]])) == pytest.approx([1.0, 0.0])


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy=fixmatch", "strategy.threshold=0"], "threshold=0 is outside (0, 1]"),
        (["strategy=pseudo_label", "strategy.threshold=1.5"], "threshold=1.5 is outside (0, 1]"),
        (
            ["strategy=flexmatch", "strategy.mu=0"],
            "mu=0 must be a positive integer (unlabeled items per labeled one)",
        ),
        (["strategy=mean_teacher", "strategy.ema_decay=-0.1"], "ema_decay=-0.1 is outside [0, 1)"),
        (["strategy=mean_teacher", "strategy.ema_decay=1.0"], "ema_decay=1.0 is outside [0, 1)"),
        (["strategy=self_training", "strategy.rounds=-1"], "rounds=-1 must be a non-negative"),
        (["strategy=label_propagation", "strategy.alpha=1"], "alpha=1 is outside (0, 1)"),
        (["strategy=pseudo_label", "strategy.warmup_steps=-5"], "warmup_steps=-5"),
        (["strategy=fixmatch", "strategy.unlabeled_weight=-1"], "unlabeled_weight=-1"),
    ],
)
def test_bad_arguments_refused_before_training(overrides, message, compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, *overrides, fast=False)
    with pytest.raises(ConfigError, match=r"^strategy[.:]") as info:
        build(cfg, run_key(cfg))
    assert message in str(info.value)


def test_image_augment_on_vectors_refused_before_training(compose_fast, tmp_path):
    cfg, choices = compose_fast(*_overrides("fixmatch"), "strategy/augment=image", fast=False)
    with pytest.raises(ConfigError, match=r"input_shape=\(20,\) .* is not an image"):
        run(cfg, choices)
    assert not (tmp_path / "results" / "runs").exists()


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["strategy=fixmatch", "strategy.threshold=1.2"], ["strategy.threshold=1.2", "(0, 1]"]),
        (["strategy=fixmatch", "strategy.mu=0"], ["strategy.mu=0", "positive integer"]),
        (["strategy=mean_teacher", "strategy.ema_decay=1"], ["ema_decay=1", "[0, 1)"]),
        (["strategy=label_propagation", "strategy.k=5000"], ["k=5000", "larger than the pool"]),
    ],
    ids=["threshold", "mu", "ema_decay", "knn-k"],
)
def test_cli_refuses_bad_ssl_settings(overrides, fragments, tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run", *SYNTHETIC, *overrides, f"paths.results_dir={results}", cwd=tmp_path
    )
    detail = f"rc={proc.returncode}\n{proc.stderr}"
    assert proc.returncode == 2, detail
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, detail
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in proc.stderr
    assert not list(results.glob("runs/*.json"))


def test_label_propagation_k_bound_is_the_pool(compose_fast):
    cfg, _ = compose_fast(*_overrides("label_propagation"), fast=False)
    parts = build(cfg, run_key(cfg))
    task = parts.source.load(0)
    pool, _ = reveal(task, Clean(), Total(40), seed=0, split_seed=0)
    nodes = len(pool) + len(pool.unlabeled)
    parts.strategy.k = nodes - 1
    parts.strategy.check(pool, task.view())
    parts.strategy.k = nodes
    with pytest.raises(ConfigError, match=f"k={nodes} is larger than the pool"):
        parts.strategy.check(pool, task.view())
