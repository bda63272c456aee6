"""Strategies for crowd votes, labeling-function votes and candidate sets: the aggregation
maths on hand-made votes, PRODEN and the complementary loss on hand-made tensors, real runs
through every regime they serve, exact resume of PRODEN's weights, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import refusal_lines
from labelbench.config import ConfigError, run_key
from labelbench.labels.pool import LabelPool
from labelbench.run import build, run
from labelbench.strategies.aggregate import (
    dawid_skene,
    has_vote,
    majority_vote,
    vote_counts,
    vote_distribution,
)
from labelbench.strategies.base import Checkpointing
from labelbench.strategies.lightning import LabelModule
from labelbench.strategies.partial import ProdenModule, complementary_loss, proden_weights

SHORT = ["strategy.max_steps=60", "strategy.eval_every=20"]
SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "logger=none"]
ERROR_PREFIX = "labelbench-run: error:"
KIND_OF = {"crowd": "crowd", "weak": "weak", "partial": "partial", "complementary": "partial"}


def _annotator(y: np.ndarray, k: int, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Right with probability `accuracy`, else a uniformly drawn wrong class."""
    wrong = (y + rng.integers(1, k, len(y))) % k
    return np.where(rng.random(len(y)) < accuracy, y, wrong)


# --- the maths, by hand ------------------------------------------------------------------


def test_dawid_skene_finds_an_adversarial_annotator_and_beats_majority_vote():
    """Two honest annotators (70%) and one who always answers the next class: majority vote
    is fooled whenever an honest one errs; Dawid–Skene learns the liar's confusion matrix
    (a permutation) and reads the truth from it."""
    rng = np.random.default_rng(0)
    k, n = 3, 1500
    y = rng.integers(0, k, n)
    votes = np.stack([_annotator(y, k, 0.7, rng), _annotator(y, k, 0.7, rng), (y + 1) % k], 1)
    fit = dawid_skene(votes, k)
    assert fit.converged
    shift = np.roll(np.eye(k), 1, axis=1)  # row j: says j + 1
    assert np.abs(fit.confusions[2] - shift).max() < 0.06
    assert np.abs(np.diag(fit.confusions[0]) - 0.7).max() < 0.06
    assert np.allclose(fit.priors, np.bincount(y) / n, atol=0.03)
    ds = (fit.posteriors.argmax(1) == y).mean()
    mv = (majority_vote(votes, k, ties="lowest") == y).mean()
    assert ds > 0.95 and mv < 0.7, (ds, mv)
    assert np.allclose(fit.posteriors.sum(1), 1)


def test_dawid_skene_with_missing_votes():
    """Half the votes missing: still recovered; an item nobody voted on gets the priors."""
    rng = np.random.default_rng(1)
    k, n = 4, 2000
    y = rng.integers(0, k, n)
    votes = np.stack([_annotator(y, k, a, rng) for a in (0.9, 0.8, 0.6, 0.3, 0.3)], 1)
    votes[rng.random(votes.shape) < 0.5] = -1
    votes[0] = -1
    fit = dawid_skene(votes, k)
    accuracies = np.diagonal(fit.confusions, axis1=1, axis2=2).mean(1)
    assert np.allclose(accuracies, [0.9, 0.8, 0.6, 0.3, 0.3], atol=0.06), accuracies
    assert np.allclose(fit.posteriors[0], fit.priors)
    voted = has_vote(votes)
    ds = (fit.posteriors.argmax(1) == y)[voted].mean()
    mv = (majority_vote(votes, k, seed=0) == y)[voted].mean()
    assert ds > mv


def test_label_model_learns_from_abstains():
    """Labeling functions that vote for one class or abstain: read as missing at random,
    every function 'always says its class' and EM collapses; with abstains modelled the
    label model does at least as well as the majority of the functions that fired."""
    rng = np.random.default_rng(2)
    k, n = 3, 3000
    y = rng.integers(0, k, n)
    lfs = []
    for c in range(k):
        for hit, false_fire in ((0.6, 0.05), (0.4, 0.3)):
            fires = rng.random(n) < np.where(y == c, hit, false_fire)
            lfs.append(np.where(fires, c, -1))
    votes = np.stack(lfs, 1)
    voted = has_vote(votes)
    votes, y = votes[voted], y[voted]
    mv = (majority_vote(votes, k) == y).mean()
    with_abstains = (dawid_skene(votes, k, abstain=True).posteriors.argmax(1) == y).mean()
    as_missing = (dawid_skene(votes, k, abstain=False).posteriors.argmax(1) == y).mean()
    assert with_abstains > mv > as_missing, (with_abstains, mv, as_missing)
    fit = dawid_skene(votes, k, abstain=True)
    assert fit.confusions.shape == (6, k, k + 1)  # the last column: abstain
    assert np.allclose(fit.confusions.sum(2), 1)


def test_majority_vote_ties_and_missing_votes():
    votes = np.array([[0, 1, -1], [-1, -1, -1], [2, 2, 1], [1, 0, 2], [-1, 1, -1]])
    assert majority_vote(votes, 3, ties="lowest").tolist() == [0, -1, 2, 0, 1]
    assert vote_counts(votes, 3).tolist() == [[1, 1, 0], [0, 0, 0], [0, 1, 2], [1, 1, 1], [0, 1, 0]]
    picks = np.stack([majority_vote(votes, 3, ties="random", seed=s) for s in range(200)])
    assert (picks[:, [1, 2, 4]] == [-1, 2, 1]).all()  # no tie: no randomness
    assert set(picks[:, 0]) == {0, 1} and set(picks[:, 3]) == {0, 1, 2}  # only tied classes
    assert abs((picks[:, 0] == 1).mean() - 0.5) < 0.15
    assert np.array_equal(majority_vote(votes, 3, seed=7), majority_vote(votes, 3, seed=7))
    with pytest.raises(ValueError, match="ties='first' is not one of random, lowest"):
        majority_vote(votes, 3, ties="first")
    with pytest.raises(ValueError, match=r"votes must be classes 0\.\.2 or -1"):
        majority_vote(np.array([[3, 0]]), 3)


def test_vote_distribution_rows_sum_to_one():
    votes = np.array([[0, 0, 1, -1], [-1, -1, -1, -1], [2, -1, -1, -1]])
    soft = vote_distribution(votes, 3)
    assert np.allclose(soft, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]])
    assert np.allclose(soft.sum(1), 1)
    assert has_vote(votes).tolist() == [True, False, True]


def test_proden_weights_stay_on_the_candidates():
    probs = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), 1)
    candidates = torch.tensor(
        [[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.float32
    )
    w = proden_weights(probs, candidates)
    assert torch.allclose(w.sum(1), torch.ones(5))
    assert (w[candidates == 0] == 0).all()
    expected = probs[0, :2] / probs[0, :2].sum()
    assert torch.allclose(w[0, :2], expected)
    # every candidate at probability 0 (float32 underflow): uniform over the set, not 0/0
    w = proden_weights(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0]]))
    assert torch.allclose(w, torch.tensor([[0.0, 0.5, 0.5]]))


def test_complementary_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    p = torch.softmax(logits, 1)
    expected = (-torch.log(1 - p[0, 1]) - torch.log(1 - p[1, 0]) - torch.log(1 - p[1, 2])) / 2
    assert complementary_loss(logits, candidates).item() == pytest.approx(expected.item())
    assert complementary_loss(logits, torch.ones(2, 3)).item() == 0.0  # nothing ruled out
    # A confident wrong prediction (p rounds to 1 in float32): finite, and it still pulls.
    logits = torch.tensor([[0.0, 40.0, 0.0]], requires_grad=True)
    loss = complementary_loss(logits, torch.tensor([[1.0, 0.0, 1.0]]))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 35
    assert logits.grad[0, 1] > 0.9


# --- real fits -------------------------------------------------------------------------------


def _pool(task, kind: str, n: int = 120, seed: int = 0, **extra) -> LabelPool:
    """A hand-made pool of `kind` over the first n pool items (votes from 3 annotators at
    70%, a third of them missing; candidate sets of the label and a random other class)."""
    rng = np.random.default_rng(seed)
    k, idx = task.num_classes, task.split.pool[:n]
    y = task.y[idx]
    if kind in ("crowd", "weak"):
        votes = np.stack([_annotator(y, k, 0.7, rng) for _ in range(3)], 1)
        votes[rng.random(votes.shape) < 1 / 3] = -1
        extra = {"votes": votes, **extra}
    elif kind == "partial":
        candidates = np.zeros((n, k), dtype=bool)
        distractor = (y + rng.integers(1, k, n)) % k
        candidates[np.arange(n), y] = candidates[np.arange(n), distractor] = True
        extra = {"candidates": candidates, **extra}
    val = task.split.val
    return LabelPool(
        indices=idx,
        labels=task.y[idx] if kind == "labels" else np.full(n, -1),
        unlabeled=task.split.pool[n:],
        val_indices=val,
        val_labels=task.y[val],
        num_classes=k,
        kind=kind,
        **extra,
    )


def _parts(compose_fast, strategy: str, *extra: str):
    cfg, _ = compose_fast(*SYNTHETIC, f"strategy={strategy}", *SHORT, *extra, fast=False)
    parts = build(cfg, run_key(cfg))
    return parts, parts.source.load(0)


@pytest.mark.parametrize(
    ("regime", "strategy"),
    [
        ("crowd", "majority_vote"),
        ("crowd", "dawid_skene"),
        ("crowd", "soft_crowd"),
        ("weak", "lf_majority"),
        ("weak", "label_model"),
        ("partial", "proden"),
        ("complementary", "complementary"),
        ("complementary", "proden"),
    ],
)
def test_runs_end_to_end(regime, strategy, compose_fast):
    budget = "budget.total=300" if regime == "crowd" else "budget=full"  # 300 votes: 100 items
    record = run(
        *compose_fast(
            *SYNTHETIC, f"regime={regime}", f"strategy={strategy}", *SHORT, budget, fast=False
        )
    )
    assert record.status == "ok", record.error
    assert record.labels["kind"] == KIND_OF[regime]
    assert record.metrics["test/acc"] > 0.4, record.metrics  # 4 classes: chance is 0.25
    fit = record.metrics
    if regime in ("crowd", "weak"):
        assert fit["fit/trained_on"] + fit["fit/unvoted"] == record.labels["count"]
    if strategy in ("dawid_skene", "label_model"):
        assert fit["fit/em_iterations"] >= 1
    if KIND_OF[regime] == "partial":
        assert fit["fit/mean_candidates"] == 3  # label + 2 distractors; 4 classes but one


def test_items_without_votes_are_left_out(compose_fast):
    parts, task = _parts(compose_fast, "dawid_skene", "strategy.soft=true")
    pool = _pool(task, "crowd")
    votes = pool.votes.dense()
    votes[:7] = -1
    pool = _pool(task, "crowd", votes=votes)
    predictor = parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    assert predictor.fit_info["unvoted"] == 7 + (~has_vote(votes[7:])).sum()
    assert predictor.fit_info["trained_on"] == has_vote(pool.votes).sum()
    nothing = _pool(task, "crowd", votes=np.full_like(votes, -1))
    with pytest.raises(ValueError, match="no revealed item has a vote"):
        parts.strategy.fit(nothing, task.view(), parts.model, parts.trainer, seed=0)


def test_proden_weights_after_training(compose_fast, monkeypatch):
    """The weights live on each item's candidates, sum to 1, and moved from uniform."""
    parts, task = _parts(compose_fast, "proden")
    pool = _pool(task, "partial")
    seen = {}
    original = ProdenModule.training_loss

    def keep(self):
        seen["module"] = self
        return original(self)

    monkeypatch.setattr(ProdenModule, "training_loss", keep)
    parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    w = seen["module"].confidence.cpu()
    candidates = torch.tensor(pool.candidates)
    assert torch.allclose(w.sum(1), torch.ones(len(w)))
    assert (w[~candidates] == 0).all()
    assert (w.max(1).values > 0.5 + 1e-3).float().mean() > 0.5  # most items picked a side
    truth = torch.tensor(task.y[pool.indices])
    assert (w.argmax(1) == truth).float().mean() > 0.6


def test_proden_resumes_exactly(compose_fast, tmp_path, monkeypatch):
    """A crash and a resume give the predictions of an uninterrupted fit, bit for bit: the
    confidence weights travel in the checkpoint."""
    parts, task = _parts(compose_fast, "proden", "strategy.patience=0")
    pool, view, x = _pool(task, "partial"), task.view(), task.x[task.split.test]

    def fit(folder):
        return parts.strategy.fit(
            pool, view, parts.model, parts.trainer, seed=0, checkpoint=Checkpointing(folder, 20)
        )

    whole = fit(tmp_path / "whole")
    original = LabelModule.training_step

    def crash(self, chunk, idx):
        if self.steps_done >= 40:
            raise RuntimeError("simulated crash")
        return original(self, chunk, idx)

    monkeypatch.setattr(LabelModule, "training_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tmp_path / "interrupted")
    monkeypatch.setattr(LabelModule, "training_step", original)
    resumed = fit(tmp_path / "interrupted")
    assert resumed.fit_info["resumed_from_step"] == 40
    assert np.array_equal(resumed.predict_proba(x), whole.predict_proba(x))


def test_soft_and_hard_dawid_skene_targets(compose_fast):
    parts, task = _parts(compose_fast, "dawid_skene")
    votes = _pool(task, "crowd").votes
    votes = votes.take(np.flatnonzero(has_vote(votes)))
    hard, info = parts.strategy.targets(votes, task.num_classes, seed=0)
    assert hard.dtype == np.int64 and hard.shape == (len(votes),)
    assert 0 < info["mean_posterior_max"] <= 1
    parts.strategy.soft = True
    soft, _ = parts.strategy.targets(votes, task.num_classes, seed=0)
    assert soft.shape == (len(votes), task.num_classes)
    assert np.allclose(soft.sum(1), 1) and np.array_equal(soft.argmax(1), hard)


def test_soft_targets_reach_the_loss_as_probabilities():
    """Soft rows go through the same cross-entropy as class ids (one-hot rows agree)."""
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2, 1, 1])
    assert torch.allclose(
        F.cross_entropy(logits, y), F.cross_entropy(logits, F.one_hot(y, 3).float())
    )


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "kind", "message"),
    [
        ("dawid_skene", "labels", "learns from crowd annotations but the regime gives single"),
        ("label_model", "crowd", "learns from labeling-function votes but the regime gives crowd"),
        ("proden", "weak", "learns from candidate sets but the regime gives labeling-function"),
        ("supervised", "crowd", "those: majority_vote, dawid_skene, soft_crowd, glad"),
        ("supervised", "partial", "strategies for those: proden or complementary"),
    ],
)
def test_strategies_refuse_annotations_they_cannot_learn_from(
    strategy, kind, message, compose_fast
):
    parts, task = _parts(compose_fast, strategy)
    with pytest.raises(ConfigError, match=message) as info:
        parts.strategy.check(_pool(task, kind), task.view())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["strategy=majority_vote", "strategy.ties=first"],
            "ties='first' is not one of random, lowest",
        ),
        (["strategy=lf_majority", "strategy.ties=lowest", "strategy.max_steps=0"], "max_steps=0"),
        (["strategy=dawid_skene", "strategy.smoothing=0"], "smoothing=0 is outside (0, inf)"),
        (["strategy=label_model", "strategy.max_iter=0"], "max_iter=0 must be a positive integer"),
        (["strategy=dawid_skene", "strategy.tol=-1"], "tol=-1 is outside (0, inf)"),
        (["strategy=label_model", "strategy.soft=maybe"], "soft='maybe' must be true or false"),
    ],
)
def test_bad_arguments_refused_before_training(overrides, message, compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, *overrides, fast=False)
    with pytest.raises(ConfigError, match=r"^strategy[.:]") as info:
        build(cfg, run_key(cfg))
    assert message in str(info.value)


def test_cli_refuses_a_vote_strategy_on_single_labels(tmp_path):
    lines = refusal_lines(tmp_path, *SYNTHETIC, "regime=clean", "strategy=dawid_skene")
    assert len(lines) == 1, lines
    assert "crowd annotations" in lines[0] and "single labels" in lines[0], lines[0]
