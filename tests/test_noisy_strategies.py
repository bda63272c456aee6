"""Strategies for noisy single labels: robust losses by hand, co-teaching, ELR, the
confident-learning filter and distillation on tiny noisy data, exact resume, bad input."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_resumes_exactly, refusal_lines, revealed
from labelbench.config import ConfigError, run_key
from labelbench.run import build, run
from labelbench.strategies.cl_filter import CLFilter
from labelbench.strategies.coteaching import CoTeaching, CoTeachingModule, small_loss
from labelbench.strategies.distill import Distill, soften
from labelbench.strategies.elr import ELR, elr_penalty, elr_update
from labelbench.strategies.losses import (
    GCE,
    MAE,
    SCE,
    Bootstrap,
    CrossEntropy,
    LabelSmoothing,
)

NOISY = ["dataset=synthetic", "dataset.n_samples=400", "regime=symmetric", "regime.rate=0.2",
         "budget=total", "budget.total=120", "logger=none"]  # fmt: skip
SHORT = ["strategy.max_steps=40", "strategy.eval_every=20"]
EXTRA = {
    "coteaching": ["strategy.ramp_steps=20"],
    "elr": [],
    "cl_filter": ["strategy.cv_max_steps=40"],
    "distill": ["strategy.teachers=2"],
    "label_smoothing": [],
}
LOSSES = ["ce", "gce", "sce", "mae", "bootstrap", "label_smoothing"]
ERROR_PREFIX = "labelbench-run: error:"
OPTIMIZER = functools.partial(torch.optim.Adam, lr=1e-3)


def _overrides(strategy: str, *extra: str) -> list[str]:
    return [*NOISY, f"strategy={strategy}", *SHORT, *EXTRA.get(strategy, []), *extra]


# --- real runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(EXTRA))
def test_strategy_runs_on_noisy_labels(strategy, compose_fast):
    record = run(*compose_fast(*_overrides(strategy), fast=False))
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == strategy
    assert 0.1 < record.labels["noise_rate"] < 0.3  # the pool has exactly 20%; a sample of it
    assert record.metrics["test/acc"] > 0.4, record.metrics  # 4 classes: chance is 0.25
    if strategy == "cl_filter":
        assert 0 < record.metrics["fit/removed"] < 120
        assert record.metrics["fit/kept"] == 120 - record.metrics["fit/removed"]
    if strategy == "distill":
        assert record.metrics["fit/teachers"] == 2
        assert record.metrics["fit/distilled"] > 120  # the whole pool (unlabeled: true)


def test_distill_from_an_oracle_teacher_is_a_marked_upper_bound(compose_fast, monkeypatch):
    """teacher_labels=oracle: the teachers learn the true labels of the whole pool (handed
    over by the run, not reachable from the LabelPool), and the record says so."""
    seen = {}
    tensors = Distill.tensors

    def spy(self, pool, task):
        seen.setdefault("pools", []).append(pool)
        return tensors(self, pool, task)

    monkeypatch.setattr(Distill, "tensors", spy)
    cfg, choices = compose_fast(
        *_overrides("distill", "strategy.teacher_labels=oracle"), fast=False
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == "distill[oracle]" and record.labels["upper_bound"]
    revealed, oracle = seen["pools"]
    task = build(cfg, run_key(cfg)).source.load(cfg.split_seed)
    assert len(revealed) == 120 and np.array_equal(np.sort(oracle.indices), task.split.pool)
    assert np.array_equal(oracle.labels, task.y[oracle.indices])  # true labels, no noise
    assert not np.array_equal(revealed.labels, task.y[revealed.indices])  # 20% noisy
    plain = run(*compose_fast(*_overrides("distill"), fast=False))
    assert "upper_bound" not in plain.labels and plain.choices["strategy"] == "distill"


def test_oracle_teacher_outside_a_run_is_refused(compose_fast):
    cfg, _ = compose_fast(*_overrides("distill", "strategy.teacher_labels=oracle"), fast=False)
    parts, task, pool = revealed(cfg)
    assert parts.strategy.upper_bound and parts.strategy.oracle_pool is None
    with pytest.raises(ValueError, match="teacher_labels=oracle needs the run"):
        parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    with pytest.raises(
        ConfigError, match="teacher_labels='teacher' is not one of revealed, oracle"
    ):
        Distill(OPTIMIZER, teacher_labels="teacher")


@pytest.mark.parametrize("loss", LOSSES)
def test_supervised_with_each_loss(loss, compose_fast):
    cfg, choices = compose_fast(*_overrides("supervised", f"strategy/loss={loss}"), fast=False)
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == (
        "supervised" if loss == "ce" else f"supervised[loss={loss}]"
    )
    assert record.metrics["test/acc"] > 0.4, record.metrics


def test_loss_arguments_from_the_command_line(compose_fast):
    cfg, _ = compose_fast(*_overrides("supervised", "strategy/loss=gce", "strategy.loss.q=0.5"))
    strategy = build(cfg, run_key(cfg)).strategy
    assert isinstance(strategy.loss, GCE) and strategy.loss.q == 0.5
    cfg, _ = compose_fast(*_overrides("label_smoothing"))
    strategy = build(cfg, run_key(cfg)).strategy
    assert isinstance(strategy.loss, LabelSmoothing) and strategy.loss.epsilon == 0.1


@pytest.mark.parametrize("strategy", ["coteaching", "elr"])
def test_crashed_fit_resumes_exactly(strategy, compose_fast, tmp_path, monkeypatch):
    """Both co-teaching networks (and their optimizer state) and ELR's per-item targets are
    in the checkpoint: a crash and a relaunch give an uninterrupted fit's metrics."""
    resumable = _overrides(
        strategy, "strategy.max_steps=60", "strategy.patience=0", "checkpoint.every_steps=20"
    )
    whole = run(*compose_fast(*resumable, fast=False))
    assert whole.status == "ok", whole.error

    cfg, choices = compose_fast(*resumable, fast=False)
    assert_resumes_exactly(
        cfg, choices, whole, monkeypatch, tmp_path, crashes=lambda module: module.steps_done >= 40
    )


def test_cl_filter_removes_mostly_wrong_labels(compose_fast):
    """On well-separated classes with 30% symmetric noise, most flagged labels are wrong
    and most wrong labels are flagged (true labels used here to score, never to fit)."""
    cfg, _ = compose_fast(
        "dataset=synthetic",
        "dataset.n_samples=400",
        "dataset.class_sep=3.0",
        "regime=symmetric",
        "regime.rate=0.3",
        "budget=full",
        "strategy=cl_filter",
        "strategy.cv_max_steps=100",
        *SHORT,
        "logger=none",
        fast=False,
    )
    parts, task, pool = revealed(cfg)
    predictor = parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    wrong = set(pool.indices[pool.labels != task.y[pool.indices]].tolist())
    removed = set(parts.strategy.removed_.tolist())
    assert predictor.fit_info["removed"] == len(removed)
    precision, recall = len(removed & wrong) / len(removed), len(removed & wrong) / len(wrong)
    assert precision > 0.8 and recall > 0.6, (precision, recall, len(removed), len(wrong))


def test_cl_filter_refuses_classes_with_fewer_labels_than_folds(compose_fast):
    cfg, _ = compose_fast(
        "dataset=synthetic", "budget=total", "budget.total=12", "strategy=cl_filter", fast=False
    )
    parts, task, pool = revealed(cfg)
    assert pool.class_counts().tolist() == [3, 3, 3, 3]
    parts.strategy.folds = 3
    parts.strategy.check(pool, task.view())
    parts.strategy.folds = 4
    with pytest.raises(ConfigError, match=r"^folds=4 needs 4 revealed labels of every class"):
        parts.strategy.check(pool, task.view())


# --- the losses, by hand -----------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
TARGETS = torch.tensor([0, 2])


def _p(row: list[float]) -> list[float]:
    z = sum(math.exp(v) for v in row)
    return [math.exp(v) / z for v in row]


P = [_p(r) for r in LOGITS.tolist()]
P_Y = [P[0][0], P[1][2]]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (CrossEntropy(), _mean(-math.log(p) for p in P_Y)),
        (GCE(q=0.5), _mean((1 - p**0.5) / 0.5 for p in P_Y)),
        (GCE(q=1.0), _mean(1 - p for p in P_Y)),
        (SCE(alpha=0.1, beta=1.0), _mean(0.1 * -math.log(p) + 4 * (1 - p) for p in P_Y)),
        (MAE(), _mean(2 * (1 - p) for p in P_Y)),
        (
            Bootstrap(beta=0.8),
            _mean(
                0.8 * -math.log(p) + 0.2 * -sum(q * math.log(q) for q in row)
                for p, row in zip(P_Y, P, strict=True)
            ),
        ),
        (
            Bootstrap(beta=0.8, hard=True),
            _mean(
                0.8 * -math.log(p) + 0.2 * -math.log(max(row))
                for p, row in zip(P_Y, P, strict=True)
            ),
        ),
        (
            LabelSmoothing(epsilon=0.3),
            _mean(
                0.7 * -math.log(p) + 0.3 * _mean(-math.log(q) for q in row)
                for p, row in zip(P_Y, P, strict=True)
            ),
        ),
    ],
    ids=["ce", "gce", "gce-q1", "sce", "mae", "bootstrap", "bootstrap-hard", "smoothing"],
)
def test_loss_by_hand(loss, expected):
    assert loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-5)
    # a one-hot row of probabilities is the same target as its class id
    one_hot = F.one_hot(TARGETS, 3).float()
    assert loss(LOGITS, one_hot).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "loss", [CrossEntropy(), GCE(), SCE(), MAE(), Bootstrap(), LabelSmoothing()], ids=repr
)
def test_soft_rows_are_the_expected_loss(loss):
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    expected = sum(
        soft[:, k] * loss.per_item(LOGITS, torch.full((2,), k, dtype=torch.long)) for k in range(3)
    )
    assert torch.allclose(loss.per_item(LOGITS, soft), expected, atol=1e-6)


def test_cross_entropy_matches_torch_on_soft_rows():
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    assert torch.allclose(CrossEntropy()(LOGITS, soft), F.cross_entropy(LOGITS, soft))


def test_gce_tends_to_cross_entropy_as_q_shrinks():
    assert GCE(q=1e-4)(LOGITS, TARGETS).item() == pytest.approx(
        CrossEntropy()(LOGITS, TARGETS).item(), rel=1e-3
    )


def test_losses_have_gradients():
    for loss in (GCE(), SCE(), MAE(), Bootstrap(), Bootstrap(hard=True), LabelSmoothing()):
        logits = LOGITS.clone().requires_grad_()
        loss(logits, TARGETS).backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0, loss


# --- the other pieces, by hand -------------------------------------------------------------


def test_small_loss_keeps_the_smallest_in_batch_order_on_ties():
    assert small_loss(torch.tensor([0.5, 0.1, 0.9, 0.1]), 3).tolist() == [1, 3, 0]


def test_coteaching_forget_rate_ramps_linearly():
    module = CoTeachingModule(
        nn.Linear(2, 2),
        OPTIMIZER,
        {"train_y": torch.zeros(4, dtype=torch.long)},
        max_steps=10,
        eval_every=5,
        batch_size=2,
        seed=0,
        peer=nn.Linear(2, 2),
        forget_rate=0.4,
        ramp_steps=100,
    )
    for step, rate in [(0, 0.0), (50, 0.2), (100, 0.4), (1000, 0.4)]:
        module.steps_done = step
        assert module.current_forget_rate() == pytest.approx(rate)
    # both networks are trained and saved; the first one is validated and predicts
    names = module.state_dict().keys()
    assert any(k.startswith("net.") for k in names) and any(k.startswith("peer.") for k in names)
    params = {
        id(p) for group in module.configure_optimizers().param_groups for p in group["params"]
    }
    assert params == {id(p) for p in [*module.net.parameters(), *module.peer.parameters()]}
    assert module.eval_net is module.net


def test_elr_update_and_penalty_by_hand():
    target = torch.tensor([[0.0, 0.0], [0.5, 0.5]])
    probs = torch.tensor([[1.0, 0.0], [0.2, 0.8]])
    updated = elr_update(target, probs, beta=0.7)
    clamped = torch.tensor([1 - 1e-4, 1e-4])  # already sums to 1
    assert torch.allclose(updated[0], 0.3 * clamped)
    assert torch.allclose(updated[1], torch.tensor([0.7 * 0.5 + 0.3 * 0.2, 0.7 * 0.5 + 0.3 * 0.8]))
    t = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    expected = (math.log(1 - (0.2 * 0.6 + 0.8 * 0.4)) + math.log(1 - (0.5 * 0.2 + 0.5 * 0.8))) / 2
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    assert elr_penalty(p, t).item() == pytest.approx(expected, rel=1e-6)


def test_soften_by_hand():
    out = soften(torch.tensor([[2.0, 0.0]]), temperature=2.0)
    assert out[0, 0].item() == pytest.approx(math.e / (math.e + 1))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GCE(q=1.5), "q=1.5 is outside (0, 1]"),
        (lambda: GCE(q=0), "q=0 is outside (0, 1]"),
        (lambda: SCE(alpha=-1), "alpha=-1 must be a non-negative number"),
        (lambda: SCE(alpha=0, beta=0), "alpha=0 and beta=0 leave no loss"),
        (lambda: Bootstrap(beta=1.2), "beta=1.2 is outside [0, 1]"),
        (lambda: LabelSmoothing(epsilon=-0.1), "epsilon=-0.1 is outside [0, 1]"),
        (lambda: CoTeaching(OPTIMIZER, forget_rate=1.0), "forget_rate=1.0 is outside [0, 1)"),
        (lambda: CoTeaching(OPTIMIZER, ramp_steps=-1), "ramp_steps=-1 must be a non-negative"),
        (lambda: ELR(OPTIMIZER, beta=1), "beta=1 is outside [0, 1)"),
        (lambda: ELR(OPTIMIZER, lam=-3), "lam=-3 must be a non-negative number"),
        (lambda: CLFilter(OPTIMIZER, folds=1), "folds=1 must be an integer >= 2"),
        (lambda: CLFilter(OPTIMIZER, filter_by="guess"), "filter_by='guess' is not one of"),
        (lambda: CLFilter(OPTIMIZER, cv_max_steps=0), "cv_max_steps=0 must be a positive"),
        (lambda: Distill(OPTIMIZER, teachers=0), "teachers=0 must be a positive integer"),
        (lambda: Distill(OPTIMIZER, temperature=0), "temperature=0 is outside (0, inf)"),
        (lambda: Distill(OPTIMIZER, alpha=1.5), "alpha=1.5 is outside [0, 1]"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(make, message):
    with pytest.raises(ConfigError) as error:
        make()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_cli_refuses_a_bad_loss_argument(tmp_path):
    args = [*NOISY, "strategy=supervised", "strategy/loss=gce", "strategy.loss.q=1.5"]
    lines = refusal_lines(tmp_path, *args)
    assert lines == [f"{ERROR_PREFIX} strategy.loss.q=1.5 is outside (0, 1]"]
