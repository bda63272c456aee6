"""BALD and BatchBALD on MC-dropout passes, and TypiClust every round: the scores against
their formulas on hand-made passes, NetPredictor.mc_proba (seeded, consistent masks,
batch-norm in eval mode), short active runs through labelbench.run, hidden labels that
change nothing, resume between rounds, and the refusals."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import refusal_lines
from labelbench.config import ConfigError, run_key
from labelbench.labels.reveal import Labeler
from labelbench.models.mlp import MLP
from labelbench.run import build, run
from labelbench.strategies.active import Active
from labelbench.strategies.lightning import NetPredictor
from labelbench.strategies.query import (
    Bald,
    BatchBald,
    ColdStart,
    Entropy,
    Scores,
    TypiClust,
    _draw_configurations,
    _joint_entropy,
    bald,
)

ACTIVE = ["dataset=synthetic", "dataset.n_samples=400", "logger=none", "strategy=active",
          "strategy.inner.max_steps=40", "strategy.inner.eval_every=20", "budget.total=40",
          "strategy.initial=10", "strategy.query_size=10", "model=mlp", "model.dropout=0.3"]  # fmt: skip
# Fewer passes and configurations keep BatchBALD quick on one core (exact up to 4 picks of
# 4 classes, then drawn).
QUERIES = {
    "bald": [],
    "batch_bald": ["strategy.query.samples=20", "strategy.query.joint_samples=1000"],
    "typiclust": [],
}


def _h(*p: float) -> float:
    """Shannon entropy in nats, by hand."""
    return -sum(q * math.log(q) for q in p if q > 0)


def _select(query, n: int, mc: np.ndarray, seed: int = 0) -> list[int]:
    return query.select(n, np.arange(len(mc)), Scores(mc_proba=mc), np.random.default_rng(seed))


# --- BALD --------------------------------------------------------------------------------


def test_bald_is_the_mutual_information_and_prefers_disagreement():
    mc = np.array(
        [
            [[0.9, 0.1], [0.9, 0.1]],  # passes agree, confident
            [[0.9, 0.1], [0.1, 0.9]],  # passes disagree
            [[0.5, 0.5], [0.5, 0.5]],  # passes agree that they do not know
            [[0.7, 0.3], [0.4, 0.6]],
        ]
    )
    by_hand = [
        _h(0.9, 0.1) - _h(0.9, 0.1),
        _h(0.5, 0.5) - (_h(0.9, 0.1) + _h(0.1, 0.9)) / 2,
        _h(0.5, 0.5) - _h(0.5, 0.5),
        _h(0.55, 0.45) - (_h(0.7, 0.3) + _h(0.4, 0.6)) / 2,
    ]
    assert np.allclose(bald(mc), by_hand, atol=1e-12)
    assert by_hand[1] == pytest.approx(math.log(2) - 0.3250829733914482)
    for seed in range(4):
        picks = _select(Bald(samples=2), 4, mc, seed)
        assert list(picks[:2]) == [1, 3] and set(picks[2:]) == {0, 2}  # 0 and 2 tie at 0
    # Entropy of the mean cannot tell disagreement from shared ignorance: BALD can.
    mean = Scores(proba=mc.mean(axis=1))
    assert Entropy().select(1, np.arange(4), mean, np.random.default_rng(0))[0] in (1, 2)
    assert _select(Bald(samples=2), 1, mc)[0] == 1


# --- BatchBALD ---------------------------------------------------------------------------


def _partitions() -> np.ndarray:
    """Four passes (weights w0..w3) and three candidates: A tells {w0, w1} from {w2, w3},
    A2 is a copy of A, B tells {w0, w2} from {w1, w3} a little less surely."""
    a = np.array([[0.95, 0.05], [0.95, 0.05], [0.05, 0.95], [0.05, 0.95]])
    b = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    return np.stack([a, a, b])


def test_batch_bald_skips_a_copy_that_bald_takes():
    mc = _partitions()
    assert bald(mc)[0] == bald(mc)[1] > bald(mc)[2]
    for seed in range(4):
        assert sorted(_select(Bald(samples=4), 2, mc, seed)) == [0, 1]  # top-2 BALD: both copies
        first, second = _select(BatchBald(samples=4), 2, mc, seed)
        assert first in (0, 1) and second == 2  # the copy adds (almost) nothing once one is in


def test_joint_mutual_information_of_two_items_by_hand():
    mc = _partitions()
    a, b = mc[0], mc[2]
    joint = {(i, j): np.mean([a[t, i] * b[t, j] for t in range(4)]) for i in (0, 1) for j in (0, 1)}
    h_joint = _h(*joint.values())
    conditional = np.mean([_h(*a[t]) for t in range(4)]) + np.mean([_h(*b[t]) for t in range(4)])
    # The exact sum over configurations of the picked label (A's two classes x 4 passes).
    assert _joint_entropy(a.T, None, b[None])[0] == pytest.approx(h_joint, abs=1e-12)
    mutual = h_joint - conditional
    # Independent partitions of the weights: the pair's information is the sum of each one's.
    assert mutual == pytest.approx(bald(mc)[0] + bald(mc)[2], abs=1e-9)
    # The drawn estimate (the reference's, for many picked labels) converges to it.
    rng = np.random.default_rng(0)
    drawn = _draw_configurations(a[None], 5000, rng)
    estimate = _joint_entropy(drawn, drawn.mean(axis=1), b[None])[0]
    assert estimate == pytest.approx(h_joint, abs=0.02)


def test_batch_bald_first_pick_is_balds_and_sampling_takes_over_for_large_batches():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 1, 3)) * 2 + rng.normal(size=(40, 6, 3))
    mc = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    for seed in range(3):
        assert _select(BatchBald(samples=6), 1, mc, seed)[0] == np.argmax(bald(mc))
    # 3^t configurations outgrow joint_samples=30 at the 4th pick: drawn from then on, seeded.
    small = BatchBald(samples=6, joint_samples=30)
    picks = _select(small, 12, mc, seed=1)
    assert len(set(picks)) == 12 and picks[0] == np.argmax(bald(mc))
    assert list(picks) == list(_select(small, 12, mc, seed=1))


# --- MC dropout passes -------------------------------------------------------------------


def _predictor(dropout: float, batch_size: int = 4) -> NetPredictor:
    torch.manual_seed(0)
    return NetPredictor(MLP((6,), 3, hidden=(32,), dropout=dropout), (6,), {}, batch_size)


def test_mc_proba_is_seeded_consistent_across_rows_and_leaves_the_global_rng_alone():
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    x[7] = x[0]  # the same input, in another batch of 4
    predictor = _predictor(0.3)
    state = torch.get_rng_state()
    mc = predictor.mc_proba(x, 8, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert mc.shape == (10, 8, 3) and np.allclose(mc.sum(axis=2), 1)
    assert np.array_equal(mc, predictor.mc_proba(x, 8, seed=5))
    assert not np.array_equal(mc, predictor.mc_proba(x, 8, seed=6))
    assert len({tuple(np.round(mc[0, t], 6)) for t in range(8)}) == 8  # every pass its own draw
    assert np.array_equal(mc[0], mc[7])  # one mask per pass for every row, across batches
    assert not predictor.net.training  # still in eval mode afterwards
    assert np.allclose(predictor.predict_proba(x), _predictor(0.3).predict_proba(x))


def test_mc_proba_without_dropout_repeats_predict_proba():
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    predictor = _predictor(0.0)
    assert not NetPredictor.dropout_layers(predictor.net)
    mc = predictor.mc_proba(x, 4, seed=0)
    for t in range(4):
        assert np.array_equal(mc[:, t], predictor.predict_proba(x))
    assert np.allclose(bald(mc), 0, atol=1e-9)


def test_mc_proba_keeps_batch_norm_in_eval_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    predictor = NetPredictor(net, (6,), {})
    before = net[1].running_mean.clone()
    one = np.ones((1, 6), dtype=np.float32)  # batch-norm in train mode refuses a batch of 1
    mc = predictor.mc_proba(one, 6, seed=0)
    assert torch.equal(net[1].running_mean, before)
    assert len({tuple(np.round(mc[0, t], 6)) for t in range(6)}) > 1


# --- TypiClust every round ---------------------------------------------------------------


def _three_blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three 2-D blobs (a core of 3 at the centre, 8 on a unit circle around it)."""
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0]])
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1)
    x = np.concatenate([np.concatenate([np.tile(c, (3, 1)), c + ring]) for c in centres])
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], np.repeat(np.arange(3), 11)[order], centres


def test_typiclust_queries_the_clusters_without_labels_first():
    x, blob, centres = _three_blobs()
    labeled = np.array([[0.5, 0.0]])  # an item of blob 0 is labeled already
    for seed in range(3):
        scores = Scores(embedding=x, labeled_embedding=labeled)
        picks = TypiClust().select(3, np.arange(len(x)), scores, np.random.default_rng(seed))
        assert sorted(blob[picks[:2]]) == [1, 2] and blob[picks[2]] == 0
        assert np.allclose(np.sort(x[picks[:2]], axis=0), np.sort(centres[1:], axis=0))


def test_typiclust_clusters_the_inputs_and_cold_start_the_network(compose_fast):
    assert TypiClust().features == "inputs" and ColdStart().features == "network"
    with pytest.raises(ConfigError, match=r"^features='pixels' is not one of network, inputs$"):
        TypiClust(features="pixels")
    cfg, _ = compose_fast(*ACTIVE, "strategy/query=typiclust", fast=False)
    parts = build(cfg, run_key(cfg))
    task = parts.source.load(0)
    labeler = Labeler(task, parts.regime, parts.budget, 0, 0)
    labeler.buy_first(10)
    pool = labeler.label_pool()

    class NoNetwork:  # the inputs need no model: nothing of it may be called
        def __getattr__(self, name):
            raise AssertionError(name)

    scores = parts.strategy._scores(NoNetwork(), pool, task.view())
    assert np.array_equal(scores.embedding, task.x[pool.unlabeled].reshape(len(pool.unlabeled), -1))
    assert np.array_equal(scores.labeled_embedding, task.x[pool.indices])
    assert scores.proba is None and scores.mc_proba is None


# --- through the run ---------------------------------------------------------------------


def test_each_query_runs_rounds_end_to_end(compose_fast):
    orders = {}
    for query, extra in QUERIES.items():
        record = run(*compose_fast(*ACTIVE, f"strategy/query={query}", *extra, fast=False))
        assert record.status == "ok", (query, record.error)
        assert [p["labels"] for p in record.curve] == [10, 20, 30, 40]
        orders[query] = record.labels["indices"]
        assert len(set(orders[query])) == 40
    assert len({tuple(o[:10]) for o in orders.values()}) == 1  # the same paired initial items
    assert len({tuple(o[10:]) for o in orders.values()}) == 3
    # TypiClust on the inputs needs no network: a logistic regression inner works too.
    args = [a for a in ACTIVE if not a.startswith("strategy.inner")]
    record = run(*compose_fast(*args, "strategy/query=typiclust", "strategy@strategy.inner=logreg",
                               fast=False))  # fmt: skip
    assert record.status == "ok", record.error
    assert record.labels["indices"][10:20] == orders["typiclust"][10:20]  # same inputs, same picks


@pytest.mark.parametrize("query", QUERIES)
def test_hidden_labels_of_the_pool_change_nothing(query, compose_fast):
    """Queries see only Scores: scrambling the true labels of every pool item never bought
    gives the same label order and bit-identical predictions every round (CPU)."""
    cfg, _ = compose_fast(
        *ACTIVE, f"strategy/query={query}", *QUERIES[query], "budget.balanced=false", fast=False
    )
    parts = build(cfg, run_key(cfg))
    task = parts.source.load(0)

    def rounds(task):
        labeler = Labeler(task, parts.regime, parts.budget, 0, 0)
        probs = []
        parts.strategy.fit_rounds(
            labeler, task.view(), parts.model, parts.trainer, seed=0, checkpoint=None,
            report=lambda n, p: probs.append(p.predict_proba(task.x[task.split.test])),
        )  # fmt: skip
        return labeler.bought, probs

    bought, probs = rounds(task)
    hidden = np.setdiff1d(task.split.pool, bought)
    y = task.y.copy()
    y[hidden] = (np.random.default_rng(7).permutation(y[hidden]) + 1) % task.num_classes
    bought2, probs2 = rounds(dataclasses.replace(task, y=y))
    assert np.array_equal(bought, bought2) and len(probs) == 4
    assert all(np.array_equal(a, b) for a, b in zip(probs, probs2, strict=True))


def test_bald_killed_between_rounds_resumes_to_the_same_record(compose_fast, tmp_path, monkeypatch):
    args = [*ACTIVE, "strategy/query=bald"]
    whole = run(*compose_fast(*args, fast=False))
    cfg, choices = compose_fast(*args, fast=False)
    cfg.paths.results_dir = str(tmp_path / "interrupted")
    original = Active._mc_proba

    def crash_in_round_two(self, predictor, pool, task, seed):
        if len(pool) == 30:
            raise RuntimeError("simulated kill")
        return original(self, predictor, pool, task, seed)

    monkeypatch.setattr(Active, "_mc_proba", crash_in_round_two)
    crashed = run(cfg, choices)
    assert crashed.status == "failed" and crashed.error["message"] == "simulated kill"
    state = tmp_path / "interrupted" / "checkpoints" / crashed.run_key / "rounds.json"
    assert json.loads(state.read_text())["round"] == 2
    monkeypatch.setattr(Active, "_mc_proba", original)
    resumed = run(cfg, choices)
    assert resumed.status == "ok", resumed.error
    assert resumed.labels["indices"] == whole.labels["indices"]
    assert resumed.curve == whole.curve and resumed.metrics == whole.metrics


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kwargs", "message"),
    [
        (Bald, {"samples": 1}, "samples=1 must be an integer >= 2 (MC dropout forward passes)"),
        (BatchBald, {"samples": 0}, "samples=0 must be an integer >= 2"),
        (BatchBald, {"joint_samples": 50}, "joint_samples=50 must be at least samples=100"),
        (TypiClust, {"k": 0}, "k=0 must be a positive integer"),
    ],
)
def test_bad_settings_are_refused_in_one_line(query, kwargs, message):
    with pytest.raises(ConfigError) as info:
        query(**kwargs)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model.dropout=0"], "strategy: query Bald needs a model with dropout (MC dropout) but"
                              " MLP has none; use e.g. model=mlp model.dropout=0.3"),
        (["model=linear"], "query Bald needs a model with dropout (MC dropout) but Linear has none"),
        (["strategy@strategy.inner=logreg"], "query Bald needs MC dropout passes but LogReg trains no network"),
        (["strategy.query.samples=1"], "strategy.query.samples=1 must be an integer >= 2"),
    ],
)  # fmt: skip
def test_bald_refusals_come_before_training(args, message, compose_fast, tmp_path):
    dropped = {"model=linear": "model.dropout", "strategy@strategy.inner=logreg": "strategy.inner"}
    base = [a for a in ACTIVE if not any(a.startswith(dropped.get(b, "-")) for b in args)]
    with pytest.raises(ConfigError) as info:
        run(*compose_fast(*base, "strategy/query=bald", *args, fast=False))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not list((tmp_path / "results").glob("runs/*.json"))


def test_cli_refuses_bald_without_dropout(tmp_path):
    lines = refusal_lines(tmp_path, *ACTIVE, "strategy/query=bald", "model.dropout=0")
    assert len(lines) == 1 and "query Bald needs a model with dropout" in lines[0], lines
