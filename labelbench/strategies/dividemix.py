"""DivideMix (Li, Socher & Hoi 2020, "DivideMix: learning with noisy labels as
semi-supervised learning"): two networks, warmed up with cross-entropy; then, once per
period, each network's per-item losses are fitted with a two-component Gaussian mixture,
whose low-loss component's posterior is the item's probability of being clean. The items
one network deems clean are the labeled set of the OTHER network (co-divide), the rest its
unlabeled set, and each network trains MixMatch-style on them: labels refined towards its
own predictions where the item looks noisy (co-refinement), unlabeled targets guessed by
both networks (co-guessing), MixUp over all of it. Both networks' summed logits predict.

Reference: LiJunnan1992/DivideMix, Train_cifar.py. Adapted to the shared loop of optimizer
steps: one step trains both networks, each on its own batches, with the other held fixed
(in eval mode) for co-guessing; the reference trains one network for an epoch, then the
other. A period is one pass over the revealed items in optimizer steps unless `period` is
set; warm-up and ramp-up are counted in periods, as the reference counts them in epochs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import ConfigError, check_flag, check_int, check_number
from labelbench.strategies.coteaching import TwoNetworks
from labelbench.strategies.feed import Feed, share_workers
from labelbench.strategies.lightning import LabelModule
from labelbench.strategies.semi import linear_rampup, mixup, sharpen, soft_cross_entropy

# Train_cifar.py eval_train(): GaussianMixture(n_components=2, max_iter=10, tol=1e-2,
# reg_covar=5e-4). The mixture's random_state is the run's seed plus this.
GMM = {"n_components": 2, "max_iter": 10, "tol": 1e-2, "reg_covar": 5e-4}
GMM_SEED_OFFSET = 0xD1F
# The per-division minibatch streams of the two networks (labeled, unlabeled each).
DIVISION_SEED_OFFSET = 0xD1F1
DIVISION_STREAMS = ("labeled_0", "unlabeled_0", "labeled_1", "unlabeled_1")
EVAL_CHUNK = 4096  # items per forward pass when scoring every training item


def normalised(losses: np.ndarray) -> np.ndarray:
    """(l - min) / (max - min): losses in [0, 1], as Train_cifar.py eval_train() fits
    them. All equal: all 0 (the reference divides by zero there)."""
    losses = np.asarray(losses, dtype=np.float64)
    span = losses.max() - losses.min()
    return (losses - losses.min()) / span if span > 0 else np.zeros_like(losses)


def clean_probability(losses: np.ndarray, seed: int) -> np.ndarray:
    """Each item's posterior under the lower-mean component of a two-component Gaussian
    mixture fitted to its normalised loss: its probability of being clean. Losses that are
    all equal tell nothing apart: every item counts as clean (probability 1)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = normalised(losses)
    if np.all(x == 0):
        return np.ones(len(x))
    gmm = GaussianMixture(**GMM, random_state=seed)
    with warnings.catch_warnings():  # max_iter=10 is the reference's: it often stops early
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x.reshape(-1, 1))
    return gmm.predict_proba(x.reshape(-1, 1))[:, gmm.means_.argmin()]


def co_refine(labels: Tensor, probs: Tensor, clean: Tensor, temperature: float) -> Tensor:
    """Label co-refinement: sharpen(w * y + (1 - w) * p), with w the item's clean
    probability from the other network, y its one-hot label and p this network's mean
    prediction over the item's augmented views."""
    w = clean.unsqueeze(1)
    return sharpen(w * labels + (1.0 - w) * probs, temperature)


def co_guess(probs: list[Tensor], temperature: float) -> Tensor:
    """Label co-guessing: the mean of both networks' predictions over the unlabeled items'
    augmented views, sharpened."""
    return sharpen(torch.stack(probs).mean(dim=0), temperature)


def prior_penalty(logits: Tensor) -> Tensor:
    """sum_k pi_k log(pi_k / mean_i p_ik) with a uniform prior pi: keeps the batch's mean
    prediction from collapsing onto a few classes."""
    mean = torch.softmax(logits, dim=1).mean(dim=0)
    prior = torch.full_like(mean, 1.0 / len(mean))
    return (prior * torch.log(prior / mean)).sum()


def negative_entropy(logits: Tensor) -> Tensor:
    """mean_i sum_k p_ik log p_ik: the confidence penalty the reference adds to the warm-up
    loss under asymmetric noise (NegEntropy), so that warm-up does not grow over-confident."""
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * log_p).sum(dim=1).mean()


@contextmanager
def fixed(net: nn.Module) -> Iterator[nn.Module]:
    """`net` in eval mode for the duration (the reference's net2.eval() while net trains)."""
    was = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was)


class PairEnsemble(nn.Module):
    """Two networks' summed logits: DivideMix's prediction (Train_cifar.py test())."""

    def __init__(self, net: nn.Module, peer: nn.Module) -> None:
        super().__init__()
        self.net, self.peer = net, peer

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x) + self.peer(x)


class DivideMixModule(LabelModule):
    """Both networks: cross-entropy warm-up, each on its own stream of the revealed items;
    then a division every `period` steps and DivideMix's loss for each network.

    Per item, `clean_prob[j]` is network j's latest clean probability (a buffer, so
    checkpoints carry it) and `divisions` counts the divisions made. After a division,
    network j draws its labeled and unlabeled batches from streams over the other network's
    clean and noisy items, rebuilt from the buffer when a fit resumes."""

    def __init__(
        self,
        *args: Any,
        peer: nn.Module,
        num_classes: int,
        p_threshold: float,
        temperature: float,
        alpha: float,
        lambda_u: float,
        period: int,
        warmup_periods: int,
        rampup_periods: int,
        conf_penalty: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.peer = peer
        self.num_classes = num_classes
        self.p_threshold, self.temperature, self.alpha = p_threshold, temperature, alpha
        self.lambda_u, self.conf_penalty = lambda_u, conf_penalty
        self.period = period
        self.warmup_steps = warmup_periods * period
        self.rampup_steps = rampup_periods * period
        n = len(self.data["train_y"])
        self.register_buffer("clean_prob", torch.ones(2, n))
        self.register_buffer("divisions", torch.zeros((), dtype=torch.long))

    def trained_modules(self) -> list[nn.Module]:
        return [self.net, self.peer]

    @property
    def eval_net(self) -> nn.Module:
        return PairEnsemble(self.net, self.peer)

    @property
    def networks(self) -> tuple[nn.Module, nn.Module]:
        return self.net, self.peer

    # -- streams ---------------------------------------------------------------------
    def make_streams(self) -> dict[str, Feed]:
        streams = super().make_streams()  # "labeled": the first network's warm-up batches
        replacement = self.recipe.labeled_sampling == "with_replacement"
        streams["labeled_peer"] = self.feed(
            self.data["train_idx"], self.batch_size, self.seed + 1, replacement
        )
        if int(self.divisions) > 0:  # resuming after a division: its streams, from the buffer
            streams.update(self.division_streams(int(self.divisions)))
        return streams

    def split(self, j: int) -> tuple[Tensor, Tensor]:
        """Network j's labeled and unlabeled positions among the training items: the items
        the OTHER network's latest division deems clean (probability > p_threshold), and
        the rest."""
        clean = self.clean_prob[1 - j] > self.p_threshold
        return torch.nonzero(clean).squeeze(1), torch.nonzero(~clean).squeeze(1)

    def division_streams(self, k: int) -> dict[str, Feed]:
        """Shuffled passes over each network's labeled and unlabeled items of division k
        (none over an empty set)."""
        self.subsets = [self.split(j) for j in (0, 1)]
        streams = {}
        for j, parts in enumerate(self.subsets):
            for part, positions in enumerate(parts):
                if len(positions):
                    seed = self.seed + DIVISION_SEED_OFFSET + 4 * k + 2 * j + part
                    name = DIVISION_STREAMS[2 * j + part]
                    rows = self.data["train_idx"][positions]
                    streams[name] = self.feed(rows, self.batch_size, seed)
        return streams

    def draw(self, name: str, positions: Tensor) -> tuple[Tensor, Tensor] | None:
        """The next batch of feed `name` over the training items at `positions`: their
        training positions and inputs (None when the feed's set is empty)."""
        feed = self.streams.get(name)
        if feed is None:
            return None
        pick, x = next(feed)
        return positions[pick], x

    # -- the division ------------------------------------------------------------------
    @torch.no_grad()
    def item_losses(self, net: nn.Module) -> np.ndarray:
        """Cross-entropy of every training item's (un-augmented) input under `net` in eval
        mode, as Train_cifar.py eval_train() scores them."""
        y = self.data["train_y"]
        with fixed(net):
            logits = [net(x) for x in self.input_batches(self.data["train_idx"], EVAL_CHUNK)]
        return F.cross_entropy(torch.cat(logits), y, reduction="none").double().cpu().numpy()

    def divide(self) -> None:
        """Both networks' clean probabilities, then fresh streams over the new split."""
        self.pause_feeds()  # the warm-up feeds are done with; the losses pass reads alone
        for j, net in enumerate(self.networks):
            prob = clean_probability(self.item_losses(net), self.seed + GMM_SEED_OFFSET)
            self.clean_prob[j] = torch.as_tensor(prob, dtype=self.clean_prob.dtype)
        self.divisions += 1
        for name in DIVISION_STREAMS:
            if name in self.streams:
                self.streams.pop(name).close()
        division = self.division_streams(int(self.divisions))
        share_workers(list(division.values()))
        self.streams.update(division)

    # -- the losses ----------------------------------------------------------------------
    def warmup_loss(self, net: nn.Module, stream: str) -> Tensor:
        """Cross-entropy on a weak view of the next batch of `stream` (plus the confidence
        penalty when conf_penalty is on)."""
        pick, x = next(self.streams[stream])
        logits = net(self.weak(x))
        loss = F.cross_entropy(logits, self.data["train_y"][pick])
        return loss + negative_entropy(logits) if self.conf_penalty else loss

    def dividemix_loss(self, j: int) -> Tensor | None:
        """Network j's loss on its next labeled and unlabeled batches, the other network
        fixed; None when it has no labeled items in this division."""
        net, other = self.networks[j], self.networks[1 - j]
        labeled, unlabeled = self.subsets[j]
        drawn = self.draw(f"labeled_{j}", labeled)
        if drawn is None:
            return None
        pick, xl = drawn
        drawn_u = self.draw(f"unlabeled_{j}", unlabeled)
        upick, xu = drawn_u if drawn_u is not None else (None, None)
        y = F.one_hot(self.data["train_y"][pick], self.num_classes).to(xl.dtype)
        w = self.clean_prob[1 - j][pick]  # the labeled set's clean probability (co-divide)
        xl1, xl2 = self.weak(xl), self.weak(xl)
        views = [xl1, xl2]
        with torch.no_grad():
            if upick is not None:
                xu1, xu2 = self.weak(xu), self.weak(xu)
                views += [xu1, xu2]
                guesses = [torch.softmax(net(v), dim=1) for v in (xu1, xu2)]
                with fixed(other):
                    guesses += [torch.softmax(other(v), dim=1) for v in (xu1, xu2)]
                targets_u = co_guess(guesses, self.temperature)
            px = (torch.softmax(net(xl1), dim=1) + torch.softmax(net(xl2), dim=1)) / 2
            targets_x = co_refine(y, px, w, self.temperature)
        targets = [targets_x, targets_x] + ([targets_u, targets_u] if upick is not None else [])
        mixed_x, mixed_t = mixup(torch.cat(views), torch.cat(targets), self.alpha, self.generator)
        logits = net(mixed_x)
        n = 2 * len(pick)
        loss = soft_cross_entropy(logits[:n], mixed_t[:n])
        if upick is not None:
            weight = self.lambda_u * linear_rampup(
                self.steps_done - self.warmup_steps, self.rampup_steps
            )
            loss = loss + weight * F.mse_loss(torch.softmax(logits[n:], dim=1), mixed_t[n:])
        return loss + prior_penalty(logits)

    def training_loss(self) -> Tensor:
        step = self.steps_done
        if step < self.warmup_steps:
            return self.warmup_loss(self.net, "labeled") + self.warmup_loss(
                self.peer, "labeled_peer"
            )
        if (step - self.warmup_steps) % self.period == 0:
            self.divide()
        losses = [loss for j in (0, 1) if (loss := self.dividemix_loss(j)) is not None]
        if not losses:  # neither network has a clean item: nothing to learn this step
            return torch.zeros((), device=self.device, requires_grad=True)
        return sum(losses)


class DivideMix(TwoNetworks):
    """DivideMix. p_threshold: clean probability above which an item joins the other
    network's labeled set, in (0, 1). temperature: sharpening temperature T > 0. alpha:
    MixUp's Beta(alpha, alpha), > 0. lambda_u: weight of the unlabeled (L2) loss once
    ramped up, >= 0. period: optimizer steps between divisions (None: one pass over the
    revealed items, ceil(items / batch_size)). warmup_periods: periods of cross-entropy
    warm-up before the first division. rampup_periods: periods over which the unlabeled
    weight rises linearly from 0 after warm-up. conf_penalty: add the negative-entropy
    confidence penalty to the warm-up loss (the reference does under asymmetric noise).
    Validation and predictions use both networks' summed logits, so the shared loop's
    EMA (ema_decay) is refused. Other arguments as LightningStrategy."""

    module_class = DivideMixModule

    def __init__(
        self,
        *args: Any,
        p_threshold: float = 0.5,
        temperature: float = 0.5,
        alpha: float = 4.0,
        lambda_u: float = 25.0,
        period: int | None = None,
        warmup_periods: int = 10,
        rampup_periods: int = 16,
        conf_penalty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.p_threshold = check_number("p_threshold", p_threshold, "(0, 1)")
        self.temperature = check_number("temperature", temperature, "(0, inf)")
        self.alpha = check_number("alpha", alpha, "(0, inf)")
        self.lambda_u = check_number("lambda_u", lambda_u)
        if period is not None:
            check_int("period", period, least=1, unit="optimizer steps; null: one pass")
        self.period = period
        self.warmup_periods = check_int("warmup_periods", warmup_periods, unit="periods")
        self.rampup_periods = check_int("rampup_periods", rampup_periods, unit="periods")
        self.conf_penalty = check_flag("conf_penalty", conf_penalty)
        if self.recipe.ema_decay is not None:
            raise ConfigError(
                f"ema_decay={self.recipe.ema_decay}: dividemix predicts with both networks'"
                " summed logits, not an EMA; allowed: null"
            )
        self._num_classes, self._period = 0, 1
        self._module: DivideMixModule | None = None

    def check(self, pool, task) -> None:
        super().check(pool, task)
        if len(pool) < 2:
            raise ConfigError(
                f"dividemix fits a 2-component mixture to the revealed items' losses but"
                f" {len(pool)} is revealed; allowed: at least 2"
            )
        if getattr(task, "tokens", None) is not None:
            raise ConfigError(
                f"dividemix mixes inputs (MixUp) but dataset {task.name} holds token ids,"
                " which cannot be mixed; use a dataset/encoder that gives embeddings (minilm)"
            )

    def steps_per_period(self, n_items: int) -> int:
        """Optimizer steps between divisions for `n_items` revealed items."""
        return self.period or math.ceil(n_items / self.batch_size)

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None):
        self._num_classes = task.num_classes
        self._period = self.steps_per_period(len(pool))
        predictor = super().fit(pool, task, model, trainer, seed=seed, checkpoint=checkpoint)
        module, self._module = self._module, None
        if module is not None:
            clean = (module.clean_prob > self.p_threshold).float().mean(dim=1)
            predictor.fit_info.update(
                {
                    "divisions": float(module.divisions),
                    "clean_share": float(clean.mean()),
                    "period": float(self._period),
                }
            )
        return predictor

    def train(self, data, task, model, trainer, *, seed, checkpoint=None, make_module=None):
        def keep(*args: Any, **kwargs: Any) -> LabelModule:
            self._module = (make_module or self.module_class)(*args, **kwargs)
            return self._module

        return super().train(
            data, task, model, trainer, seed=seed, checkpoint=checkpoint, make_module=keep
        )

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "num_classes": self._num_classes,
            "p_threshold": self.p_threshold,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "lambda_u": self.lambda_u,
            "period": self._period,
            "warmup_periods": self.warmup_periods,
            "rampup_periods": self.rampup_periods,
            "conf_penalty": self.conf_penalty,
        }
