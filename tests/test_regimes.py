"""Regimes beyond label noise: long-tailed pools, label shift, crowds, labeling functions,
candidate sets, and stacks of them. Per regime: determinism under a seed, the realised
statistics, clean test labels, stacking order, and revealed items that do not depend on
the strategy; then the settings each refuses."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import refusal_lines
from labelbench.config import ConfigError
from labelbench.data.sources import Digits
from labelbench.labels import (
    Clean,
    Complementary,
    Crowd,
    Full,
    LabelShift,
    LongTail,
    Observed,
    Partial,
    PerClass,
    Stack,
    Symmetric,
    Total,
    Weak,
    reveal,
    shape,
)
from labelbench.run import run


@pytest.fixture(scope="module")
def digits():
    return Digits().load(split_seed=0)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def labelled(task, regime, budget=None, seed=0):
    """shape then reveal, as a run does."""
    regime.check(task.num_classes)
    task = shape(task, regime, seed, 0)
    pool, accounting = reveal(task, regime, budget or Full(), seed, 0)
    return task, pool, accounting


ALL = {
    "clean": lambda: Clean(),
    "longtail": lambda: LongTail(20),
    "label_shift": lambda: LabelShift(alpha=1.0),
    "crowd": lambda: Crowd(annotators=5, per_item=3, accuracy=0.7),
    "weak": lambda: Weak(lfs=10),
    "partial": lambda: Partial(distractors=2),
    "complementary": lambda: Complementary(),
    "stack": lambda: Stack({"a": LongTail(10), "b": Symmetric(0.3), "c": Crowd()}),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_same_seed_same_annotations_other_seed_other_ones(digits, name):
    def annotations(seed):
        task, pool, acc = labelled(digits, ALL[name](), Total(150), seed=seed)
        votes = None if pool.votes is None else pool.votes.dense()
        return (pool.indices, pool.labels, votes, pool.candidates, task.split.test), acc

    (first, acc1), (again, acc2) = annotations(0), annotations(0)
    for a, b in zip(first, again, strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert acc1 == acc2
    other, _ = annotations(1)
    assert not np.array_equal(first[0], other[0])  # another seed buys other items


@pytest.mark.parametrize("name", sorted(ALL))
def test_ground_truth_and_the_split_outside_the_pool_are_untouched(digits, name):
    y, split = digits.y.copy(), digits.split
    task, pool, acc = labelled(digits, ALL[name](), Total(150))
    assert np.array_equal(digits.y, y) and np.array_equal(task.y, y)  # test labels stay clean
    assert np.array_equal(task.split.val, split.val)
    assert np.isin(task.split.pool, split.pool).all() and np.isin(task.split.test, split.test).all()
    assert np.isin(pool.indices, task.split.pool).all()
    assert acc.regime == ALL[name]().label() and acc.kind == pool.kind


def test_longtail_realises_the_ratio_on_the_pool_and_keeps_the_test_split(digits):
    for ratio in (1, 10, 50):
        task, _, acc = labelled(digits, LongTail(ratio))
        counts = np.bincount(task.y[task.split.pool], minlength=10)
        assert counts[0] == np.bincount(digits.y[digits.split.pool]).min()  # the head is whole
        assert np.all(np.diff(counts) <= 0)  # head to tail by class index
        assert acc.realised["pool_imbalance"] == pytest.approx(ratio, rel=0.15)
        assert np.array_equal(task.split.test, digits.split.test)
    task, _, _ = labelled(digits, LongTail(10, order="random"))
    counts = np.bincount(task.y[task.split.pool], minlength=10)
    assert not np.all(np.diff(counts) <= 0)  # a seeded order, not class order


def test_label_shift_follows_the_priors_and_keeps_the_pool(digits):
    priors = [0.5, 0.3, 0.2] + [0.0] * 7
    task, _, acc = labelled(digits, LabelShift(priors=priors), Total(50))
    counts = np.bincount(task.y[task.split.test], minlength=10)
    assert np.allclose(counts / counts.sum(), priors, atol=0.02)
    assert counts[0] == np.bincount(digits.y[digits.split.test])[0]  # as many as priors allow
    assert np.array_equal(task.split.pool, digits.split.pool)
    assert acc.realised["test_size"] == counts.sum()
    _, _, drawn = labelled(digits, LabelShift(alpha=0.5))
    assert drawn.realised["test_imbalance"] > 2  # a Dirichlet(0.5) draw is far from uniform


def test_crowd_votes_and_their_realised_accuracy(digits):
    regime = Crowd(annotators=7, per_item=3, accuracy=0.7, confusion="uniform")
    _, pool, acc = labelled(digits, regime, Total(900))
    assert pool.kind == "crowd" and (pool.labels == -1).all()
    assert len(pool) == 300 and acc.cost == 900 and acc.budget_size == 900  # paid per annotation
    votes = pool.votes.dense()
    assert votes.shape == (300, 7) and pool.votes.n_votes == 900
    assert ((votes >= 0).sum(axis=1) == 3).all()  # three distinct annotators per item
    truth = digits.y[pool.indices]
    given = votes >= 0
    right = (votes == truth[:, None]) & given
    assert acc.realised["annotation_acc"] == pytest.approx(right.sum() / given.sum())
    assert abs(acc.realised["annotation_acc"] - 0.7) < 0.05
    assert acc.realised["annotations"] == 900 and len(acc.realised["annotator_acc"]) == 7
    assert acc.noise_rate is None  # no single labels to be wrong
    assert np.array_equal(pool.val_labels, digits.y[pool.val_indices])  # a gold dev set


def test_crowd_annotators_have_their_own_confusions():
    y = rng().integers(0, 4, size=20_000)
    crowd = Crowd(annotators=2, per_item=2, accuracy=0.6, confusion="random")
    votes = crowd.observe(Observed.of_labels(y), None, 4, rng(1)).votes.dense()
    wrong = votes[:, 0] != y
    table = np.array(
        [np.bincount(votes[(y == c) & wrong, 0], minlength=4) for c in range(4)], dtype=float
    )
    table /= table.sum(axis=1, keepdims=True)
    assert table.max() > 0.45  # far from uniform over the 3 wrong classes (1/3 each)
    spread = Crowd(annotators=50, per_item=1, accuracy=0.6, spread=0.3)
    acc = np.clip(spread.annotator_matrices(4, rng())[:, range(4), range(4)], 0, 1)
    assert acc.min() < 0.45 and acc.max() > 0.75


def test_crowd_budget_is_counted_in_annotations(digits):
    pool, acc = reveal(digits, Crowd(per_item=3), Total(20), seed=0, split_seed=0)
    assert len(pool) == 6 and acc.cost == 18  # 20 annotations buy 6 whole items
    with pytest.raises(ConfigError, match="2 labels buy no item when each takes 3 annotations"):
        reveal(digits, Crowd(per_item=3), Total(2), seed=0, split_seed=0)
    pool, acc = reveal(digits, Crowd(per_item=3), PerClass(6), seed=0, split_seed=0)
    assert len(pool) == 20 and np.bincount(digits.y[pool.indices]).tolist() == [2] * 10
    # more annotations than items: fine as long as the pool holds them
    pool, _ = reveal(digits, Crowd(per_item=3), Total(3000), seed=0, split_seed=0)
    assert len(pool) == 1000


@pytest.mark.parametrize("family", ["prototype", "threshold"])
def test_weak_votes_cover_the_pool_with_reported_quality(digits, family):
    _, pool, acc = labelled(digits, Weak(lfs=20, family=family))
    votes, truth = pool.votes.dense(), digits.y[pool.indices]
    assert pool.kind == "weak" and votes.shape == (len(digits.split.pool), 20)
    assert acc.cost == 200  # 20 LFs at 10 each; the votes are free
    fired = votes >= 0
    for j in range(20):  # LF j votes only for its class, in turn
        assert set(np.unique(votes[fired[:, j], j])) <= {j % 10}
    r = acc.realised
    assert r["lf_coverage"] == pytest.approx(fired.mean())
    assert r["covered"] == pytest.approx(np.mean(fired.any(axis=1)))
    assert r["overlap"] == pytest.approx(np.mean(fired.sum(axis=1) > 1))
    accuracy = [np.mean(votes[fired[:, j], j] == truth[fired[:, j]]) for j in range(20)]
    assert r["lf_accuracy"] == pytest.approx(np.nanmean(accuracy))
    assert r["lf_accuracy"] > 0.15  # better than chance (0.1), far from perfect
    assert 0 < r["conflict"] <= r["overlap"] <= r["covered"] <= 1


def test_weak_prototype_lfs_trade_coverage_for_accuracy_with_the_margin(digits):
    loose = labelled(digits, Weak(margin=0.0))[2].realised
    strict = labelled(digits, Weak(margin=0.4))[2].realised
    assert strict["lf_coverage"] < loose["lf_coverage"]
    assert strict["lf_accuracy"] > loose["lf_accuracy"]


def test_partial_candidate_sets_hold_the_label_and_q_distractors(digits):
    _, pool, acc = labelled(digits, Partial(distractors=3), Total(200))
    truth = digits.y[pool.indices]
    assert pool.kind == "partial" and (pool.labels == -1).all()
    assert (pool.candidates.sum(axis=1) == 4).all()
    assert pool.candidates[np.arange(len(pool)), truth].all()
    assert acc.realised["candidates_per_item"] == 4 and acc.realised["candidates_hold_label"] == 1
    counts = pool.candidates.sum(axis=0) - np.bincount(truth, minlength=10)
    assert counts.min() > 0.5 * counts.mean()  # distractors spread over the classes


def test_complementary_label_is_one_wrong_class(digits):
    _, pool, acc = labelled(digits, Complementary(), Total(500))
    truth = digits.y[pool.indices]
    excluded = (~pool.candidates).argmax(axis=1)
    assert ((~pool.candidates).sum(axis=1) == 1).all() and (excluded != truth).all()
    assert np.bincount(excluded, minlength=10).min() > 20  # uniform over the wrong classes
    assert acc.realised["candidates_per_item"] == 9


def test_stack_applies_its_stages_in_order(digits):
    imbalance_then_noise = Stack([LongTail(10), Symmetric(0.4)])
    _, _, acc = labelled(digits, imbalance_then_noise)
    assert acc.regime == "longtail(10)+symmetric(0.4)"
    assert acc.realised["pool_imbalance"] == pytest.approx(10, rel=0.15)
    assert abs(acc.noise_rate - 0.4) < 0.01  # exact over the long-tailed pool
    # noise first, then a long tail cut on the true classes: the tail keeps noisy labels
    _, _, other = labelled(digits, Stack([Symmetric(0.4), LongTail(10)]))
    assert other.regime == "symmetric(0.4)+longtail(10)"
    # two noise stages compound: the second corrupts what the first reported
    _, _, twice = labelled(digits, Stack([Symmetric(0.2), Symmetric(0.2)]))
    assert 0.33 < twice.noise_rate < 0.37  # 1 - 0.8 * 0.8 less flips back, about 0.36
    # noise then candidate sets: the sets are built around the noisy label
    _, _, sets = labelled(digits, Stack([Symmetric(0.3), Partial(2)]))
    assert sets.realised["candidates_hold_label"] == pytest.approx(0.7 + 0.3 * 2 / 9, abs=0.04)


def test_stack_refuses_a_stage_after_one_without_single_labels():
    with pytest.raises(ConfigError, match="stage symmetric comes after crowd, which gives crowd"):
        Stack({"a": Crowd(), "b": Symmetric(0.2)})
    with pytest.raises(ConfigError, match="stages is empty"):
        Stack({})


def test_revealed_items_do_not_depend_on_the_strategy(compose_fast):
    runs = [
        run(*compose_fast("regime=stack", "budget=total", "budget.total=40", f"strategy={s}"))
        for s in ("supervised", "logreg")
    ]
    assert all(r.status == "ok" for r in runs)
    assert runs[0].labels["indices"] == runs[1].labels["indices"]
    assert runs[0].labels["regime"] == "longtail(10)+symmetric(0.2)"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["regime=crowd", "budget.total=90", "strategy=majority_vote"], "annotation_acc"),
        (["regime=weak", "budget=full", "regime.lfs=8", "strategy=lf_majority"], "lf_accuracy"),
        (["regime=partial", "regime.distractors=1", "strategy=proden"], "candidates_per_item"),
        (["regime=label_shift", "strategy=logreg"], "test_imbalance"),
    ],
)
def test_realised_statistics_reach_the_record(compose_fast, overrides, key):
    short = [] if "strategy=logreg" in overrides else ["strategy.max_steps=40"]
    record = run(*compose_fast(*overrides, *short))
    assert record.status == "ok", record.error
    assert key in record.labels["realised"]
    assert record.labels["regime"] != record.choices["regime"] or overrides[0] == "regime=weak"
    assert 0 <= record.metrics["test/acc"] <= 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LongTail(0.5), "ratio=0.5 is outside [1, inf)"),
        (lambda: LongTail(10, order="size"), "order='size' is not one of index, random"),
        (lambda: LabelShift(), "set exactly one"),
        (lambda: LabelShift(priors=[0.5, 0.6]), "must be non-negative and sum to 1"),
        (lambda: LabelShift(alpha=0), "alpha=0 is outside (0, inf)"),
        (lambda: Crowd(annotators=3, per_item=4), "per_item=4 is more than the 3 annotators"),
        (lambda: Crowd(accuracy=1.2), "accuracy=1.2 is outside [0, 1]"),
        (lambda: Crowd(confusion="pairs"), "confusion='pairs' is not one of uniform, random"),
        (lambda: Weak(family="regex"), "family='regex' is not one of prototype, threshold"),
        (lambda: Weak(lfs=0), "lfs=0"),
        (lambda: Weak(margin=1), "margin=1 is outside [0, 1)"),
        (lambda: Partial(distractors=0), "distractors=0"),
    ],
)
def test_bad_settings(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("regime", "message"),
    [
        (LabelShift(priors=[0.5, 0.5]), "priors has 2 entries but the dataset has 10 classes"),
        (Partial(distractors=9), "distractors=9 leaves no class outside the candidate set"),
        (Stack([LongTail(2), Partial(distractors=9)]), "distractors=9"),
    ],
)
def test_settings_that_do_not_fit_the_classes(regime, message):
    with pytest.raises(ConfigError, match=message):
        regime.check(10)


def test_weak_refuses_more_features_than_the_inputs_have(digits):
    with pytest.raises(ConfigError, match="features=100 is more than the 64 input features"):
        reveal(digits, Weak(features=100), Full(), seed=0, split_seed=0)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["regime=longtail", "regime.ratio=0.5"],
            "regime.ratio=0.5 is outside [1, inf)",
        ),
        (
            ["regime=stack", "+regime@regime.stages.votes=crowd", "+regime@regime.stages.z=clean"],
            "regime: stage clean comes after crowd, which gives crowd annotations rather than"
            " single labels; put crowd last",
        ),
        (
            ["regime=crowd", "strategy=supervised"],
            "strategy: learns from single labels but the regime gives crowd annotations;"
            " strategies for those: majority_vote, dawid_skene, soft_crowd, glad, mace,"
            " one_coin_ds, mmsr or wawa",
        ),
    ],
)
def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, args, line):
    assert refusal_lines(tmp_path, *args, "logger=none") == [f"labelbench-run: error: {line}"]


@pytest.mark.parametrize("name", ["clean", "crowd", "weak", "partial", "stack"])
def test_items_bought_one_at_a_time_get_the_answers_a_budget_reveals(digits, name):
    """The annotators answer every item up front: an active-learning loop buying items in
    its own order sees exactly what a budget revealing them would."""
    from labelbench.labels import annotate

    regime = ALL[name]()
    task = shape(digits, regime, 0, 0)
    pool, _ = reveal(task, regime, Full(), seed=0, split_seed=0)
    answers = annotate(task, regime, seed=0, split_seed=0)
    picks = np.random.default_rng(5).permutation(len(task.split.pool))[:40]
    bought = answers.label_pool(picks, np.arange(len(task.split.val)))
    where = {int(i): p for p, i in enumerate(pool.indices)}
    rows = [where[int(i)] for i in bought.indices]
    assert np.array_equal(bought.indices, task.split.pool[picks])
    assert np.array_equal(bought.labels, pool.labels[rows])
    if pool.votes is not None:  # the votes bought are those of the same items in the pool
        assert bought.votes == pool.votes.take(rows)
    if pool.candidates is not None:
        assert np.array_equal(bought.candidates, pool.candidates[rows])
    assert np.array_equal(bought.val_labels, pool.val_labels)
    assert len(bought.unlabeled) == len(task.split.pool) - 40
    with pytest.raises(ValueError, match="bought only once"):
        answers.label_pool(np.array([3, 3]), np.arange(2))
