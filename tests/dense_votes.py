"""The dense reference: labelbench's aggregations as they were before votes became sparse
triples (labelbench 2026-11, strategies/aggregate.py at 6c464f9), kept verbatim for the
tests that check the sparse ones give the same answers. Not part of the package.

`votes` is an (items, sources) integer matrix: `votes[i, s]` is the class source s (a crowd
annotator, a labeling function) gave item i, or -1 where it gave none (not asked, abstained).
Every function treats -1 as missing, never as a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_VOTE = -1
TIES = ("random", "lowest")


def _check_votes(votes: np.ndarray, num_classes: int) -> np.ndarray:
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise ValueError(f"votes must be (items, sources), got shape {votes.shape}")
    if votes.size and (votes.min() < NO_VOTE or votes.max() >= num_classes):
        raise ValueError(f"votes must be classes 0..{num_classes - 1} or {NO_VOTE} (no vote)")
    return votes.astype(np.int64, copy=False)


def one_hot_votes(votes: np.ndarray, num_classes: int) -> np.ndarray:
    """(items, sources, classes) float: 1 at each vote, all zeros where a source gave none."""
    votes = _check_votes(votes, num_classes)
    out = np.zeros((*votes.shape, num_classes))
    i, s = np.nonzero(votes != NO_VOTE)
    out[i, s, votes[i, s]] = 1.0
    return out


def has_vote(votes: np.ndarray) -> np.ndarray:
    """(items,) bool: the items at least one source voted on (the others carry no label)."""
    return (np.asarray(votes) != NO_VOTE).any(axis=1)


def vote_counts(votes: np.ndarray, num_classes: int) -> np.ndarray:
    """(items, classes): how many sources voted for each class."""
    votes = _check_votes(votes, num_classes)
    counts = np.zeros((len(votes), num_classes), dtype=np.int64)
    i, s = np.nonzero(votes != NO_VOTE)
    np.add.at(counts, (i, votes[i, s]), 1)
    return counts


def vote_distribution(votes: np.ndarray, num_classes: int) -> np.ndarray:
    """(items, classes), rows summing to 1: the share of each item's votes per class (soft
    targets). An item without a vote gets the uniform row."""
    counts = vote_counts(votes, num_classes).astype(float)
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), 1.0 / num_classes)


def majority_vote(
    votes: np.ndarray, num_classes: int, ties: str = "random", seed: int = 0
) -> np.ndarray:
    """(items,) the most voted class per item; -1 for an item without a vote.

    ties: 'random' picks one of the tied classes uniformly, from a generator seeded by `seed`
    (the same votes and seed give the same labels); 'lowest' takes the lowest class id, which
    is deterministic but leans towards low class ids."""
    if ties not in TIES:
        raise ValueError(f"ties={ties!r} is not one of {', '.join(TIES)}")
    counts = vote_counts(votes, num_classes)
    top = counts == counts.max(axis=1, keepdims=True)
    if ties == "random":
        # A random score per tied class; the argmax of the scores is a uniform pick among them.
        scores = np.random.default_rng(seed).random(counts.shape)
        labels = np.where(top, scores, -1.0).argmax(axis=1)
    else:
        labels = top.argmax(axis=1)  # the first True: the lowest tied class
    return np.where(counts.sum(axis=1) > 0, labels, NO_VOTE)


@dataclass(frozen=True)
class DawidSkeneFit:
    """What Dawid–Skene estimated. posteriors (items, classes): P(true class | votes), rows
    summing to 1 (without `abstain`, an item without a vote gets the class priors).
    confusions (sources, classes, classes, plus one column for the abstain with `abstain`):
    confusions[s, j, l] = P(source s says l | true class j). priors
    (classes,). iterations: EM iterations run; converged: whether the largest change of a
    posterior fell below the tolerance before max_iter."""

    posteriors: np.ndarray
    confusions: np.ndarray
    priors: np.ndarray
    iterations: int
    converged: bool


def dawid_skene(
    votes: np.ndarray,
    num_classes: int,
    max_iter: int = 200,
    tol: float = 1e-5,
    smoothing: float = 0.1,
    abstain: bool = False,
) -> DawidSkeneFit:
    """Dawid & Skene (1979): one confusion matrix per source and class priors, fitted by EM.

    Starts from majority vote (a one-hot posterior per item; ties split evenly among the
    tied classes), then alternates the M-step (priors and confusions from the posteriors,
    each count plus `smoothing` > 0: Laplace smoothing, so a source that never saw a class
    gets a uniform row rather than zeros, and no posterior becomes 0/0) and the E-step (posteriors from priors and the
    confusions of the sources that voted). Stops when no posterior moves by more than `tol`,
    or after `max_iter` iterations.

    abstain False: a missing vote is left out of both steps (missing at random: a crowd
    annotator who was not asked). abstain True: -1 is one more thing a source can say, with
    its own probability per true class (the last column of the confusions), as labeling
    functions' abstains are: a function that votes for one class only carries its
    information in when it fires and when it abstains, which missing-at-random would lose."""
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter={max_iter} must be a positive integer")
    if not tol > 0:
        raise ValueError(f"tol={tol} must be positive")
    if not smoothing > 0:
        raise ValueError(f"smoothing={smoothing} must be positive")
    votes = _check_votes(votes, num_classes)
    k = num_classes
    if abstain:  # the abstain is class k of what a source says
        onehot = one_hot_votes(np.where(votes == NO_VOTE, k, votes), k + 1)
    else:
        onehot = one_hot_votes(votes, k)  # (n, sources, k); all zeros where no vote
    n, sources, _ = onehot.shape
    counts = onehot[:, :, :k].sum(axis=1)
    top = (counts == counts.max(axis=1, keepdims=True)).astype(float)
    posteriors = top / top.sum(axis=1, keepdims=True)  # no vote: every class tied -> uniform

    converged, iterations = False, 0
    priors = np.full(k, 1.0 / k)
    confusions = np.full((sources, k, onehot.shape[2]), 1.0 / onehot.shape[2])
    while iterations < max_iter:
        iterations += 1
        # M-step: expected counts under the current posteriors, Laplace-smoothed.
        priors = posteriors.sum(axis=0) + smoothing
        priors /= priors.sum()
        said = np.einsum("ij,isl->sjl", posteriors, onehot) + smoothing
        confusions = said / said.sum(axis=2, keepdims=True)
        # E-step: log prior + the log-likelihood of each given vote, per true class.
        log_post = np.log(priors) + np.einsum("isl,sjl->ij", onehot, np.log(confusions))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        change = np.abs(new - posteriors).max() if n else 0.0
        posteriors = new
        if change < tol:
            converged = True
            break
    return DawidSkeneFit(posteriors, confusions, priors, iterations, converged)
