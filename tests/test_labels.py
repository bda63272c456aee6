"""The label contracts: paired splits, hidden ground truth, budgets that fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labelbench.config import ConfigError
from labelbench.data.sources import Digits, Synthetic
from labelbench.labels import (
    Clean,
    Fraction,
    Full,
    LabelPool,
    PerClass,
    Total,
    reveal,
    reveal_order,
)
from labelbench.strategies.logreg import LogReg


@pytest.fixture(scope="module")
def digits():
    return Digits().load(split_seed=0)


def test_reveal_order_balanced_prefixes(digits):
    y = digits.y[digits.split.pool]
    order = reveal_order(y, 10, np.random.default_rng(0), balanced=True)
    assert sorted(order) == list(range(len(y)))  # a permutation of the pool
    for n in (10, 20, 50):
        counts = np.bincount(y[order[:n]], minlength=10)
        assert counts.max() - counts.min() <= 1, counts


@pytest.mark.parametrize(
    "budget", [Total(20), Total(20, balanced=False), PerClass(4), Fraction(0.05), Full()]
)
def test_revealed_items_come_from_the_pool_only(digits, budget):
    pool, acct = reveal(digits, Clean(), budget, seed=1, split_seed=0)
    assert set(pool.indices) <= set(digits.split.pool)
    assert not set(pool.indices) & (set(digits.split.val) | set(digits.split.test))
    assert len(set(pool.indices)) == len(pool.indices) == acct.count == acct.budget_size
    assert set(pool.indices) | set(pool.unlabeled) == set(digits.split.pool)
    assert acct.indices == list(pool.indices)


def test_budgets_are_nested_and_seeded(digits):
    small, _ = reveal(digits, Clean(), Total(20), seed=0, split_seed=0)
    large, _ = reveal(digits, Clean(), Total(50), seed=0, split_seed=0)
    again, _ = reveal(digits, Clean(), Total(20), seed=0, split_seed=0)
    other, _ = reveal(digits, Clean(), Total(20), seed=1, split_seed=0)
    assert list(large.indices[:20]) == list(small.indices)
    assert np.array_equal(small.indices, again.indices)
    assert not np.array_equal(small.indices, other.indices)


def test_per_class_budget_is_exact(digits):
    pool, acct = reveal(digits, Clean(), PerClass(3), seed=0, split_seed=0)
    assert list(pool.class_counts()) == [3] * 10
    assert acct.budget == "3/class" and acct.cost == 30


def test_paid_validation_comes_out_of_the_budget(digits):
    free, acct_free = reveal(digits, Clean(), Total(50), seed=0, split_seed=0)
    paid, acct_paid = reveal(
        digits, Clean(), Total(50, val_paid=True, val_share=0.2), seed=0, split_seed=0
    )
    assert (
        acct_free.val_count == len(digits.split.val)
        and acct_free.cost == 50
        and not acct_free.val_paid
    )
    assert (acct_paid.count, acct_paid.val_count, acct_paid.cost) == (
        40,
        10,
        50.0,
    ) and acct_paid.val_paid
    assert set(paid.val_indices) <= set(digits.split.val)
    assert list(paid.indices) == list(free.indices[:40])  # still the same reveal order


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (Total(5000), r"total=5000 is larger than the pool \(\d+ items\); allowed: 1\.\.\d+"),
        (PerClass(500), r"per_class=500 is larger than the smallest class in the pool"),
        (Total(2, val_paid=True, val_share=0.9), r"leaves no training labels"),
    ],
)
def test_budgets_that_do_not_fit(digits, budget, message):
    with pytest.raises(ConfigError, match=message):
        reveal(digits, Clean(), budget, seed=0, split_seed=0)


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, True, "half"])
def test_fraction_outside_unit_interval(bad):
    with pytest.raises(ConfigError, match=r"fraction=.* is outside \(0, 1\]"):
        Fraction(bad)


def test_pool_holds_no_true_labels(digits):
    """LabelPool and TaskView expose observed labels only; nothing reaches the ground truth."""
    pool, _ = reveal(digits, Clean(), Total(30), seed=0, split_seed=0)
    assert {f.name for f in dataclasses.fields(LabelPool)} == {
        "indices",
        "labels",
        "unlabeled",
        "val_indices",
        "val_labels",
        "num_classes",
        "kind",
        "votes",
        "candidates",
        "val_votes",  # labeling functions' votes on validation items (weak regimes)
        "extra",  # unlabeled-only items: indices, no label exists
    }
    view = digits.view()
    assert not hasattr(view, "y") and not hasattr(view, "split") and not hasattr(view, "test")
    for array in (pool.indices, pool.labels, pool.unlabeled, pool.val_labels):
        assert not array.flags.writeable
        assert array.base is None or array.base is not digits.y  # private copies, not views of y
    with pytest.raises(ValueError):
        pool.labels[0] = 1


def test_scrambling_hidden_labels_changes_nothing():
    """A strategy's predictions depend on revealed labels only: scrambling the true labels of
    the unrevealed pool items leaves the fitted model unchanged. (Random reveal order: a
    class-balanced order uses the pool's labels by design, as an annotation protocol.)"""
    task = Synthetic(n_samples=300, n_classes=3).load(split_seed=0)
    budget = Total(30, balanced=False)
    pool, _ = reveal(task, Clean(), budget, seed=0, split_seed=0)
    y = task.y.copy()
    hidden = pool.unlabeled
    y[hidden] = np.random.default_rng(5).permutation(y[hidden])
    scrambled = dataclasses.replace(task, y=y)
    pool2, _ = reveal(scrambled, Clean(), budget, seed=0, split_seed=0)
    assert np.array_equal(pool.indices, pool2.indices) and np.array_equal(pool.labels, pool2.labels)
    test_x = task.x[task.split.test]
    p1 = LogReg().fit(pool, task.view(), None, None, seed=0).predict_proba(test_x)
    p2 = LogReg().fit(pool2, scrambled.view(), None, None, seed=0).predict_proba(test_x)
    assert np.array_equal(p1, p2)


def test_labeler_sells_items_in_the_order_bought_within_the_budget(digits):
    """What an active-learning loop relies on: a prefix of the seeded reveal order to start
    with (the items a budget of that size reveals), then its own picks, in order, once each,
    never beyond the budget, and the record's indices in the order bought."""
    from labelbench.labels import Labeler

    fixed, _ = reveal(digits, Clean(), Total(10), seed=0, split_seed=0)
    labeler = Labeler(digits, Clean(), Total(30), seed=0, split_seed=0)
    assert labeler.capacity == 30 and labeler.left == 30
    first = labeler.buy_first(10)
    assert np.array_equal(first.indices, fixed.indices)  # paired with a budget of 10
    picks = np.setdiff1d(digits.split.pool, first.indices)[[7, 3, 11]]
    pool = labeler.buy(picks)
    assert np.array_equal(pool.indices, np.concatenate([first.indices, picks]))
    assert np.array_equal(pool.labels, digits.y[pool.indices])  # clean regime: the truth
    assert labeler.left == 17 and labeler.accounting().indices == pool.indices.tolist()
    for bad, message in [
        (picks[:1], "bought only once"),
        (digits.split.test[:1], "is not in the pool"),
        (np.setdiff1d(digits.split.pool, pool.indices)[:18], "exceeds the budget: 17 of 30"),
    ]:
        with pytest.raises(ValueError, match=message):
            labeler.buy(bad)
    with pytest.raises(ValueError, match="buy_first comes before"):
        labeler.buy_first(5)
    assert labeler.left == 17  # a refused purchase buys nothing


def test_labeler_preview_shows_the_first_items_without_buying(digits):
    from labelbench.labels import Labeler

    labeler = Labeler(digits, Clean(), Total(30), seed=0, split_seed=0)
    seen = labeler.preview(labeler.capacity)
    assert labeler.left == 30 and len(labeler.bought) == 0
    bought = labeler.buy_first(labeler.capacity)
    assert np.array_equal(seen.indices, bought.indices)
    assert np.array_equal(seen.labels, bought.labels)
