"""FreeMatch, SoftMatch, UDA and MixMatch: their thresholds, weights, schedules and losses
on hand-made tensors against the papers' formulas, real short runs with exact resume,
the hidden-label contract, and bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_hidden_labels_unused, assert_resumes_exactly, refusal_lines
from labelbench.config import ConfigError, run_key
from labelbench.run import build, run
from labelbench.strategies.freematch import FreeMatchModule, fairness_loss, freematch_thresholds
from labelbench.strategies.mixmatch import MixMatchModule, guess_labels, mixmatch_losses
from labelbench.strategies.semi import kept_batch_norm_stats
from labelbench.strategies.softmatch import SoftMatchModule, softmatch_weights, uniform_alignment
from labelbench.strategies.uda import tsa_cross_entropy, tsa_threshold, uda_consistency

METHODS = ["freematch", "softmatch", "uda", "mixmatch"]
SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "budget.total=40", "logger=none"]
SHORT = ["strategy.max_steps=60", "strategy.eval_every=20"]
# The unlabeled loss must act within SHORT.
EARLY = {
    "freematch": ["strategy.ema_p=0.9"],  # thresholds leave their start of 1 within 60 steps
    "softmatch": [],
    "uda": ["strategy.threshold=0.5", "strategy.tsa_schedule=linear"],
    "mixmatch": ["strategy.unlabeled_weight=10"],  # 100 at once swamps 60 steps' labels
}


def _overrides(strategy: str, *extra: str) -> list[str]:
    return [*SYNTHETIC, f"strategy={strategy}", *SHORT, *EARLY[strategy], *extra]


def _module(cls, num_classes: int = 3, **kwargs):
    """A module on a tiny network, attached to a one-process stand-in trainer: enough to
    run its statistics and losses by hand."""
    module = cls(
        nn.Linear(2, num_classes),
        torch.optim.SGD,
        {},
        max_steps=100,
        eval_every=10,
        batch_size=4,
        seed=0,
        mu=1,
        unlabeled_weight=1.0,
        num_classes=num_classes,
        **kwargs,
    )
    module.trainer = SimpleNamespace(world_size=1)
    return module


def _as_if_two_processes(module) -> None:
    """Both processes of a fake DDP run hold the same share: all_gather stacks it twice."""
    module.trainer = SimpleNamespace(world_size=2)
    module.all_gather = lambda t: torch.stack([t, t])


PROBS = torch.tensor(
    [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]]
)  # confidences 0.7, 0.8, 0.4, 0.6; pseudo-labels 0, 1, 2, 0


# --- FreeMatch ------------------------------------------------------------------------------


def _freematch(**overrides):
    kwargs = {
        "warmup_steps": 0,
        "ema_p": 0.5,
        "fairness_weight": 0.01,
        "use_quantile": False,
        "clip_thresh": False,
        "uniform_init": False,
        **overrides,
    }
    return _module(FreeMatchModule, **kwargs)


def test_freematch_thresholds_after_an_update_by_hand():
    module = _freematch()  # USB's start: p_model = label_hist = 1, tau = 1
    module.update_statistics(PROBS)
    # tau = .5 * 1 + .5 * mean(.7, .8, .4, .6)
    assert module.time_p.item() == pytest.approx(0.8125)
    # p_model = .5 * 1 + .5 * mean probabilities (.425, .4, .175)
    assert module.p_model.tolist() == pytest.approx([0.7125, 0.7, 0.5875])
    # label_hist = .5 * 1 + .5 * (2, 1, 1) / 4
    assert module.label_hist.tolist() == pytest.approx([0.75, 0.625, 0.625])
    local = freematch_thresholds(module.time_p, module.p_model)
    assert local.tolist() == pytest.approx(
        [0.8125, 0.8125 * 0.7 / 0.7125, 0.8125 * 0.5875 / 0.7125]
    )
    # the mask of the step: .7 >= .8125? no; .8 >= .798? yes; .4 >= .67? no; .6 no
    confidence, pseudo = PROBS.max(dim=1)
    assert (confidence >= local[pseudo]).tolist() == [False, True, False, False]


def test_freematch_start_quantile_and_clip_by_hand():
    module = _freematch(uniform_init=True)  # the paper's start: 1/C
    module.update_statistics(PROBS)
    assert module.time_p.item() == pytest.approx(0.5 / 3 + 0.5 * 0.625)
    assert module.p_model.tolist() == pytest.approx(
        [0.5 / 3 + 0.5 * p for p in (0.425, 0.4, 0.175)]
    )
    quantile = _freematch(use_quantile=True)
    quantile.update_statistics(PROBS)
    # 0.8-quantile of (.4, .6, .7, .8), linear: position 2.4 -> .7 + .4 * .1
    assert quantile.time_p.item() == pytest.approx(0.5 + 0.5 * 0.74)
    clipped = _freematch(ema_p=0.0, clip_thresh=True)
    clipped.update_statistics(torch.tensor([[0.98, 0.01, 0.01], [0.01, 0.97, 0.02]]))
    assert clipped.time_p.item() == pytest.approx(0.95)


def test_freematch_statistics_cover_every_process():
    single, double = _freematch(), _freematch()
    single.update_statistics(torch.cat([PROBS, PROBS]))
    _as_if_two_processes(double)
    double.update_statistics(PROBS)
    for name in ("time_p", "p_model", "label_hist"):
        assert torch.allclose(getattr(single, name), getattr(double, name))


def test_freematch_fairness_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [3.0, 1.0, 0.0]], requires_grad=True)
    p_model = torch.tensor([0.5, 0.3, 0.2])
    label_hist = torch.tensor([0.4, 0.4, 0.2])
    probs = np.exp(logits.detach().numpy())
    probs /= probs.sum(axis=1, keepdims=True)
    hist = np.array([2, 1, 0]) / 3  # arg-maxes 0, 1, 0: class 2 never predicted
    a = np.array([0.5 / 0.4, 0.3 / 0.4, 0.2 / 0.2])
    a /= a.sum()
    b = probs.mean(axis=0) * np.array([1 / hist[0], 1 / hist[1], 0.0])  # 1/0 -> 0
    b /= b.sum()
    expected = (a * np.log(b + 1e-12)).sum()
    loss = fairness_loss(logits, p_model, label_hist)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()  # through the mean probabilities; the histograms carry no gradient
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_freematch_unlabeled_loss_masks_and_adds_fairness():
    module = _freematch(fairness_weight=0.5)
    logits_weak = PROBS.log()  # softmax gives PROBS back
    logits_strong = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    )
    loss = module.unlabeled_loss(torch.arange(4), logits_weak, logits_strong)
    # only row 1 passes (test above): its cross-entropy against class 1, over 4 rows
    ce = -math.log(math.exp(2) / (math.exp(2) + 2))
    fair = fairness_loss(logits_strong[1:2], module.p_model, module.label_hist).item()
    assert loss.item() == pytest.approx(ce / 4 + 0.5 * fair)


# --- SoftMatch ------------------------------------------------------------------------------


def test_softmatch_weights_by_hand():
    confidence = torch.tensor([0.9, 0.6, 0.5, 0.3])
    weights = softmatch_weights(confidence, torch.tensor(0.6), torch.tensor(0.04), 2.0)
    # 1 at or above mu; exp(-(c - mu)^2 / (2 var / n_sigma^2)) = exp(-(c - .6)^2 / .02) below
    expected = [1.0, 1.0, math.exp(-0.01 / 0.02), math.exp(-0.09 / 0.02)]
    assert weights.tolist() == pytest.approx(expected)


def test_uniform_alignment_by_hand():
    aligned = uniform_alignment(torch.tensor([[0.6, 0.3, 0.1]]), torch.tensor([0.5, 0.3, 0.2]))
    # .6 / .5, .3 / .3, .1 / .2 = 1.2, 1, .5, renormalised (the 1e-6 terms are negligible)
    assert aligned[0].tolist() == pytest.approx([1.2 / 2.7, 1 / 2.7, 0.5 / 2.7], abs=1e-5)


def _softmatch(**overrides):
    kwargs = {"warmup_steps": 0, "ema_p": 0.5, "n_sigma": 2.0, "dist_align": True, **overrides}
    return _module(SoftMatchModule, **kwargs)


def _aligned_confidence(probs: np.ndarray, p_model: np.ndarray) -> np.ndarray:
    aligned = probs / p_model
    return (aligned / aligned.sum(axis=1, keepdims=True)).max(axis=1)


def test_softmatch_statistics_by_hand():
    module = _softmatch()
    probs = PROBS.numpy().astype(np.float64)
    logits_strong = torch.zeros(4, 3)
    module.unlabeled_loss(torch.arange(4), PROBS.log(), logits_strong)
    p_model = probs.mean(axis=0)  # the first batch sets it
    assert module.p_model.numpy() == pytest.approx(p_model, rel=1e-4)
    c = _aligned_confidence(probs, p_model)
    mu = 0.5 / 3 + 0.5 * c.mean()  # from 1/C
    var = 0.5 * 1.0 + 0.5 * c.var(ddof=1)  # from 1, unbiased
    assert module.prob_max_mu.item() == pytest.approx(mu, rel=1e-4)
    assert module.prob_max_var.item() == pytest.approx(var, rel=1e-4)
    # the second batch folds into the EMA of the class probabilities
    second = np.array([[0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    loss = module.unlabeled_loss(
        torch.arange(2), torch.tensor(second, dtype=torch.float32).log(), torch.zeros(2, 3)
    )
    p_model = 0.5 * p_model + 0.5 * second.mean(axis=0)
    assert module.p_model.numpy() == pytest.approx(p_model, rel=1e-4)
    c = _aligned_confidence(second, p_model)
    mu, var = 0.5 * mu + 0.5 * c.mean(), 0.5 * var + 0.5 * c.var(ddof=1)
    weights = np.exp(-(np.minimum(c - mu, 0) ** 2) / (2 * var / 4))
    # uniform strong logits: cross-entropy log 3 per row, weighted, over the batch
    assert loss.item() == pytest.approx((weights * math.log(3)).mean(), rel=1e-4)


def test_softmatch_without_alignment_and_across_processes():
    plain = _softmatch(dist_align=False)
    plain.unlabeled_loss(torch.arange(4), PROBS.log(), torch.zeros(4, 3))
    c = PROBS.max(dim=1).values.double().numpy()
    assert plain.prob_max_mu.item() == pytest.approx(0.5 / 3 + 0.5 * c.mean(), rel=1e-5)
    single, double = _softmatch(), _softmatch()
    single.unlabeled_loss(torch.arange(8), torch.cat([PROBS, PROBS]).log(), torch.zeros(8, 3))
    _as_if_two_processes(double)
    double.unlabeled_loss(torch.arange(4), PROBS.log(), torch.zeros(4, 3))
    for name in ("p_model", "prob_max_mu", "prob_max_var"):  # the variance over 8 items
        assert torch.allclose(getattr(single, name), getattr(double, name))
    # one item has no unbiased variance: it stays as it was
    one = _softmatch()
    one.unlabeled_loss(torch.arange(1), PROBS[:1].log(), torch.zeros(1, 3))
    assert one.prob_max_var.item() == 1.0


# --- UDA ------------------------------------------------------------------------------------


def test_tsa_thresholds_by_hand():
    c = 4  # eta = alpha (1 - 1/4) + 1/4
    assert [tsa_threshold("linear", t, c) for t in (0, 0.5, 1)] == pytest.approx([0.25, 0.625, 1.0])
    assert [tsa_threshold("exp", t, c) for t in (0, 0.5, 1)] == pytest.approx(
        [math.exp(-5) * 0.75 + 0.25, math.exp(-2.5) * 0.75 + 0.25, 1.0]
    )
    assert [tsa_threshold("log", t, c) for t in (0, 0.5, 1)] == pytest.approx(
        [0.25, (1 - math.exp(-2.5)) * 0.75 + 0.25, (1 - math.exp(-5)) * 0.75 + 0.25]
    )
    assert tsa_threshold("none", 0.3, c) == 1.0


def test_tsa_cross_entropy_by_hand():
    logits = torch.tensor([[3.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    # label probabilities: e^3/(e^3+1) = .95 (dropped at .6), .5 (kept), 1/(e^2+1) = .12
    # (kept: its label is not the arg-max, which a max-probability mask would drop)
    p = [math.exp(3) / (math.exp(3) + 1), 0.5, 1 / (math.exp(2) + 1)]
    expected = (-math.log(p[1]) - math.log(p[2])) / 2  # over the items kept
    assert tsa_cross_entropy(logits, y, 0.6).item() == pytest.approx(expected)
    assert tsa_cross_entropy(logits, y, 0.01).item() == 0.0  # none kept


def test_uda_consistency_by_hand():
    logits_weak = torch.tensor([[2.0, 0.0], [0.5, 0.0]])  # confidences .88 and .62
    logits_strong = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    t = 0.4
    loss = uda_consistency(logits_strong, logits_weak, threshold=0.8, temperature=t)
    q = 1 / (1 + math.exp(-2 / t))  # softmax(weak / T) of row 0: (q, 1 - q)
    log_s = [-math.log(1 + math.e), 1 - math.log(1 + math.e)]  # log softmax of (0, 1)
    row0 = -(q * log_s[0] + (1 - q) * log_s[1])
    assert loss.item() == pytest.approx(row0 / 2)  # row 1 under .8: masked, still counted
    assert uda_consistency(logits_strong, logits_weak, 0.95, t).item() == 0.0


# --- MixMatch -------------------------------------------------------------------------------


def test_mixmatch_guess_by_hand():
    views = torch.tensor([[[0.6, 0.4], [0.1, 0.9]], [[0.8, 0.2], [0.3, 0.7]]])  # (K=2, N=2, C)
    guess = guess_labels(views, temperature=0.5)
    # means (.7, .3) and (.2, .8); squared and renormalised
    expected = [[0.49 / 0.58, 0.09 / 0.58], [0.04 / 0.68, 0.64 / 0.68]]
    assert torch.allclose(guess, torch.tensor(expected))


def test_mixmatch_losses_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [0.0, 0.0], [math.log(3), 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.2, 0.8]])
    labeled, unlabeled = mixmatch_losses(logits, targets, n_labeled=2)
    # rows 0-1: -sum t log p with p = (.5, .5), (.75, .25)
    ce = (-math.log(0.5) + -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))) / 2
    assert labeled.item() == pytest.approx(ce)
    # rows 2-3: mean over rows and classes of (p - t)^2
    se = (0.25 + 0.25 + 0.55**2 + 0.55**2) / 4
    assert unlabeled.item() == pytest.approx(se)


def test_mixmatch_ramp_and_guessing_passes_keep_batch_norm():
    module = MixMatchModule.__new__(MixMatchModule)  # only the ramp's fields
    module.unlabeled_weight, module.rampup = 100.0, 4
    weights = []
    for step in (0, 1, 4, 9):
        module.steps_done = step
        weights.append(module.weight())
    assert weights == [0.0, 25.0, 100.0, 100.0]
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad(), kept_batch_norm_stats(net):
        net(torch.randn(8, 3) + 5)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    net(torch.randn(8, 3) + 5)  # outside, a training pass moves them
    assert not torch.equal(net[1].running_mean, before["1.running_mean"])


# --- real runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", METHODS)
def test_runs_and_resumes_exactly(strategy, compose_fast, tmp_path, monkeypatch):
    """A short real run, then a crash at step 40 and a relaunch: the metrics of the
    uninterrupted run, bit for bit (the statistics' buffers are in the checkpoint)."""
    resumable = _overrides(strategy, "strategy.patience=0", "checkpoint.every_steps=20")
    whole = run(*compose_fast(*resumable, fast=False))
    assert whole.status == "ok", whole.error
    assert whole.choices["strategy"] == strategy
    assert whole.metrics["fit/steps"] == 60
    assert whole.metrics["fit/unlabeled"] > 40
    assert whole.metrics["test/acc"] > 0.4, whole.metrics  # 4 classes: chance is 0.25

    cfg, choices = compose_fast(*resumable, fast=False)
    assert_resumes_exactly(
        cfg, choices, whole, monkeypatch, tmp_path, lambda module: module.steps_done >= 40
    )


@pytest.mark.parametrize("strategy", METHODS)
def test_hidden_pool_labels_change_nothing(strategy, compose_fast):
    """Scrambling the true labels of the unrevealed pool leaves the fitted model's
    predictions bit-identical (CPU)."""
    cfg, _ = compose_fast(*_overrides(strategy, "budget.balanced=false"), fast=False)
    assert_hidden_labels_unused(cfg)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy=freematch", "strategy.ema_p=1.0"], "ema_p=1.0 is outside [0, 1)"),
        (
            ["strategy=freematch", "strategy.fairness_weight=-1"],
            "fairness_weight=-1 must be a non-negative number",
        ),
        (["strategy=freematch", "strategy.use_quantile=1"], "use_quantile=1 must be true or false"),
        (["strategy=softmatch", "strategy.n_sigma=0"], "n_sigma=0 is outside (0, inf)"),
        (["strategy=softmatch", "strategy.ema_p=-0.1"], "ema_p=-0.1 is outside [0, 1)"),
        (
            ["strategy=softmatch", "strategy.warmup_steps=-1"],
            "warmup_steps=-1 must be a non-negative",
        ),
        (["strategy=uda", "strategy.threshold=1.5"], "threshold=1.5 is outside [0, 1]"),
        (["strategy=uda", "strategy.temperature=0"], "temperature=0 is outside (0, 1]"),
        (
            ["strategy=uda", "strategy.tsa_schedule=cosine"],
            "tsa_schedule='cosine' is not one of none, linear, exp, log",
        ),
        (["strategy=mixmatch", "strategy.mixup_alpha=0"], "mixup_alpha=0 is outside (0, inf)"),
        (["strategy=mixmatch", "strategy.temperature=1.5"], "temperature=1.5 is outside (0, 1]"),
        (
            ["strategy=mixmatch", "strategy.augmentations=0"],
            "augmentations=0 must be a positive integer (views per unlabeled item)",
        ),
        (["strategy=mixmatch", "strategy.rampup_steps=2.5"], "rampup_steps=2.5 must be a whole"),
    ],
)
def test_bad_arguments_refused_before_training(overrides, message, compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, *overrides, fast=False)
    with pytest.raises(ConfigError, match=r"^strategy[.:]") as info:
        build(cfg, run_key(cfg))
    assert message in str(info.value)


def test_cli_refuses_an_unknown_tsa_schedule(tmp_path):
    lines = refusal_lines(tmp_path, *SYNTHETIC, "strategy=uda", "strategy.tsa_schedule=cosine")
    assert len(lines) == 1, lines
    assert "tsa_schedule='cosine'" in lines[0] and "none, linear, exp, log" in lines[0]
