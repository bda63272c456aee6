"""Votes as sparse (item, source, label) triples: the Votes container, and the aggregations
and crowd draws built on it agreeing with the dense implementation they replaced
(tests/dense_votes.py, verbatim), in memory that grows with the votes."""

from __future__ import annotations

import copy
import pickle
import tracemalloc

import dense_votes as dense
import numpy as np
import pytest

import labelbench.labels.crowd as crowd_module
import labelbench.strategies.aggregate as aggregate
from labelbench.labels.crowd import Crowd, crowd_stats
from labelbench.labels.pool import Observed
from labelbench.labels.votes import Votes


def _random_crowd(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A dense (items, sources) vote matrix of a random crowd (annotators of random
    accuracy, a random share of votes missing, some items with none) and its classes."""
    n, sources, k = int(rng.integers(1, 300)), int(rng.integers(1, 15)), int(rng.integers(2, 7))
    y = rng.integers(0, k, n)
    right = rng.random((n, sources)) < rng.uniform(0.3, 0.95, sources)
    votes = np.where(right, y[:, None], rng.integers(0, k, (n, sources)))
    votes[rng.random((n, sources)) < rng.uniform(0, 0.8)] = -1
    return votes, k


def test_votes_hold_triples_in_one_order_and_refuse_bad_ones():
    matrix = np.array([[2, -1, 0], [-1, -1, -1], [-1, 1, 1]])
    votes = Votes.from_dense(matrix)
    assert votes.shape == (3, 3) and votes.n_votes == 4 and len(votes) == 3
    assert np.array_equal(votes.dense(), matrix)
    shuffled = Votes([2, 0, 2, 0], [2, 2, 1, 0], [1, 0, 1, 2], 3, 3)  # any order: the same
    assert shuffled == votes and votes.item.tolist() == [0, 0, 2, 2]
    assert votes.per_item().tolist() == [2, 0, 2] and votes.per_source().tolist() == [1, 1, 2]
    assert votes.counts(3).tolist() == [[1, 0, 1], [0, 0, 0], [0, 2, 0]]
    picked = votes.take([2, 1, 2, 0])  # any order, repeats too
    assert np.array_equal(picked.dense(), matrix[[2, 1, 2, 0]])
    assert votes.take([]).shape == (0, 3) and Votes.empty(4, 2).dense().tolist() == [[-1] * 2] * 4
    with pytest.raises(ValueError, match="read-only"):
        votes.label[0] = 1  # read-only, or no caller could trust a LabelPool
    with pytest.raises(AttributeError, match="read-only"):
        votes.label = np.zeros(4)
    assert pickle.loads(pickle.dumps(votes)) == votes == copy.deepcopy(votes)
    with pytest.raises(ValueError, match="source 1 votes twice on item 0"):
        Votes([0, 0], [1, 1], [0, 2], 1, 2)
    with pytest.raises(ValueError, match=r"item 5 is out of range; allowed: 0\.\.2"):
        Votes([5], [0], [0], 3, 1)
    with pytest.raises(ValueError, match="label -2 is not a class"):
        Votes([0], [0], [-2], 1, 1)
    with pytest.raises(ValueError, match=r"votes must be classes 0\.\.1 or -1"):
        votes.counts(2)


@pytest.mark.parametrize("abstain", [False, True])
def test_sparse_dawid_skene_gives_the_dense_posteriors_confusions_and_priors(abstain):
    rng = np.random.default_rng(0)
    for _ in range(25):
        matrix, k = _random_crowd(rng)
        ours = aggregate.dawid_skene(Votes.from_dense(matrix), k, abstain=abstain)
        theirs = dense.dawid_skene(matrix, k, abstain=abstain)
        assert ours.iterations == theirs.iterations and ours.converged == theirs.converged
        for name in ("posteriors", "confusions", "priors"):
            assert np.abs(getattr(ours, name) - getattr(theirs, name)).max() < 1e-9, name


def test_sparse_counts_majority_and_distribution_equal_the_dense_ones():
    rng = np.random.default_rng(1)
    for _ in range(25):
        matrix, k = _random_crowd(rng)
        votes = Votes.from_dense(matrix)
        assert np.array_equal(aggregate.vote_counts(votes, k), dense.vote_counts(matrix, k))
        assert np.array_equal(aggregate.has_vote(votes), dense.has_vote(matrix))
        assert np.array_equal(
            aggregate.vote_distribution(votes, k), dense.vote_distribution(matrix, k)
        )
        for ties in ("random", "lowest"):
            assert np.array_equal(
                aggregate.majority_vote(votes, k, ties, seed=3),
                dense.majority_vote(matrix, k, ties, seed=3),
            )


def test_blocks_and_threads_change_nothing(monkeypatch):
    """The E-step over many small blocks on several threads gives the one-block answer."""
    matrix, k = _random_crowd(np.random.default_rng(2))
    whole = aggregate.dawid_skene(matrix, k)
    monkeypatch.setattr(aggregate, "BLOCK", 16)
    monkeypatch.setattr(aggregate, "THREADS", 3)
    blocked = aggregate.dawid_skene(matrix, k)
    assert blocked.iterations == whole.iterations
    assert np.abs(blocked.posteriors - whole.posteriors).max() < 1e-12


def test_crowd_draws_the_votes_it_drew_densely(monkeypatch):
    """Choosing annotators a block of items at a time draws the numbers one (items,
    annotators) draw did, so every crowd seed gives the votes it gave before."""

    def before(regime: Crowd, y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        matrices = regime.annotator_matrices(k, rng)  # Crowd.observe at 6c464f9, verbatim
        votes = np.full((len(y), regime.annotators), -1, dtype=np.int64)
        chosen = np.argsort(rng.random((len(y), regime.annotators)), axis=1)[:, : regime.per_item]
        rows = np.repeat(np.arange(len(y)), regime.per_item)
        who = chosen.ravel()
        cumulative = np.cumsum(matrices[who, y[rows]], axis=1)
        u = rng.random(len(who))[:, None] * cumulative[:, -1:]
        votes[rows, who] = np.minimum((u >= cumulative).sum(axis=1), k - 1)
        return votes

    monkeypatch.setattr(crowd_module, "DRAW_CHUNK", 500)  # many blocks
    y = np.random.default_rng(1).integers(0, 10, 3000)
    for annotators, per_item in [(5, 3), (3, 3), (40, 7), (300, 1)]:
        regime = Crowd(annotators=annotators, per_item=per_item, accuracy=0.7, spread=0.2)
        now = regime.observe(Observed.of_labels(y), None, 10, np.random.default_rng(5)).votes
        assert np.array_equal(now.dense(), before(regime, y, 10, np.random.default_rng(5)))


def test_many_annotators_few_votes_each_fit_in_memory_of_the_votes():
    """200,000 items, 100,000 annotators, 2 votes an item: a dense (items, annotators) matrix
    would take 160 GB (int64), its one-hot 3x that. The aggregations and the record's
    statistics take memory of the votes and items x classes only."""
    n, sources, k = 200_000, 100_000, 3
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    item = np.repeat(np.arange(n), 2)
    source = (rng.integers(0, sources // 2, n)[:, None] + [0, sources // 2]).ravel()
    label = np.where(rng.random(2 * n) < 0.8, y[item], rng.integers(0, k, 2 * n))
    votes = Votes(item, source, label, n, sources)
    tracemalloc.start()
    try:
        fit = aggregate.dawid_skene(votes, k, max_iter=5)
        aggregate.majority_vote(votes, k)
        stats = crowd_stats(votes, y)
        taken = votes.take(np.arange(0, n, 2))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # votes 400k x 8 B, posteriors 200k x 3 x 8 B, confusions 100k x 9 x 8 B: tens of MB
    assert peak < 250e6, f"peak {peak / 1e6:.0f} MB"
    assert fit.posteriors.shape == (n, k) and (fit.posteriors.argmax(1) == y).mean() > 0.8
    assert stats["annotations"] == 2 * n and "annotator_acc_quartiles" in stats
    assert taken.n_votes == n and taken.n_sources == sources
