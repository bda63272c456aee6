"""Noisy-label methods of issue 18: DivideMix, Co-teaching+, JoCoR and forward / backward
loss correction. Their pieces on hand-made tensors against the papers' formulas, short real
runs, the hidden-label contract, exact resume and bad input."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_hidden_labels_unused, assert_resumes_exactly, refusal_lines, revealed
from labelbench.config import ConfigError, run_key
from labelbench.labels import Clean, Full, reveal
from labelbench.run import build, run
from labelbench.strategies.coteaching import CoTeachingPlusModule, disagreement
from labelbench.strategies.dividemix import (
    clean_probability,
    co_guess,
    co_refine,
    negative_entropy,
    normalised,
    prior_penalty,
)
from labelbench.strategies.jocor import jocor_loss, symmetric_kl
from labelbench.strategies.loss_correction import (
    BackwardCorrected,
    BackwardCorrection,
    ForwardCorrected,
    ForwardCorrection,
    anchor_transition,
    given_transition,
    realised_transition,
)

NOISY = ["dataset=synthetic", "dataset.n_samples=400", "regime=symmetric", "regime.rate=0.2",
         "budget=total", "budget.total=120", "logger=none"]  # fmt: skip
SHORT = ["strategy.max_steps=60", "strategy.eval_every=20"]
# Every phase of each method inside SHORT: 120 items in batches of 64 are 2 steps a pass.
EXTRA = {
    "dividemix": ["strategy.warmup_periods=3", "strategy.period=3", "strategy.rampup_periods=2"],
    "coteaching_plus": ["strategy.init_steps=20", "strategy.ramp_steps=20"],
    "jocor": ["strategy.ramp_steps=20"],
    "forward_correction": [],
    "backward_correction": [],
}
ERROR_PREFIX = "labelbench-run: error:"
OPTIMIZER = functools.partial(torch.optim.Adam, lr=1e-3)


def _overrides(strategy: str, *extra: str) -> list[str]:
    return [*NOISY, f"strategy={strategy}", *SHORT, *EXTRA[strategy], *extra]


# --- real runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(EXTRA))
def test_runs_end_to_end_on_noisy_labels(strategy, compose_fast):
    record = run(*compose_fast(*_overrides(strategy), fast=False))
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == strategy and "upper_bound" not in record.labels
    assert record.metrics["test/acc"] > 0.4, record.metrics  # 4 classes: chance is 0.25
    assert record.metrics["fit/steps"] == 60
    if strategy == "dividemix":  # a division at step 9 and every 3 steps after it
        assert record.metrics["fit/divisions"] == 17 and record.metrics["fit/period"] == 3
        assert 0 < record.metrics["fit/clean_share"] < 1
    if strategy.endswith("_correction"):
        assert record.metrics["fit/estimate_steps"] == 60  # the cross-entropy fit first
        assert 0 < record.metrics["fit/transition_diag"] <= 1


def test_known_transition_is_a_marked_oracle_upper_bound(compose_fast):
    """transition=known: T is the realised confusion of the revealed (noisy) labels against
    their true labels, which only the run can hand over; the record says so."""
    cfg, choices = compose_fast(
        *_overrides("forward_correction", "strategy.transition=known"), fast=False
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == "forward_correction[oracle]"
    assert record.labels["upper_bound"] is True
    assert "fit/estimate_steps" not in record.metrics  # one fit: nothing to estimate

    parts, task, pool = revealed(cfg)
    strategy = parts.strategy
    with pytest.raises(ValueError, match="transition=known needs the run"):
        strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    strategy.oracle_pool, _ = reveal(task, Clean(), Full(), 0, 0)
    strategy.max_steps = 20
    strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)
    true, observed = task.y[pool.indices], pool.labels
    assert (true != observed).any()  # the revealed labels are noisy
    for i in range(task.num_classes):
        row = [np.mean(observed[true == i] == j) for j in range(task.num_classes)]
        assert np.allclose(strategy.transition_[i], row)


# --- the hidden-label contract -------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    ["dividemix", "coteaching_plus", "jocor", "forward_correction", "backward_correction"],
)
def test_hidden_pool_labels_change_nothing(strategy, compose_fast):
    """Divisions, disagreements, joint losses and estimated transition matrices come from
    inputs and observed labels only: scrambling the true labels of the unrevealed pool
    leaves the fitted model's predictions bit-identical (CPU)."""
    cfg, _ = compose_fast(*_overrides(strategy, "budget.balanced=false"), fast=False)
    assert_hidden_labels_unused(cfg)


# --- exact resume --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy", ["dividemix", "coteaching_plus", "jocor", "forward_correction"]
)
def test_crashed_fit_resumes_exactly(strategy, compose_fast, tmp_path, monkeypatch):
    """Both networks, DivideMix's per-item clean probabilities and its division streams
    (the crash falls mid-period: divisions at steps 9, 12, ..., 39, 42), and the estimated
    loss correction's two fits (the crash is in the second) all resume bit for bit."""
    resumable = _overrides(strategy, "strategy.patience=0", "checkpoint.every_steps=20")
    whole = run(*compose_fast(*resumable, fast=False))
    assert whole.status == "ok", whole.error

    cfg, choices = compose_fast(*resumable, fast=False)
    crash_in = 2 if strategy == "forward_correction" else 1
    fits = {"n": 0, "last": None}

    def crashes(module) -> bool:
        if fits["last"] is not module:
            fits["n"], fits["last"] = fits["n"] + 1, module
        return fits["n"] >= crash_in and module.steps_done >= 40

    assert_resumes_exactly(cfg, choices, whole, monkeypatch, tmp_path, crashes)


# --- DivideMix, by hand --------------------------------------------------------------------


def test_losses_are_normalised_and_the_low_loss_mode_is_clean():
    losses = np.array([2.0, 4.0, 3.0, 6.0])
    assert normalised(losses).tolist() == [0.0, 0.5, 0.25, 1.0]
    rng = np.random.default_rng(0)
    low = 0.2 + 0.05 * rng.standard_normal(30)
    high = 3.0 + 0.3 * rng.standard_normal(10)
    losses = np.concatenate([high[:5], low, high[5:]])
    prob = clean_probability(losses, seed=0)
    assert np.all(prob[5:35] > 0.9) and np.all(prob[:5] < 0.1) and np.all(prob[35:] < 0.1)
    assert np.array_equal(prob, clean_probability(losses, seed=0))  # seeded: reproducible
    assert clean_probability(np.full(5, 0.7), seed=0).tolist() == [1.0] * 5


def test_co_refinement_and_co_guessing_by_hand():
    y = torch.tensor([[1.0, 0.0, 0.0]])
    p = torch.tensor([[0.2, 0.5, 0.3]])
    mix = [0.6 * 1 + 0.4 * 0.2, 0.4 * 0.5, 0.4 * 0.3]  # w y + (1 - w) p, w = 0.6
    squared = [m**2 for m in mix]  # T = 0.5: p^(1/T) = p^2, renormalised
    expected = [s / sum(squared) for s in squared]
    got = co_refine(y, p, torch.tensor([0.6]), temperature=0.5)
    assert got[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert co_refine(y, p, torch.tensor([1.0]), 0.5)[0].tolist() == [1.0, 0.0, 0.0]  # clean

    guesses = [torch.tensor([[0.7, 0.3]]), torch.tensor([[0.5, 0.5]]),
               torch.tensor([[0.9, 0.1]]), torch.tensor([[0.3, 0.7]])]  # fmt: skip
    mean = [(0.7 + 0.5 + 0.9 + 0.3) / 4, (0.3 + 0.5 + 0.1 + 0.7) / 4]  # 0.6, 0.4
    expected = [
        mean[0] ** 2 / (mean[0] ** 2 + mean[1] ** 2),
        mean[1] ** 2 / (mean[0] ** 2 + mean[1] ** 2),
    ]
    assert co_guess(guesses, temperature=0.5)[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_prior_and_confidence_penalties_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]]))
    mean = [0.3, 0.425, 0.275]
    expected = sum(1 / 3 * math.log((1 / 3) / m) for m in mean)
    assert prior_penalty(logits).item() == pytest.approx(expected, rel=1e-5)
    assert prior_penalty(torch.zeros(4, 3)).item() == pytest.approx(0.0, abs=1e-7)
    rows = [[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]]
    expected = sum(sum(q * math.log(q) for q in row) for row in rows) / 2
    assert negative_entropy(logits).item() == pytest.approx(expected, rel=1e-5)


# --- Co-teaching+ and JoCoR, by hand ----------------------------------------------------------


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(2, len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def _coteaching_plus(net: nn.Module, peer: nn.Module, init_steps: int) -> CoTeachingPlusModule:
    return CoTeachingPlusModule(
        net, OPTIMIZER, {"train_y": torch.zeros(4, dtype=torch.long)},
        max_steps=10, eval_every=5, batch_size=4, seed=0,
        peer=peer, forget_rate=0.5, ramp_steps=0, init_steps=init_steps,
    )  # fmt: skip


def test_coteaching_plus_exchanges_on_the_disagreement_set():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    peer_logits = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    assert disagreement(logits, peer_logits).tolist() == [1, 2]

    # net: x -> (x0, x1); peer: x -> (x1, x0): they disagree wherever x0 != x1
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 3.0], [1.0, 4.0], [5.0, 0.5]])
    y = torch.tensor([0, 0, 1, 1, 1])
    module = _coteaching_plus(_linear([[1, 0], [0, 1]]), _linear([[0, 1], [1, 0]]), init_steps=3)
    module.next_labeled = lambda: (x, y)
    module.steps_done = 3

    # disagreement: rows 0, 1, 3, 4 (row 2 ties, 3 = 3: both say class 0); each network
    # learns from the ceil(0.5 * 4) = 2 of them with the smallest loss under the other.
    def ce(z, label):
        return -z[label] + math.log(sum(math.exp(v) for v in z))

    rows = [0, 1, 3, 4]
    net_ce = {r: ce(x[r].tolist(), int(y[r])) for r in rows}
    peer_ce = {r: ce(x[r].flip(0).tolist(), int(y[r])) for r in rows}
    net_keeps = sorted(rows, key=lambda r: net_ce[r])[:2]  # what net trusts: peer learns it
    peer_keeps = sorted(rows, key=lambda r: peer_ce[r])[:2]
    expected = np.mean([net_ce[r] for r in peer_keeps]) + np.mean([peer_ce[r] for r in net_keeps])
    assert module.training_loss().item() == pytest.approx(expected, rel=1e-6)
    # before init_steps: plain co-teaching on the whole batch
    module.steps_done = 2
    net_keeps = sorted(range(5), key=lambda r: ce(x[r].tolist(), int(y[r])))[:3]
    peer_keeps = sorted(range(5), key=lambda r: ce(x[r].flip(0).tolist(), int(y[r])))[:3]
    expected = np.mean([ce(x[r].tolist(), int(y[r])) for r in peer_keeps]) + np.mean(
        [ce(x[r].flip(0).tolist(), int(y[r])) for r in net_keeps]
    )
    assert module.training_loss().item() == pytest.approx(expected, rel=1e-6)


def test_coteaching_plus_without_disagreement_learns_nothing():
    twin = _coteaching_plus(_linear([[1, 0], [0, 1]]), _linear([[1, 0], [0, 1]]), init_steps=0)
    twin.next_labeled = lambda: (torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1, 0]))
    loss = twin.training_loss()
    assert loss.item() == 0.0
    loss.backward()
    assert twin.net.weight.grad.abs().sum() == 0 and twin.peer.weight.grad.abs().sum() == 0


def test_jocor_joint_loss_by_hand():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    peer_logits = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    y = torch.tensor([0, 0])

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    expected = []
    for a, b, label in zip(logits.tolist(), peer_logits.tolist(), y.tolist(), strict=True):
        p, q = softmax(a), softmax(b)
        ce = -math.log(p[label]) - math.log(q[label])
        kl = sum(qk * math.log(qk / pk) for pk, qk in zip(p, q, strict=True)) + sum(
            pk * math.log(pk / qk) for pk, qk in zip(p, q, strict=True)
        )
        expected.append(0.1 * ce + 0.9 * kl)
    got = jocor_loss(logits, peer_logits, y, co_lambda=0.9)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert symmetric_kl(logits, logits).abs().max().item() < 1e-7
    plain = F.cross_entropy(logits, y, reduction="none") + F.cross_entropy(
        peer_logits, y, reduction="none"
    )
    assert torch.allclose(jocor_loss(logits, peer_logits, y, co_lambda=0.0), plain)


# --- loss correction, by hand -------------------------------------------------------------

T = np.array([[0.8, 0.2], [0.3, 0.7]])


def test_forward_and_backward_corrected_losses_by_hand():
    logits = torch.tensor([[1.0, 0.0], [-0.5, 0.5]])
    labels = [1, 0]
    y = torch.tensor(labels)
    p = [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in logits.tolist()]
    # -log (p T)[y]
    forward = [-math.log(sum(p[i][j] * T[j, labels[i]] for j in range(2))) for i in range(2)]
    t_inv = np.array([[0.7, -0.2], [-0.3, 0.8]]) / (0.8 * 0.7 - 0.2 * 0.3)
    # (T^-1 l)[y], l_j = -log p_j
    backward = [sum(t_inv[labels[i], j] * -math.log(p[i][j]) for j in range(2)) for i in range(2)]
    assert ForwardCorrected(T).per_item(logits, y).tolist() == pytest.approx(forward, rel=1e-6)
    assert BackwardCorrected(T).per_item(logits, y).tolist() == pytest.approx(backward, rel=1e-5)
    assert ForwardCorrected(T)(logits, y).item() == pytest.approx(np.mean(forward), rel=1e-6)


def test_identity_transition_is_cross_entropy():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    y = torch.tensor([2, 1])
    ce = F.cross_entropy(logits, y)
    for loss in (ForwardCorrected(np.eye(3)), BackwardCorrected(np.eye(3))):
        assert loss(logits, y).item() == pytest.approx(ce.item(), rel=1e-6)
        grad = torch.autograd.grad(loss(logits.requires_grad_(), y), logits)[0]
        assert torch.allclose(grad, torch.autograd.grad(F.cross_entropy(logits, y), logits)[0])


def test_anchor_points_recover_the_transition_matrix():
    """Per class, the anchor (the most confident item below the 97th percentile) reads T's
    row; the 3 over-confident outliers of each class are passed over."""
    t = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.05, 0.7]])
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        rows += [t[i]] * 2  # anchors
        outlier = np.full(3, 0.01)
        outlier[i] = 0.98
        rows += [outlier] * 3  # above the anchors: the top 3 of 100 are filtered out
    while len(rows) < 100:  # mixtures of the rows: less confident than any anchor
        w = rng.dirichlet(np.ones(3))
        rows.append(w @ t)
    probs = np.array(rows)
    assert np.allclose(anchor_transition(probs), t)
    # without the filter the outliers are the anchors
    raw = anchor_transition(probs, filter_outlier=False)
    assert np.allclose(np.diag(raw), 0.98 / 1.0)


def test_realised_transition_by_hand():
    true = np.array([0, 0, 0, 0, 1, 1, 2])
    observed = np.array([0, 0, 0, 1, 1, 2, 2])
    got = realised_transition(true, observed, 4)
    assert np.allclose(got[0], [0.75, 0.25, 0, 0])
    assert np.allclose(got[1], [0, 0.5, 0.5, 0])
    assert np.allclose(got[2], [0, 0, 1, 0])
    assert np.allclose(got[3], [0, 0, 0, 1])  # no item of class 3: no evidence of noise


def test_given_transition_is_validated():
    assert np.allclose(given_transition([[0.5, 0.5], [0.3333, 0.6667]], invertible=True).sum(1), 1)
    with pytest.raises(ConfigError, match=r"^transition=\[\[0.5,0.4\],\[0,1\]\] is not row-st"):
        given_transition([[0.5, 0.4], [0, 1]], invertible=False)
    with pytest.raises(ConfigError, match="is singular; backward correction needs T"):
        given_transition([[0.5, 0.5], [0.5, 0.5]], invertible=True)
    given_transition([[0.5, 0.5], [0.5, 0.5]], invertible=False)  # forward needs no inverse
    with pytest.raises(ConfigError, match="is not a square matrix"):
        given_transition([[1.0, 0.0]], invertible=False)
    with pytest.raises(ConfigError, match="has a negative or non-finite entry"):
        given_transition([[1.5, -0.5], [0, 1]], invertible=False)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy=dividemix", "strategy.p_threshold=0"], "p_threshold=0 is outside (0, 1)"),
        (["strategy=dividemix", "strategy.p_threshold=1"], "p_threshold=1 is outside (0, 1)"),
        (["strategy=dividemix", "strategy.alpha=0"], "alpha=0 is outside (0, inf)"),
        (["strategy=dividemix", "strategy.temperature=0"], "temperature=0 is outside (0, inf)"),
        (["strategy=dividemix", "strategy.lambda_u=-1"], "lambda_u=-1 must be a non-negative"),
        (["strategy=dividemix", "strategy.period=0"], "period=0 must be a positive integer"),
        (["strategy=dividemix", "strategy.ema_decay=0.999"], "ema_decay=0.999: dividemix"),
        (["strategy=jocor", "strategy.co_lambda=1.5"], "co_lambda=1.5 is outside [0, 1]"),
        (["strategy=jocor", "strategy.co_lambda=-0.1"], "co_lambda=-0.1 is outside [0, 1]"),
        (["strategy=coteaching_plus", "strategy.init_steps=-1"], "init_steps=-1 must be a non"),
        (
            ["strategy=forward_correction", "strategy.transition=guess"],
            "transition='guess' is not one of estimated, known or a row-stochastic matrix",
        ),
        (
            ["strategy=backward_correction", "strategy.transition=[[0.5,0.5],[0.5,0.5]]"],
            "transition=[[0.5,0.5],[0.5,0.5]] is singular",
        ),
    ],
)
def test_bad_arguments_refused_before_training(overrides, message, compose_fast):
    cfg, _ = compose_fast(*NOISY, *overrides, fast=False)
    with pytest.raises(ConfigError, match=r"^strategy\.") as info:
        build(cfg, run_key(cfg))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_given_transition_must_match_the_classes(compose_fast):
    cfg, _ = compose_fast(
        *_overrides("forward_correction", "strategy.transition=[[0.9,0.1],[0.2,0.8]]"),
        fast=False,
    )
    parts, task, pool = revealed(cfg)
    with pytest.raises(ConfigError, match=r"^transition has 2 rows but the task has 4 classes"):
        parts.strategy.check(pool, task.view())
    assert BackwardCorrection(OPTIMIZER, transition=np.eye(4).tolist()).matrix.shape == (4, 4)
    assert not ForwardCorrection(OPTIMIZER).upper_bound
    assert ForwardCorrection(OPTIMIZER, transition="known").upper_bound


def test_known_singular_transition_for_backward_is_refused(compose_fast):
    """A realised noise without an inverse (here: every revealed label is class 0) is
    refused before the network trains."""
    cfg, _ = compose_fast(
        *_overrides("backward_correction", "strategy.transition=known"), fast=False
    )
    parts, task, pool = revealed(cfg)
    pool = dataclasses.replace(pool, labels=np.zeros_like(pool.labels))
    parts.strategy.oracle_pool, _ = reveal(task, Clean(), Full(), 0, 0)
    with pytest.raises(ConfigError, match=r"^transition=known: the realised noise .* singular"):
        parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)


def test_cli_refuses_a_singular_transition_for_backward_correction(tmp_path):
    singular = "[[0.5,0.5,0,0],[0.5,0.5,0,0],[0,0,1,0],[0,0,0,1]]"
    args = [*NOISY, "strategy=backward_correction", f"strategy.transition={singular}"]
    lines = refusal_lines(tmp_path, *args)
    assert lines == [
        f"{ERROR_PREFIX} strategy.transition={singular} is singular; backward correction"
        " needs T^-1: allowed: an invertible matrix"
    ]
