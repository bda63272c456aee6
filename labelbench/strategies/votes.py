"""Strategies for votes: crowd annotations and labeling-function votes. Each turns the
revealed items' votes into one target per item (labelbench.strategies.aggregate), then
trains the run's network on those targets with the shared loop, as supervised does.

Crowd (kind 'crowd'): majority_vote, dawid_skene, soft_crowd (and crowd-kit's aggregators,
labelbench.strategies.crowdkit). Weak supervision (kind 'weak'): lf_majority and
label_model, the same aggregations over labeling functions, whose abstains the label model
learns from (backend ours, or Snorkel's LabelModel). Items without any vote carry no label
and are left out of training (`fit/unvoted` counts them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from labelbench.config import ConfigError, check_flag, check_int, check_number
from labelbench.labels.pool import LabelPool
from labelbench.labels.votes import Votes, as_votes
from labelbench.strategies.aggregate import (
    TIES,
    dawid_skene,
    majority_vote,
    vote_counts,
    vote_distribution,
)
from labelbench.strategies.lightning import LightningStrategy, NetPredictor
from labelbench.strategies.supervised import SupervisedModule


class FromVotes(LightningStrategy):
    """Base: aggregate the votes into targets, then cross-entropy on them (class ids, or
    rows of class probabilities for soft targets), early stopping on the validation split.
    Subclasses say how in `targets`. Arguments as LightningStrategy."""

    accepts: tuple[str, ...] = ("crowd",)
    module_class = SupervisedModule

    def targets(
        self, votes: Votes, num_classes: int, seed: int
    ) -> tuple[np.ndarray, dict[str, float]]:
        """For the votes on items that all have one at least (sparse triples; an (items,
        sources) matrix, -1 for no vote, is taken too): (items,) class ids or (items,
        classes) probabilities, and floats for fit_info."""
        raise NotImplementedError

    def fit(
        self,
        pool: LabelPool,
        task,
        model,
        trainer,
        *,
        seed: int,
        checkpoint=None,
    ) -> NetPredictor:
        voted = pool.votes.has_vote()
        if not voted.any():
            raise ValueError("no revealed item has a vote to train on")
        y, info = self.targets(pool.votes.take(np.flatnonzero(voted)), pool.num_classes, seed)
        data = self.tensors(pool, task)
        data["train_idx"] = torch.tensor(pool.indices[voted])
        # Probabilities as float32, the network's dtype; class ids stay int64.
        data["train_y"] = torch.tensor(y, dtype=torch.float32 if y.ndim == 2 else torch.int64)
        predictor = self.train(data, task, model, trainer, seed=seed, checkpoint=checkpoint)
        predictor.fit_info.update(
            {"trained_on": float(voted.sum()), "unvoted": float((~voted).sum()), **info}
        )
        return predictor


class MajorityVote(FromVotes):
    """The most voted class per item. ties: 'random' (one of the tied classes, seeded by the
    run's seed) or 'lowest' (the lowest class id)."""

    def __init__(self, *args: Any, ties: str = "random", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if ties not in TIES:
            raise ConfigError(f"ties={ties!r} is not one of {', '.join(TIES)}")
        self.ties = ties

    def targets(self, votes, num_classes, seed):
        counts = vote_counts(votes, num_classes)
        tied = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1
        labels = majority_vote(votes, num_classes, self.ties, seed)
        return labels, {"tied": float(tied.sum())}


class SoftCrowd(FromVotes):
    """Each item's share of votes per class as a soft target: disagreement among the
    annotators stays in the target (Peterson et al. 2019, learning from the label
    distribution)."""

    def targets(self, votes, num_classes, seed):
        soft = vote_distribution(votes, num_classes)
        return soft, {"mean_target_max": float(soft.max(axis=1).mean())}


class DawidSkene(FromVotes):
    """Dawid–Skene EM: a confusion matrix per annotator and class priors, then the
    posterior over each item's true class. soft: train on the posteriors themselves rather
    than their argmax. max_iter, tol: EM stops after max_iter iterations or once no
    posterior moves by more than tol. smoothing: Laplace pseudo-count (> 0) added to every
    count. A missing vote is missing at random (the annotator was not asked)."""

    abstain = False  # how a -1 vote is read; see aggregate.dawid_skene

    def __init__(
        self,
        *args: Any,
        soft: bool = False,
        max_iter: int = 200,
        tol: float = 1e-5,
        smoothing: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.soft = check_flag("soft", soft)
        self.max_iter = check_int("max_iter", max_iter, least=1, unit="EM iterations")
        self.tol = check_number("tol", tol, "(0, inf)")
        self.smoothing = check_number("smoothing", smoothing, "(0, inf)")

    def targets(self, votes, num_classes, seed):
        fit = dawid_skene(
            votes, num_classes, self.max_iter, self.tol, self.smoothing, abstain=self.abstain
        )
        post = fit.posteriors
        info = {
            "em_iterations": float(fit.iterations),
            "em_converged": float(fit.converged),
            "mean_posterior_max": float(post.max(axis=1).mean()),
        }
        return (post if self.soft else post.argmax(axis=1)), info


class LFMajority(MajorityVote):
    """Majority vote of the labeling functions that did not abstain (ties as majority_vote)."""

    accepts = ("weak",)


BACKENDS = ("ours", "snorkel")
# Snorkel's LabelModel.fit settings this strategy passes on, and their checks.
SNORKEL_OPTIMIZERS = ("sgd", "adam", "adamax")
SNORKEL_SETTINGS = {
    "n_epochs": lambda v: check_int("snorkel.n_epochs", v, least=1),
    "lr": lambda v: check_number("snorkel.lr", v, "(0, inf)"),
    "l2": lambda v: check_number("snorkel.l2", v),
    "optimizer": lambda v: _one_of("snorkel.optimizer", v, SNORKEL_OPTIMIZERS),
    "prec_init": lambda v: check_number("snorkel.prec_init", v, "(0, 1)"),
}


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def snorkel_label_model(
    votes: Votes | np.ndarray, num_classes: int, seed: int, settings: dict[str, Any]
) -> tuple[np.ndarray, dict[str, float]]:
    """Snorkel's LabelModel (Ratner et al. 2019; snorkel.labeling.model) fitted on the LFs'
    votes: (items, classes) posteriors, and floats for fit_info. Snorkel takes a dense
    (items, LFs) matrix with -1 for an abstain, as ours; LFs are few, so it is small.
    `settings` go to LabelModel.fit; class_balance stays None (uniform)."""
    import random

    votes = as_votes(votes).dense()
    # fit seeds Python's, numpy's and torch's global generators with `seed`, and importing
    # snorkel draws from numpy's (a default seed): put them back, so a label model leaves no
    # trace on what the run draws afterwards.
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        from snorkel.labeling.model import LabelModel as SnorkelLabelModel

        model = SnorkelLabelModel(cardinality=num_classes, verbose=False)
        model.fit(votes, seed=seed, progress_bar=False, **settings)
        posteriors = model.predict_proba(votes)
        weights = model.get_weights()  # each LF's estimated accuracy where it votes
        epochs = model.train_config.n_epochs
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
    return posteriors, {
        "label_model_epochs": float(epochs),
        "mean_lf_weight": float(np.mean(weights)),
        "mean_posterior_max": float(posteriors.max(axis=1).mean()),
    }


class LabelModel(DawidSkene):
    """A generative label model over the labeling functions, then the end model (the run's
    network) trains on its posteriors (soft, the default, as Snorkel does) or their argmax.

    backend 'ours': Dawid–Skene with abstains modelled (as WRENCH's unsupervised label
    models): per function, the probability of each vote and of abstaining given the true
    class, and class priors; arguments as dawid_skene. backend 'snorkel': Snorkel's
    LabelModel (matrix completion over the LFs' agreements, Ratner et al. 2019), fitted with
    the `snorkel` settings (LabelModel.fit's n_epochs, lr, l2, optimizer, prec_init) and the
    run's seed; it needs 3 LFs at least. Hard targets (soft false) are the posteriors'
    argmax, ties to the lowest class (Snorkel's predict would abstain on a tie)."""

    accepts = ("weak",)
    abstain = True

    def __init__(
        self,
        *args: Any,
        soft: bool = True,
        backend: str = "ours",
        snorkel: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, soft=soft, **kwargs)
        self.backend = _one_of("backend", backend, BACKENDS)
        settings = dict(snorkel or {})
        unknown = sorted(set(settings) - set(SNORKEL_SETTINGS))
        if unknown:
            raise ConfigError(
                f"snorkel has no setting {unknown[0]!r}; allowed: {', '.join(SNORKEL_SETTINGS)}"
            )
        self.snorkel = {k: SNORKEL_SETTINGS[k](v) for k, v in settings.items()}

    def check(self, pool: LabelPool, task) -> None:
        super().check(pool, task)
        sources = 0 if pool.votes is None else pool.votes.n_sources
        if self.backend == "snorkel" and sources < 3:
            raise ConfigError(
                f"backend=snorkel needs 3 labeling functions at least (Snorkel's LabelModel);"
                f" the regime gives {sources}: raise regime.lfs or use backend=ours"
            )

    def targets(self, votes, num_classes, seed):
        if self.backend == "ours":
            return super().targets(votes, num_classes, seed)
        post, info = snorkel_label_model(votes, num_classes, seed, self.snorkel)
        return (post if self.soft else post.argmax(axis=1)), info
