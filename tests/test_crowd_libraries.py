"""Crowd aggregation and weak supervision through the field's libraries: crowd-kit's GLAD,
MACE, one-coin Dawid–Skene, M-MSR and Wawa on simulated crowds (and by hand where the
formula allows), our Dawid–Skene against crowd-kit's, Snorkel's LabelModel as label_model's
backend, the LF analysis against Snorkel's LFAnalysis, the labeling functions' votes on the
validation items, real runs, hidden truth, exact resume and refusals."""

from __future__ import annotations

import dataclasses
import logging
import random

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from conftest import assert_resumes_exactly, refusal_lines, revealed
from labelbench.config import ConfigError, run_key
from labelbench.labels import Crowd, Observed
from labelbench.labels.weak import format_lf_analysis, lf_analysis
from labelbench.run import build, run
from labelbench.strategies.aggregate import dawid_skene, has_vote
from labelbench.strategies.crowdkit import votes_frame

SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "logger=none"]
SHORT = ["strategy.max_steps=60", "strategy.eval_every=20"]
CROWD = ["regime=crowd", "budget.total=300"]  # 3 votes per item: 100 items
WEAK = ["regime=weak", "budget=full"]
# MACE's 10 restarts of 50 iterations, GLAD's conjugate-gradient M-steps take seconds even on
# 100 items: fewer in tests.
QUICK = {
    "mace": ["strategy.n_restarts=2", "strategy.n_iter=10"],
    "glad": ["strategy.m_step_max_iter=5"],
}
CROWDKIT = ["glad", "mace", "one_coin_ds", "mmsr", "wawa"]
SNORKEL = ["strategy=label_model", "strategy.backend=snorkel"]


def _strategy_overrides(name: str) -> list[str]:
    if name == "snorkel":
        return [*WEAK, *SNORKEL]
    return [*CROWD, f"strategy={name}", *QUICK.get(name, [])]


def _strategy(compose_fast, name: str, *extra: str):
    cfg, _ = compose_fast(*SYNTHETIC, *_strategy_overrides(name), *SHORT, *extra, fast=False)
    return build(cfg, run_key(cfg)).strategy


def _crowd(n: int, k: int = 4, seed: int = 0, **regime) -> tuple[np.ndarray, np.ndarray]:
    """(truth, votes) of labelbench's Crowd regime on n items of k classes."""
    y = np.random.default_rng(seed).integers(0, k, n)
    crowd = Crowd(**{"annotators": 5, "per_item": 3, "accuracy": 0.7, **regime})
    votes = crowd.observe(Observed.of_labels(y), None, k, np.random.default_rng(seed + 1)).votes
    return y, votes


# --- crowd-kit on simulated crowds, and by hand -------------------------------------------


@pytest.mark.parametrize("name", CROWDKIT)
def test_crowdkit_targets_beat_chance_by_far(name, compose_fast):
    """5 annotators at 70% (random confusions), 3 votes per item, 4 classes (chance 0.25):
    every aggregator's labels are right far more often than chance."""
    y, votes = _crowd(200)
    strategy = _strategy(compose_fast, name)
    labels, info = strategy.targets(votes, 4, seed=0)
    assert labels.dtype == np.int64 and labels.shape == (200,)
    assert (labels == y).mean() > 0.75, (labels == y).mean()
    assert all(isinstance(v, float) and np.isfinite(v) for v in info.values()), info
    if name in ("mace", "mmsr"):  # random starts, seeded: the same seed, the same targets
        again, _ = _strategy(compose_fast, name).targets(votes, 4, seed=0)
        assert np.array_equal(again, labels)
    if strategy.probabilistic:  # soft targets: crowd-kit's probas_, one row per item
        strategy.soft = True
        soft, _ = strategy.targets(votes, 4, seed=0)
        assert soft.shape == (200, 4) and np.allclose(soft.sum(1), 1)
        assert (soft.argmax(1) == labels).mean() > 0.97  # only ties may be read otherwise


def test_wawa_by_hand_and_why_it_needs_tags(compose_fast):
    """Wawa: majority vote, each annotator's agreement with it as their weight, then the
    weighted vote. Computed here by hand on 4 items, 3 annotators (columns)."""
    votes = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 1], [2, 2, 0]])
    # majority: 0, 1, 1, 2 -> agreement a 3/4, b 4/4, c 2/4
    w = np.array([0.75, 1.0, 0.5])
    expected = np.zeros((4, 3))
    for i, row in enumerate(votes):
        for s, label in enumerate(row):
            expected[i, label] += w[s]
    expected /= expected.sum(1, keepdims=True)
    strategy = _strategy(compose_fast, "wawa", "strategy.soft=true")
    soft, info = strategy.targets(votes, 3, seed=0)
    assert np.allclose(soft, expected)
    assert info["mean_worker_skill"] == pytest.approx(w.mean())
    # The cause of the workaround: plain crowd-kit Wawa under scikit-learn >= 1.6.
    from crowdkit.aggregation import Wawa
    from sklearn.base import BaseEstimator

    if hasattr(BaseEstimator, "__sklearn_tags__") and not hasattr(Wawa, "__sklearn_tags__"):
        with pytest.raises(AttributeError, match="__sklearn_tags__"):
            Wawa().fit_predict_proba(votes_frame(votes))


def test_one_coin_and_mace_estimate_what_the_crowd_was(compose_fast):
    """Uniform confusions at accuracy 0.7, 4 classes: one-coin Dawid–Skene's skill is the
    accuracy (0.7); MACE's competence theta solves theta + (1 - theta) / 4 = 0.7 (a spammer
    hits the truth one time in 4), so theta = 0.6."""
    _, votes = _crowd(1500, confusion="uniform")
    _, one_coin = _strategy(compose_fast, "one_coin_ds").targets(votes, 4, seed=0)
    assert one_coin["mean_worker_skill"] == pytest.approx(0.7, abs=0.03)
    assert 1 <= one_coin["em_iterations"] <= 100
    _, mace = _strategy(compose_fast, "mace").targets(votes, 4, seed=0)
    assert mace["mean_competence"] == pytest.approx((0.7 - 1 / 4) / (1 - 1 / 4), abs=0.04)


def test_our_dawid_skene_agrees_with_crowdkits():
    """The same simulated crowd (7 annotators, accuracies 0.5-0.9, random confusions):
    aggregated-label accuracy within half a point."""
    from crowdkit.aggregation import DawidSkene

    y, votes = _crowd(1500, annotators=7, spread=0.2)
    ours = dawid_skene(votes, 4).posteriors.argmax(1)
    theirs = DawidSkene().fit_predict(votes_frame(votes)).reindex(range(1500)).to_numpy()
    assert abs((ours == y).mean() - (theirs == y).mean()) <= 0.005
    assert (ours == theirs).mean() > 0.99


def test_votes_frame_is_crowdkits_long_format():
    frame = votes_frame(np.array([[2, -1, 0], [-1, -1, 1]]))
    assert list(frame.columns) == ["task", "worker", "label"]
    assert frame.to_numpy().tolist() == [[0, 0, 2], [0, 2, 0], [1, 2, 1]]


# --- Snorkel: the label model and the LF analysis -----------------------------------------


def test_snorkel_backend_is_reproducible_and_leaves_the_global_rngs(compose_fast):
    """Two fits give the same targets; Snorkel seeds Python's, numpy's and torch's global
    generators, and the strategy puts them back."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 600)
    lfs = [np.where(rng.random(600) < np.where(y == c, 0.6, 0.08), c, -1) for c in range(3)]
    votes = np.stack(lfs * 2, 1)
    votes = votes[has_vote(votes)]
    strategy = _strategy(compose_fast, "snorkel")
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    before = random.random(), np.random.rand(), torch.rand(1).item()
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    first, info = strategy.targets(votes, 3, seed=0)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == before
    second, _ = strategy.targets(votes, 3, seed=0)
    assert np.array_equal(first, second)
    assert first.shape == (len(votes), 3) and np.allclose(first.sum(1), 1)
    assert (first.argmax(1) == y[has_vote(np.stack(lfs * 2, 1))]).mean() > 0.8
    assert info["label_model_epochs"] == 100


L_DOC = np.array([[-1, 0, 0], [-1, -1, -1], [1, 0, -1], [-1, 0, -1], [0, 0, 0]])


def test_lf_analysis_by_hand():
    """Snorkel's LFAnalysis docstring example, counted by hand: 4 of 5 items have a vote,
    3 two or more, 1 (item 2: 1 and 0) two different ones."""
    a = lf_analysis(L_DOC, val_votes=L_DOC, val_labels=np.array([1, 1, 1, 0, 0]))
    assert (a["coverage"], a["overlap"], a["conflict"]) == pytest.approx((0.8, 0.6, 0.2))
    assert a["lf_coverage"] == pytest.approx([0.4, 0.8, 0.4])
    assert a["lf_overlap"] == pytest.approx([0.4, 0.6, 0.4])  # items 0, 2, 4 overlap
    assert a["lf_conflict"] == pytest.approx([0.2, 0.2, 0.0])  # item 2 conflicts
    # LF 0 votes 1, 0 on items 2, 4 (labels 1, 0); LF 1 0, 0, 0, 0 on 0, 2, 3, 4 (1, 1, 0, 0)
    assert a["lf_val_acc"] == pytest.approx([1.0, 0.5, 0.5])
    assert a["val_acc"] == pytest.approx(2 / 3)
    table = format_lf_analysis(a)
    assert table.splitlines()[-1].split() == ["all", "0.800", "0.600", "0.200", "0.667"]


def test_lf_analysis_matches_snorkels_lfanalysis():
    from snorkel.labeling import LFAnalysis

    rng = np.random.default_rng(0)
    L = np.where(rng.random((80, 6)) < 0.4, rng.integers(0, 3, (80, 6)), -1)
    L_val = np.where(rng.random((30, 6)) < 0.4, rng.integers(0, 3, (30, 6)), -1)
    L_val[:, 5] = -1  # an LF silent on the dev set
    y_val = rng.integers(0, 3, 30)
    ours, theirs = lf_analysis(L, L_val, y_val), LFAnalysis(L)
    assert ours["coverage"] == pytest.approx(theirs.label_coverage())
    assert ours["overlap"] == pytest.approx(theirs.label_overlap())
    assert ours["conflict"] == pytest.approx(theirs.label_conflict())
    assert ours["lf_coverage"] == pytest.approx(theirs.lf_coverages().tolist())
    assert ours["lf_overlap"] == pytest.approx(theirs.lf_overlaps().tolist())
    assert ours["lf_conflict"] == pytest.approx(theirs.lf_conflicts().tolist())
    accs = LFAnalysis(L_val).lf_empirical_accuracies(y_val)
    assert ours["lf_val_acc"][:5] == pytest.approx(accs[:5].tolist())
    assert ours["lf_val_acc"][5] is None and accs[5] == 0  # Snorkel reads silence as 0
    assert ours["val_acc"] == pytest.approx(accs[:5].mean())


def test_weak_lfs_vote_on_validation_items_too(compose_fast):
    """The LFs the regime wrote for the pool vote on the validation items too; crowd
    annotators do not (val_votes is None there)."""
    cfg, _ = compose_fast(*SYNTHETIC, *WEAK, *SNORKEL, fast=False)
    parts, task, pool = revealed(cfg)
    assert pool.val_votes.shape == (len(pool.val_indices), pool.votes.n_sources)
    assert parts.regime.apply(task.x[pool.indices]) == pool.votes
    assert parts.regime.apply(task.x[pool.val_indices]) == pool.val_votes
    val_votes = pool.val_votes.dense()
    fired = val_votes >= 0
    right = (val_votes == pool.val_labels[:, None]) & fired
    assert right.sum() / fired.sum() > 0.5  # the LFs are far better than chance (0.25)
    cfg, _ = compose_fast(*SYNTHETIC, *CROWD, "strategy=glad", fast=False)
    assert revealed(cfg)[2].val_votes is None
    with pytest.raises(ValueError, match="val_votes must have one row per validation item"):
        dataclasses.replace(pool, val_votes=val_votes[1:])


# --- real runs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*CROWDKIT, "snorkel"])
def test_runs_end_to_end(name, compose_fast, caplog):
    caplog.set_level(logging.INFO, logger="labelbench")
    cfg, choices = compose_fast(*SYNTHETIC, *_strategy_overrides(name), *SHORT, fast=False)
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    fit = record.metrics
    assert fit["test/acc"] > 0.5, fit  # 4 classes: chance is 0.25
    assert fit["fit/trained_on"] + fit["fit/unvoted"] == record.labels["count"]
    analysis = record.labels["realised"].get("lf_analysis")
    if name != "snorkel":
        assert analysis is None
        return
    assert fit["fit/label_model_epochs"] == 100
    _, _, pool = revealed(cfg)  # the record holds the LF analysis of what was revealed
    assert analysis == lf_analysis(pool.votes, pool.val_votes, pool.val_labels)
    assert len(analysis["lf_coverage"]) == 20 and analysis["val_items"] == len(pool.val_indices)
    assert 0.5 < analysis["val_acc"] <= 1
    assert format_lf_analysis(analysis) in caplog.text  # and the run logged it, once
    assert caplog.text.count("LF analysis:") == 1


@pytest.mark.parametrize("name", ["mace", "mmsr", "snorkel"])  # the ones that draw at random
def test_hidden_pool_labels_change_nothing(name, compose_fast):
    """The votes are drawn first; then every true label of the pool is changed: the fitted
    model's predictions (so its targets too) stay bit-identical (CPU)."""
    cfg, _ = compose_fast(*SYNTHETIC, *_strategy_overrides(name), *SHORT, fast=False)
    parts, task, pool = revealed(cfg)
    y = task.y.copy()
    y[task.split.pool] = (y[task.split.pool] + 1) % task.num_classes  # every pool label wrong
    scrambled = dataclasses.replace(task, y=y)
    test_x = task.x[task.split.test]
    probs = [
        parts.strategy.fit(pool, t.view(), parts.model, parts.trainer, seed=0).predict_proba(test_x)
        for t in (task, scrambled)
    ]
    assert np.array_equal(probs[0], probs[1])


@pytest.mark.parametrize("name", ["mace", "snorkel"])
def test_crashed_fit_resumes_exactly(name, compose_fast, tmp_path, monkeypatch):
    """A crash mid-fit and a relaunch give the metrics of an uninterrupted fit, bit for bit:
    the targets are drawn again from the same seed (MACE's restarts, Snorkel's fit), and
    Snorkel's seeding of the global generators does not leak into the training."""
    resumable = [
        *SYNTHETIC, *_strategy_overrides(name), *SHORT,
        "strategy.patience=0", "checkpoint.every_steps=20",
    ]  # fmt: skip
    whole = run(*compose_fast(*resumable, fast=False))
    assert whole.status == "ok", whole.error
    cfg, choices = compose_fast(*resumable, fast=False)
    assert_resumes_exactly(
        cfg, choices, whole, monkeypatch, tmp_path, lambda module: module.steps_done >= 40
    )


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([*WEAK, "strategy=label_model", "strategy.backend=wrench"], "strategy.backend='wrench' is not one of ours, snorkel"),
        ([*WEAK, *SNORKEL, "strategy.snorkel.lr=0"], "strategy.snorkel.lr=0 is outside (0, inf)"),
        ([*WEAK, *SNORKEL, "strategy.snorkel.optimizer=lbfgs"], "strategy.snorkel.optimizer='lbfgs' is not one of sgd, adam, adamax"),
        ([*WEAK, *SNORKEL, "strategy.snorkel.n_epochs=0"], "strategy.snorkel.n_epochs=0 must be a positive integer"),
        ([*CROWD, "strategy=mace", "strategy.n_restarts=0"], "strategy.n_restarts=0 must be a positive integer"),
        ([*CROWD, "strategy=mace", "strategy.method=gibbs"], "strategy.method='gibbs' is not one of vb, em"),
        ([*CROWD, "strategy=mace", "strategy.alpha=0"], "strategy.alpha=0 is outside (0, inf)"),
        ([*CROWD, "strategy=glad", "strategy.tol=0"], "strategy.tol=0 is outside (0, inf)"),
        ([*CROWD, "strategy=glad", "strategy.m_step_max_iter=0"], "strategy.m_step_max_iter=0 must be a positive integer"),
        ([*CROWD, "strategy=one_coin_ds", "strategy.n_iter=0"], "strategy.n_iter=0 must be a positive integer"),
        ([*CROWD, "strategy=mmsr", "strategy.tol=-1"], "strategy.tol=-1 is outside (0, inf)"),
        ([*CROWD, "strategy=wawa", "strategy.soft=maybe"], "strategy.soft='maybe' must be true or false"),
    ],
)  # fmt: skip
def test_bad_arguments_refused_before_training(overrides, message, compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, *overrides, fast=False)
    with pytest.raises(ConfigError) as info:
        build(cfg, run_key(cfg))
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_mmsr_has_no_probabilities_to_be_soft_on(compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, *CROWD, "strategy=mmsr", fast=False)
    with open_dict(cfg):
        cfg.strategy.soft = True  # not a key of mmsr.yaml: a caller building it by hand
    with pytest.raises(ConfigError, match="MMSR gives no class probabilities, only labels"):
        build(cfg, run_key(cfg))


def test_snorkel_needs_three_lfs_and_says_so_before_training(compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, *WEAK, *SNORKEL, "regime.lfs=2", fast=False)
    parts, task, pool = revealed(cfg)
    with pytest.raises(ConfigError, match="backend=snorkel needs 3 labeling functions at least"):
        parts.strategy.check(pool, task.view())
    cfg, _ = compose_fast(*SYNTHETIC, *CROWD, "strategy=glad", fast=False)
    parts, task, pool = revealed(cfg)
    crowd_pool = dataclasses.replace(pool, kind="weak")
    _strategy(compose_fast, "snorkel").check(crowd_pool, task.view())  # 5 sources: fine


def test_cli_refuses_an_unknown_backend(tmp_path):
    lines = refusal_lines(
        tmp_path, *SYNTHETIC, *WEAK, "strategy=label_model", "strategy.backend=wrench"
    )
    assert lines == [
        "labelbench-run: error: strategy.backend='wrench' is not one of ours, snorkel"
    ], lines
