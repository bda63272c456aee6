"""Loss correction (Patrini et al. 2017, "Making deep neural networks robust to label
noise: a loss correction approach"; reference giorgiop/loss-correction). With T the noise's
transition matrix, T[i, j] = p(observed j | true i):

- forward: the network's class probabilities p are carried through the noise before the
  cross-entropy with the observed label, -log (p^T T)[y~];
- backward: the loss vector over the classes is corrected by T^-1, (T^-1 l(p))[y~], an
  unbiased estimate of the clean loss.

T is `estimated` from the data (a first network fitted with cross-entropy on the noisy
labels; for each class, its most confident item is an anchor point whose predicted
distribution is T's row), `known` (the realised noise of the revealed labels, from their
true labels: a marked oracle upper bound), or given by hand as a row-stochastic matrix.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import ConfigError, check_flag
from labelbench.labels.pool import LabelPool
from labelbench.strategies.lightning import LightningStrategy, NetPredictor, sub_checkpoint
from labelbench.strategies.losses import CrossEntropy, Loss
from labelbench.strategies.supervised import SupervisedModule

TRANSITIONS = ("estimated", "known")
# NoiseEstimator (models.py) with filter_outlier: the anchor of class i is the most
# confident item below this percentile of p(y~ = i | x), so a few over-confident outliers
# do not become anchors.
ANCHOR_PERCENTILE = 97
ROW_SUM_TOLERANCE = 1e-4  # a hand-typed row may round its entries (0.3333)


def anchor_transition(probs: np.ndarray, filter_outlier: bool = True) -> np.ndarray:
    """T estimated from predicted noisy-class probabilities (items x classes): row i is the
    predicted distribution at class i's anchor, the item with the highest p(y~ = i | x)
    (with filter_outlier: the highest below the 97th percentile, 'higher' interpolation,
    as NoiseEstimator.fit); rows normalised to sum to 1. NoiseEstimator zeroes the
    filtered column in place, so its later rows read the altered probabilities; here every
    row reads the network's own."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    t = np.empty((k, k))
    for i in range(k):
        score = probs[:, i].copy()
        if filter_outlier:
            cut = np.percentile(score, ANCHOR_PERCENTILE, method="higher")
            score[score >= cut] = 0.0
        t[i] = probs[int(np.argmax(score))]
    return t / t.sum(axis=1, keepdims=True)


def realised_transition(true: np.ndarray, observed: np.ndarray, num_classes: int) -> np.ndarray:
    """The confusion of observed against true labels, row-normalised: T[i, j] is the share
    of items of true class i whose observed label is j. A class with no item gets the
    identity row (no evidence of noise)."""
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (np.asarray(true), np.asarray(observed)), 1.0)
    rows = counts.sum(axis=1, keepdims=True)
    return np.where(rows > 0, counts / np.maximum(rows, 1.0), np.eye(num_classes))


def is_singular(t: np.ndarray) -> bool:
    """Whether T has no (numerically reliable) inverse."""
    return int(np.linalg.matrix_rank(t)) < len(t)


def given_transition(value: Any, invertible: bool) -> np.ndarray:
    """A hand-given T as a float array: square, non-negative, rows summing to 1 (then
    renormalised exactly), and invertible when `invertible`; else a one-line ConfigError."""
    shown = f"transition={_compact(value)}"
    try:
        t = np.array([[float(v) for v in row] for row in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{shown} is not one of {', '.join(TRANSITIONS)} or a row-stochastic matrix"
        ) from None
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.size == 0:
        raise ConfigError(f"{shown} is not a square matrix; allowed: one row per class")
    if not np.all(np.isfinite(t)) or (t < 0).any():
        raise ConfigError(f"{shown} has a negative or non-finite entry; allowed: entries >= 0")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if len(bad):
        raise ConfigError(
            f"{shown} is not row-stochastic: row {bad[0]} sums to {sums[bad[0]]:g};"
            " allowed: rows p(observed | true) summing to 1"
        )
    t = t / sums[:, None]
    if invertible and is_singular(t):
        raise ConfigError(
            f"{shown} is singular; backward correction needs T^-1: allowed: an invertible matrix"
        )
    return t


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return (
            "["
            + ",".join("[" + ",".join(f"{float(v):g}" for v in row) + "]" for row in value)
            + "]"
        )
    except (TypeError, ValueError):
        return repr(value)


class ForwardCorrected(Loss):
    """-log (softmax(z) T)[y~]; per class k, -log (p T)_k. Computed in log space,
    logsumexp_j (log p_j + log T_jk), so that T = I gives cross-entropy exactly."""

    def __init__(self, transition: np.ndarray | Tensor) -> None:
        self.transition = torch.as_tensor(np.asarray(transition), dtype=torch.float32)

    def per_class(self, logits: Tensor) -> Tensor:
        log_t = torch.log(self.transition.to(logits))  # log 0 = -inf: that path adds nothing
        return -torch.logsumexp(F.log_softmax(logits, dim=1).unsqueeze(2) + log_t, dim=1)


class BackwardCorrected(Loss):
    """(T^-1 l)[y~] with l_k = -log softmax(z)_k, the loss were the label k; per class k,
    sum_j (T^-1)_kj l_j."""

    def __init__(self, transition: np.ndarray | Tensor) -> None:
        t = np.asarray(transition, dtype=np.float64)
        self.inverse = torch.as_tensor(np.linalg.inv(t), dtype=torch.float32)

    def per_class(self, logits: Tensor) -> Tensor:
        return -F.log_softmax(logits, dim=1) @ self.inverse.to(logits).T


class LossCorrection(LightningStrategy):
    """Base of forward_correction and backward_correction. transition: `estimated` (fit a
    network with cross-entropy on the revealed labels, estimate T by anchor points on the
    revealed items, then fit a fresh network with the corrected loss), `known` (T is the
    realised noise of the revealed labels against their true labels: an oracle upper
    bound, marked in the record and tabled as <name>[oracle]), or a row-stochastic matrix
    (one row per true class). filter_outlier: anchors below the 97th percentile (the
    reference's setting except on CIFAR-100). After fit, `transition_` holds the T used.
    Other arguments as LightningStrategy."""

    module_class = SupervisedModule
    correction = "forward"

    def __init__(
        self, *args: Any, transition: Any = "estimated", filter_outlier: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.matrix: np.ndarray | None = None
        if isinstance(transition, str):
            if transition not in TRANSITIONS:
                raise ConfigError(
                    f"transition={transition!r} is not one of {', '.join(TRANSITIONS)}"
                    " or a row-stochastic matrix"
                )
            self.transition = transition
        else:
            self.matrix = given_transition(transition, invertible=self.correction == "backward")
            self.transition = "given"
        self.filter_outlier = check_flag("filter_outlier", filter_outlier)
        self.upper_bound = self.transition == "known"

    def check(self, pool: LabelPool, task) -> None:
        super().check(pool, task)
        if self.matrix is not None and len(self.matrix) != task.num_classes:
            raise ConfigError(
                f"transition has {len(self.matrix)} rows but the task has {task.num_classes}"
                f" classes; allowed: a {task.num_classes} x {task.num_classes} matrix"
            )

    def corrected(self, t: np.ndarray) -> Loss:
        """The corrected loss for T."""
        return ForwardCorrected(t) if self.correction == "forward" else BackwardCorrected(t)

    def known_transition(self, pool: LabelPool, num_classes: int) -> np.ndarray:
        """The realised T of the revealed labels, from the true labels the run hands over."""
        oracle = self.oracle_pool
        if oracle is None:
            raise ValueError("transition=known needs the run to hand over oracle_pool")
        order = np.argsort(oracle.indices)
        at = order[np.searchsorted(oracle.indices[order], pool.indices)]
        if not np.array_equal(oracle.indices[at], pool.indices):
            raise ValueError("oracle_pool does not hold every revealed item")
        t = realised_transition(oracle.labels[at], pool.labels, num_classes)
        if self.correction == "backward" and is_singular(t):
            raise ConfigError(
                "transition=known: the realised noise of the revealed labels is a singular"
                " matrix; backward correction needs T^-1: allowed: estimated or a given matrix"
            )
        return t

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        data = self.tensors(pool, task)
        info: dict[str, float] = {}
        if self.transition == "known":
            t = self.known_transition(pool, task.num_classes)
        elif self.transition == "given":
            t = self.matrix
        else:  # estimated: a cross-entropy network first, on the same labels
            first = self.train(
                data,
                task,
                model,
                trainer,
                seed=seed,
                checkpoint=sub_checkpoint(checkpoint, "estimate"),
                make_module=functools.partial(SupervisedModule, loss=CrossEntropy()),
            )
            t = anchor_transition(first.predict_proba(task.x[pool.indices]), self.filter_outlier)
            if self.correction == "backward" and is_singular(t):
                raise ValueError(
                    "the estimated transition matrix is singular; backward correction needs"
                    " its inverse (try forward_correction)"
                )
            info["estimate_steps"] = first.fit_info["steps"]
        self.transition_ = t
        predictor = self.train(
            data,
            task,
            model,
            trainer,
            seed=seed,
            checkpoint=sub_checkpoint(checkpoint, "corrected"),
            make_module=functools.partial(SupervisedModule, loss=self.corrected(t)),
        )
        info["transition_diag"] = float(np.mean(np.diag(t)))
        cond = float(np.linalg.cond(t))
        if np.isfinite(cond):  # a singular T (forward only) has none
            info["transition_cond"] = cond
        predictor.fit_info.update(info)
        return predictor


class ForwardCorrection(LossCorrection):
    """Forward loss correction: cross-entropy of softmax(z) T against the observed label."""

    correction = "forward"


class BackwardCorrection(LossCorrection):
    """Backward loss correction: the per-class losses corrected by T^-1 (T must be
    invertible; an estimated singular T fails the run, a given or known one is refused)."""

    correction = "backward"
