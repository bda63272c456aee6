"""Active-learning query strategies on hand-made arrays: what each one picks first, that
picks are distinct, in range and seeded, refusals of bad n and missing arrays, and every
conf/strategy/query/*.yaml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from labelbench.config import ConfigError
from labelbench.strategies.query import (
    NEEDS,
    Badge,
    Bald,
    BatchBald,
    ColdStart,
    Coreset,
    Entropy,
    LeastConfidence,
    Margin,
    Query,
    Random,
    Scores,
    TypiClust,
    gradient_embedding,
)

QUERY_DIR = Path(__file__).resolve().parent.parent / "conf" / "strategy" / "query"
ALL = [Random(), Entropy(), Margin(), LeastConfidence(), Coreset(), Badge(), ColdStart(k=3),
       TypiClust(k=3), Bald(), BatchBald()]  # fmt: skip


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _scores(m: int = 30, k: int = 4, d: int = 5, labeled: int = 3, seed: int = 0) -> Scores:
    """Random but valid scores for m candidates."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(m, k)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    embedding, labeled_embedding = rng.normal(size=(m, d)), rng.normal(size=(labeled, d))
    mc = np.exp(logits[:, None] + rng.normal(size=(m, 5, k)))  # 5 MC dropout passes
    return Scores(
        proba=proba,
        embedding=embedding,
        labeled_embedding=labeled_embedding,
        mc_proba=mc / mc.sum(axis=2, keepdims=True),
    )


def _select(query: Query, n: int, scores: Scores, seed: int = 0) -> np.ndarray:
    m = len(scores.proba if scores.proba is not None else scores.embedding)
    return query.select(n, np.arange(100, 100 + m), scores, _rng(seed))


def _blobs(
    centres: np.ndarray, per: int = 8, seed: int = 0, core: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Each 2-D centre, `core` times, with `per` points on a unit circle around it (with a
    core of 3, the centre is the most typical point of its blob for TypiClust's K = half the
    blob); returns (points, blob of each point), shuffled."""
    rng = np.random.default_rng(seed)
    parts = []
    for c in centres:
        angles = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, per, endpoint=False)
        ring = c + np.stack([np.cos(angles), np.sin(angles)], 1)
        parts.append(np.concatenate([np.tile(c, (core, 1)), ring]))
    x = np.concatenate(parts)
    blob = np.repeat(np.arange(len(centres)), per + core)
    order = rng.permutation(len(x))
    return x[order], blob[order]


# --- uncertainty -------------------------------------------------------------------------


def test_margin_picks_the_smallest_top2_gap():
    proba = np.array([[0.9, 0.05, 0.05], [0.45, 0.44, 0.11], [0.6, 0.3, 0.1], [0.5, 0.2, 0.3]])
    assert list(_select(Margin(), 4, Scores(proba=proba))) == [1, 3, 2, 0]


def test_entropy_picks_the_most_uniform_row():
    proba = np.array([[0.9, 0.1, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert list(_select(Entropy(), 4, Scores(proba=proba))) == [1, 2, 0, 3]


def test_least_confidence_picks_the_lowest_max():
    proba = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.8, 0.1, 0.1], [0.6, 0.0, 0.4]])
    assert list(_select(LeastConfidence(), 4, Scores(proba=proba))) == [1, 0, 3, 2]


@pytest.mark.parametrize("query", [Entropy(), Margin(), LeastConfidence()])
def test_uncertainty_ties_go_in_a_seeded_order(query):
    proba = np.tile([0.5, 0.3, 0.2], (12, 1))
    proba[5] = [0.34, 0.33, 0.33]  # the one clear winner comes first whatever the seed
    orders = {tuple(_select(query, 12, Scores(proba=proba), seed)) for seed in range(5)}
    assert all(order[0] == 5 for order in orders)
    assert len(orders) > 1
    assert np.array_equal(
        _select(query, 12, Scores(proba=proba), 7), _select(query, 12, Scores(proba=proba), 7)
    )


# --- coreset -----------------------------------------------------------------------------


def test_k_center_picks_the_farthest_point_from_the_labeled_ones():
    line = np.arange(11.0)[:, None]  # candidates at 0, 1, ..., 10
    scores = Scores(embedding=line, labeled_embedding=np.array([[0.0]]))
    picks = _select(Coreset(), 3, scores)
    assert picks[0] == 10  # farthest from the labeled point at 0
    assert picks[1] == 5  # then the middle of the widest gap, 0..10
    assert picks[2] in (2, 3, 7, 8)  # a point 2 or 3 from its nearest labeled/picked one


def test_coreset_without_labeled_points_starts_at_a_seeded_random_candidate():
    line = np.arange(11.0)[:, None]
    for labeled in (None, np.empty((0, 1))):
        scores = Scores(embedding=line, labeled_embedding=labeled)
        firsts = {int(_select(Coreset(), 1, scores, seed)[0]) for seed in range(10)}
        assert len(firsts) > 1
        for seed in range(10):
            first, second = _select(Coreset(), 2, scores, seed)
            farthest = {10} if first < 5 else {0} if first > 5 else {0, 10}
            assert second in farthest


def test_coreset_takes_duplicates_only_when_nothing_else_is_left():
    x = np.array([[0.0], [0.0], [0.0], [5.0]])
    picks = _select(Coreset(), 4, Scores(embedding=x, labeled_embedding=np.array([[0.0]])))
    assert picks[0] == 3 and sorted(picks) == [0, 1, 2, 3]


# --- badge -------------------------------------------------------------------------------


def test_gradient_embedding_is_the_cross_entropy_gradient_of_the_last_layer():
    p = np.array([[0.7, 0.2, 0.1]])
    h = np.array([[1.0, -2.0]])
    g = gradient_embedding(p, h).reshape(3, 2)
    assert np.allclose(g, np.outer([-0.3, 0.2, 0.1], [1.0, -2.0]))


def test_badge_first_pick_has_the_largest_gradient_norm():
    s = _scores(m=40, d=6)
    norms = np.linalg.norm(gradient_embedding(s.proba, s.embedding), axis=1)
    for seed in range(5):
        picks = _select(Badge(), 10, s, seed)
        assert picks[0] == np.argmax(norms)
        assert len(set(picks.tolist())) == 10


def test_badge_spreads_its_picks_over_two_far_clusters():
    rng = _rng(1)
    h = np.concatenate([rng.normal(size=(10, 3)) * 0.1 + 20, rng.normal(size=(10, 3)) * 0.1 - 20])
    proba = np.tile([0.6, 0.4], (20, 1))
    for seed in range(10):
        picks = _select(Badge(), 2, Scores(proba=proba, embedding=h), seed)
        assert {int(p) // 10 for p in picks} == {0, 1}


def test_badge_with_all_gradients_zero_still_picks_distinct_items():
    proba = np.tile([1.0, 0.0], (6, 1))  # fully confident: every gradient embedding is 0
    picks = _select(Badge(), 6, Scores(proba=proba, embedding=np.ones((6, 2))))
    assert sorted(picks) == list(range(6))


# --- cold start --------------------------------------------------------------------------


def test_cold_start_picks_the_most_central_point_of_each_blob():
    # A dense core: typicality averages over K = half the cluster (TypiClust's reference),
    # and a single centre would lose to ring points, whose nearest neighbours are closer.
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0]])
    x, blob = _blobs(centres, per=8, core=3)
    for seed in range(3):
        picks = _select(ColdStart(), 3, Scores(embedding=x), seed)
        assert sorted(blob[picks]) == [0, 1, 2]
        assert np.allclose(np.sort(x[picks], axis=0), np.sort(centres, axis=0))


def test_cold_start_queries_the_largest_cluster_first():
    # The small blob holds 9 items: TypiClust skips clusters of 5 or fewer.
    small, _ = _blobs(np.array([[0.0, 0.0]]), per=6, core=3)
    large, _ = _blobs(np.array([[30.0, 30.0]]), per=12, core=3)
    x = np.concatenate([small, large])
    first, second = _select(ColdStart(), 2, Scores(embedding=x))
    assert np.allclose(x[first], [30.0, 30.0]) and np.allclose(x[second], [0.0, 0.0])


def test_cold_start_with_fewer_distinct_points_than_n_fills_up():
    x = np.array([[0.0], [0.0], [0.0], [9.0], [9.0]])
    picks = _select(ColdStart(k=2), 4, Scores(embedding=x))
    assert len(set(picks.tolist())) == 4
    assert set(x[picks[:2], 0]) == {0.0, 9.0}  # one per cluster first, then the fill-up


# --- every strategy ----------------------------------------------------------------------


@pytest.mark.parametrize("query", ALL, ids=lambda q: type(q).__name__)
@pytest.mark.parametrize("n", [1, 7, 30])
def test_picks_are_distinct_in_range_and_seeded(query, n):
    s = _scores(m=30)
    picks = _select(query, n, s, seed=3)
    assert picks.dtype == np.int64 and picks.shape == (n,)
    assert len(set(picks.tolist())) == n and picks.min() >= 0 and picks.max() < 30
    assert np.array_equal(picks, _select(query, n, s, seed=3))


def test_random_depends_on_the_seed():
    s = Scores()
    orders = {tuple(Random().select(5, np.arange(50), s, _rng(seed))) for seed in range(5)}
    assert len(orders) == 5


@pytest.mark.parametrize("query", ALL, ids=lambda q: type(q).__name__)
@pytest.mark.parametrize("n", [0, -1, 31, 2.0, True, None])
def test_bad_n_is_refused(query, n):
    with pytest.raises(ValueError, match=r"n=.* must be an integer in 1\.\.30"):
        _select(query, n, _scores(m=30))


@pytest.mark.parametrize("query", ALL, ids=lambda q: type(q).__name__)
def test_missing_or_misshapen_arrays_are_refused(query):
    full = _scores(m=10)
    for field in query.needs:
        with pytest.raises(ValueError, match=f"needs scores.{field}"):
            query.select(2, np.arange(10), Scores(**{**vars(full), field: None}), _rng())
        short = getattr(full, field)[:9]
        with pytest.raises(ValueError, match=rf"scores.{field} must be \(10 candidates"):
            query.select(2, np.arange(10), Scores(**{**vars(full), field: short}), _rng())
    # what it does not need may be missing
    lacking = Scores(**{f: getattr(full, f) if f in query.needs else None for f in NEEDS})
    assert len(query.select(2, np.arange(10), lacking, _rng())) == 2


def test_malformed_scores_are_refused():
    s = _scores(m=10, d=5)
    with pytest.raises(ValueError, match="apply softmax"):
        _select(Margin(), 2, Scores(proba=np.log(s.proba)))
    with pytest.raises(ValueError, match="at least 2 columns"):
        _select(Entropy(), 2, Scores(proba=np.ones((10, 1))))
    with pytest.raises(ValueError, match="non-finite"):
        _select(Coreset(), 2, Scores(embedding=np.full((10, 5), np.nan)))
    with pytest.raises(ValueError, match=r"labeled_embedding must be \(revealed, 5\)"):
        _select(Coreset(), 2, Scores(embedding=s.embedding, labeled_embedding=np.ones((3, 4))))
    with pytest.raises(ValueError, match="candidates must be 1-D"):
        Random().select(1, np.zeros((3, 2)), Scores(), _rng())


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_cold_start_refuses_a_bad_k(k):
    with pytest.raises(ConfigError, match=rf"^k={k} must be a positive integer"):
        ColdStart(k=k)


# --- configs and imports -----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(QUERY_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_query_config_instantiates(path):
    query = instantiate(OmegaConf.load(path))
    assert isinstance(query, Query)
    assert query.needs <= set(NEEDS)
    assert path.stem.replace("_", "") == type(query).__name__.lower()
    assert len(_select(query, 3, _scores(m=12))) == 3


def test_every_strategy_has_a_config():
    targets = {OmegaConf.load(p)._target_ for p in QUERY_DIR.glob("*.yaml")}
    assert {f"labelbench.strategies.query.{type(q).__name__}" for q in ALL} == targets


def test_query_module_imports_neither_torch_nor_sklearn():
    code = (
        "import sys, labelbench.strategies.query; "
        "assert not {'torch', 'sklearn'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
