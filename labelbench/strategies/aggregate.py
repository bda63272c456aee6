"""Turning many votes per item into one target: majority vote, the vote distribution and
Dawid–Skene. numpy and scipy.sparse, no torch.

Votes are sparse (item, source, label) triples (labels.votes.Votes); every function also
takes an (items, sources) matrix with -1 where a source gave no vote (not asked,
abstained). Each works in memory that grows with the number of votes and items x classes,
never items x sources.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from labelbench.labels.votes import NO_VOTE, Votes, as_votes

TIES = ("random", "lowest")
# Dawid–Skene's E-step runs over blocks of this many items, whose arrays stay in the cache,
# on up to THREADS threads (numpy and scipy.sparse release the GIL in their loops).
BLOCK = 8192
THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _check_votes(votes: Votes | Any, num_classes: int) -> Votes:
    votes = as_votes(votes)
    votes.check_classes(num_classes)
    return votes


def has_vote(votes: Votes | Any) -> np.ndarray:
    """(items,) bool: the items at least one source voted on (the others carry no label)."""
    return as_votes(votes).has_vote()


def vote_counts(votes: Votes | Any, num_classes: int) -> np.ndarray:
    """(items, classes): how many sources voted for each class."""
    return as_votes(votes).counts(num_classes)


def vote_distribution(votes: Votes | Any, num_classes: int) -> np.ndarray:
    """(items, classes), rows summing to 1: the share of each item's votes per class (soft
    targets). An item without a vote gets the uniform row."""
    counts = vote_counts(votes, num_classes).astype(float)
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), 1.0 / num_classes)


def majority_vote(
    votes: Votes | Any, num_classes: int, ties: str = "random", seed: int = 0
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


def _indicator(votes: Votes, width: int) -> Any:
    """(items, sources * width) sparse 0/1 matrix: row i has a 1 at column s * width + l for
    each vote l of source s on item i. Its products with dense (items or sources * width,
    classes) matrices are Dawid–Skene's two steps, at a cost that grows with the votes."""
    from scipy import sparse  # here, so that importing the strategies stays light

    return sparse.csr_matrix(
        (np.ones(votes.n_votes), (votes.item, votes.source * width + votes.label)),
        shape=(votes.n_items, votes.n_sources * width),
    )


def _e_step(
    given: Any,
    per_vote: np.ndarray,
    base: np.ndarray,
    old: np.ndarray,
    out: np.ndarray,
    ones: np.ndarray,
    ones_k: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Dawid–Skene's E-step on one block of items (`given`: their rows of the vote
    indicator): their posteriors into `out`; the largest change from `old`, and the block's
    posterior mass per class (for the next M-step's priors)."""
    log_p = given @ per_vote
    log_p += base
    _normalise_exp(log_p, out, ones_k)
    np.subtract(out, old, out=log_p)  # log_p is spent: reuse it for the change
    return float(np.abs(log_p, out=log_p).max()), ones[: len(out)] @ out


def _normalise_exp(log_p: np.ndarray, out: np.ndarray, ones_k: np.ndarray) -> None:
    """Rows of exp(log_p) scaled to sum to 1, into `out` (log_p is overwritten).

    Shifted by each row's mean, a product with ones (BLAS, where numpy's row-wise max over
    a short axis is slow), which keeps the largest entry >= 1, so no row sums to 0; a row
    whose spread would overflow exp (a max more than ~700 above the mean: very many votes)
    is shifted by its max instead. Any shift gives the same rows once scaled."""
    k = log_p.shape[1]
    log_p -= (log_p @ ones_k)[:, None] / k
    np.exp(log_p, out=out)
    total = out @ ones_k
    wide = ~np.isfinite(total)
    if wide.any():
        rows = log_p[wide]
        out[wide] = np.exp(rows - rows.max(axis=1, keepdims=True))
        total[wide] = out[wide] @ ones_k
    out /= total[:, None]


def dawid_skene(
    votes: Votes | Any,
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
    gets a uniform row rather than zeros, and no posterior becomes 0/0) and the E-step
    (posteriors from priors and the confusions of the sources that voted). Stops when no
    posterior moves by more than `tol`, or after `max_iter` iterations.

    abstain False: a missing vote is left out of both steps (missing at random: a crowd
    annotator who was not asked). abstain True: no vote is one more thing a source can say,
    with its own probability per true class (the last column of the confusions), as
    labeling functions' abstains are: a function that votes for one class only carries its
    information in when it fires and when it abstains, which missing-at-random would lose.

    Both steps are sparse products over the votes (an abstain is what is left of a source's
    counts once its votes are taken out), so time and memory grow with the votes, items x
    classes and sources x classes^2, never with items x sources."""
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter={max_iter} must be a positive integer")
    if not tol > 0:
        raise ValueError(f"tol={tol} must be positive")
    if not smoothing > 0:
        raise ValueError(f"smoothing={smoothing} must be positive")
    votes = _check_votes(votes, num_classes)
    k, n, sources = num_classes, votes.n_items, votes.n_sources
    said_width = k + 1 if abstain else k  # with abstain, column k is "no vote"
    given = _indicator(votes, k)  # (n, sources * k)
    counts = votes.counts(k)
    top = (counts == counts.max(axis=1, keepdims=True)).astype(float)
    posteriors = top / top.sum(axis=1, keepdims=True)  # no vote: every class tied -> uniform

    converged, iterations = False, 0
    priors = np.full(k, 1.0 / k)
    # Held as said[s, l, j] = P(source s says l | true class j): rows s * k + l are `given`'s
    # columns, so both steps are plain products; transposed to [s, j, l] on the way out.
    said = np.full((sources, said_width, k), 1.0 / said_width)
    blocks = [slice(a, min(a + BLOCK, n)) for a in range(0, n, BLOCK)]
    rows = [given[b] for b in blocks]
    ones, ones_k = np.ones(min(n, BLOCK)), np.ones(k)
    new = np.empty_like(posteriors)  # the next posteriors; the two swap every iteration
    mass = np.ones(n) @ posteriors  # (k,) expected items per true class
    threads = min(len(blocks), THREADS)
    with ThreadPoolExecutor(threads) if threads > 1 else nullcontext() as pool:
        run = pool.map if pool else map
        while iterations < max_iter:
            iterations += 1
            # M-step: expected counts under the current posteriors, Laplace-smoothed.
            priors = mass + smoothing
            priors /= priors.sum()
            said[:, :k] = (given.T @ posteriors).reshape(sources, k, k)
            if abstain:  # every item a source gave no vote on is one of its abstains
                said[:, k] = mass - said[:, :k].sum(axis=1)
            said += smoothing
            said /= said.sum(axis=1, keepdims=True)
            # E-step: log prior + the log-likelihood of what each source said, per true class.
            log_said = np.log(said)
            if abstain:  # every source abstains, except where it voted: swap those terms
                per_vote = log_said[:, :k] - log_said[:, k:]
                base = np.log(priors) + log_said[:, k].sum(axis=0)
            else:
                per_vote, base = log_said, np.log(priors)
            per_vote = per_vote.reshape(sources * k, k)
            done = list(
                run(
                    _e_step,
                    rows,
                    repeat(per_vote),
                    repeat(base),
                    [posteriors[b] for b in blocks],
                    [new[b] for b in blocks],
                    repeat(ones),
                    repeat(ones_k),
                )
            )
            change = max((c for c, _ in done), default=0.0)
            mass = sum((m for _, m in done), np.zeros(k))
            posteriors, new = new, posteriors
            if change < tol:
                converged = True
                break
    confusions = np.ascontiguousarray(said.transpose(0, 2, 1))
    return DawidSkeneFit(posteriors, confusions, priors, iterations, converged)
