"""Crowd aggregation through crowd-kit (Ustalov et al. 2021, `crowdkit.aggregation`): GLAD,
MACE, one-coin Dawid–Skene, M-MSR and Wawa, beside our own dawid_skene. Each hands the
revealed items' crowd votes to crowd-kit's pandas API (a DataFrame of task, worker, label
rows; fit_predict / fit_predict_proba) and trains the run's network on what comes back, as
the other vote strategies do (votes.FromVotes): crowd-kit's labels (`labels_`), or with
`soft` its class probabilities (`probas_`) where the method has them.

crowd-kit and pandas are imported inside the methods, so that `labelbench --help` and the
aggregator stay light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_flag, check_int, check_number
from labelbench.labels.votes import Votes, as_votes
from labelbench.strategies.votes import FromVotes

MACE_METHODS = ("vb", "em")


def votes_frame(votes: Votes | np.ndarray) -> Any:
    """crowd-kit's input, a pandas DataFrame with a row per given vote: `task` the item,
    `worker` the source (the annotator), `label` the class: our triples as they are."""
    import pandas as pd

    votes = as_votes(votes)
    return pd.DataFrame({"task": votes.item, "worker": votes.source, "label": votes.label})


def _table(frame: Any, n: int, num_classes: int) -> np.ndarray:
    """crowd-kit's per-task frame (tasks x the labels it saw) as (n, num_classes) floats: a
    class nobody voted for is not among crowd-kit's columns and gets 0."""
    return frame.reindex(index=range(n), columns=range(num_classes), fill_value=0.0).to_numpy(
        dtype=np.float64
    )


class CrowdKit(FromVotes):
    """Base: a crowd-kit aggregator over the crowd votes, then cross-entropy on its labels or,
    with `soft`, on its class probabilities. Subclasses build the aggregator (`aggregator`)
    and say what of its fit goes into fit_info (`report`). Arguments as LightningStrategy."""

    accepts = ("crowd",)
    probabilistic = True  # the aggregator has probas_ (M-MSR has scores, not probabilities)

    def __init__(self, *args: Any, soft: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_flag("soft", soft)
        if soft and not self.probabilistic:
            raise ConfigError(
                f"soft=true: crowd-kit's {type(self).__name__} gives no class probabilities,"
                " only labels"
            )
        self.soft = soft

    def aggregator(self, seed: int) -> Any:
        """A fresh crowd-kit aggregator, seeded by the run's seed where it draws at random."""
        raise NotImplementedError

    def report(self, model: Any) -> dict[str, float]:
        """Floats for fit_info from the fitted aggregator."""
        return {}

    def targets(self, votes, num_classes, seed):
        model = self.aggregator(seed)
        frame, n = votes_frame(votes), len(votes)
        if self.probabilistic:
            proba = _table(model.fit_predict_proba(frame), n, num_classes)
        else:
            model.fit_predict(frame)
        labels = model.labels_.reindex(range(n)).to_numpy(dtype=np.int64)
        info = self.report(model)
        if not self.probabilistic:
            return labels, info
        info["mean_posterior_max"] = float(proba.max(axis=1).mean())
        return (proba if self.soft else labels), info


class GLAD(CrowdKit):
    """GLAD (Whitehill et al. 2009): each annotator's ability and each item's difficulty,
    fitted by EM with conjugate-gradient M-steps. n_iter, tol: EM iterations at most, and
    the change of the objective below which EM stops; m_step_max_iter, m_step_tol: the same
    for the conjugate gradient of each M-step. Deterministic."""

    def __init__(
        self,
        *args: Any,
        n_iter: int = 100,
        tol: float = 1e-5,
        m_step_max_iter: int = 25,
        m_step_tol: float = 1e-2,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.n_iter = check_int("n_iter", n_iter, least=1, unit="EM iterations")
        self.tol = check_number("tol", tol, "(0, inf)")
        self.m_step_max_iter = check_int("m_step_max_iter", m_step_max_iter, least=1)
        self.m_step_tol = check_number("m_step_tol", m_step_tol, "(0, inf)")

    def aggregator(self, seed):
        from crowdkit.aggregation import GLAD as CrowdKitGLAD

        return CrowdKitGLAD(
            n_iter=self.n_iter,
            tol=self.tol,
            m_step_max_iter=self.m_step_max_iter,
            m_step_tol=self.m_step_tol,
        )

    def report(self, model):
        return {
            "em_iterations": float(len(model.loss_history_)),
            "mean_alpha": float(model.alphas_.mean()),  # annotators' ability
        }


class MACE(CrowdKit):
    """MACE (Hovy et al. 2013): each annotator either knows the label or spams from their
    own label distribution; the best of `n_restarts` random restarts of `n_iter` iterations
    each (by marginal likelihood). method: 'vb' (variational Bayes with Beta(alpha, beta)
    priors on knowing) or 'em'; default_noise: the spread of the random starting points.
    The starts are drawn from a generator seeded by the run's seed."""

    def __init__(
        self,
        *args: Any,
        n_restarts: int = 10,
        n_iter: int = 50,
        method: str = "vb",
        default_noise: float = 0.5,
        alpha: float = 0.5,
        beta: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.n_restarts = check_int("n_restarts", n_restarts, least=1)
        self.n_iter = check_int("n_iter", n_iter, least=1, unit="iterations per restart")
        if method not in MACE_METHODS:
            raise ConfigError(f"method={method!r} is not one of {', '.join(MACE_METHODS)}")
        self.method = method
        self.default_noise = check_number("default_noise", default_noise)
        self.alpha = check_number("alpha", alpha, "(0, inf)")
        self.beta = check_number("beta", beta, "(0, inf)")

    def aggregator(self, seed):
        from crowdkit.aggregation import MACE as CrowdKitMACE

        return CrowdKitMACE(
            n_restarts=self.n_restarts,
            n_iter=self.n_iter,
            method=self.method,
            default_noise=self.default_noise,
            alpha=self.alpha,
            beta=self.beta,
            # A generator, not an int: crowd-kit 1.4.2 hands random_state to every restart's
            # draw, so an int gives each restart the same starting point and n_restarts
            # repeats one fit. A seeded generator gives different starts, as MACE's restarts
            # mean, and the same ones for the same seed.
            random_state=np.random.RandomState(seed),
        )

    def report(self, model):
        return {
            "restarts": float(self.n_restarts),
            "mean_competence": float(model.spamming_[:, 1].mean()),  # P(knows), per annotator
        }


class OneCoinDawidSkene(CrowdKit):
    """One-coin Dawid–Skene (Zhang et al. 2016): Dawid–Skene EM with a single accuracy per
    annotator, its errors spread evenly over the other classes. n_iter, tol: EM iterations
    at most, and the change of the evidence lower bound below which EM stops."""

    def __init__(self, *args: Any, n_iter: int = 100, tol: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n_iter = check_int("n_iter", n_iter, least=1, unit="EM iterations")
        self.tol = check_number("tol", tol, "(0, inf)")

    def aggregator(self, seed):
        from crowdkit.aggregation import OneCoinDawidSkene as CrowdKitOneCoin

        return CrowdKitOneCoin(n_iter=self.n_iter, tol=self.tol)

    def report(self, model):
        return {
            "em_iterations": float(len(model.loss_history_)),
            "mean_worker_skill": float(model.skills_.mean()),
        }


class MMSR(CrowdKit):
    """M-MSR (Ma & Olshevsky 2020): annotators' reliabilities from a robust low-rank
    completion of their agreement matrix, then a weighted majority vote. Labels only (its
    scores are sums of weights, not probabilities). n_iter, tol: iterations at most, and the
    change below which they stop. Its random start is seeded by the run's seed."""

    probabilistic = False

    def __init__(self, *args: Any, n_iter: int = 10000, tol: float = 1e-10, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n_iter = check_int("n_iter", n_iter, least=1)
        self.tol = check_number("tol", tol, "(0, inf)")

    def aggregator(self, seed):
        from crowdkit.aggregation import MMSR as CrowdKitMMSR

        return CrowdKitMMSR(n_iter=self.n_iter, tol=self.tol, random_state=seed)

    def report(self, model):
        history = model.loss_history_
        return {
            "iterations": float(len(history)),
            "converged": float(bool(history) and history[-1] < self.tol),
        }


def _wawa() -> Any:
    """crowd-kit's Wawa, with the scikit-learn estimator tags it lacks.

    Wawa.predict and predict_proba start with sklearn's check_is_fitted(self, 'skills_'),
    which since scikit-learn 1.6 first reads the object's tags (sklearn.utils.get_tags ->
    __sklearn_tags__). crowd-kit's aggregators are attrs classes, not sklearn estimators, so
    they have none and the check raises "'Wawa' object has no attribute
    '__sklearn_tags__'". The subclass borrows BaseEstimator's default tags and changes
    nothing else: the check then tests `skills_` as crowd-kit means it to, and the
    algorithm is crowd-kit's own."""
    from crowdkit.aggregation import Wawa as CrowdKitWawa
    from sklearn.base import BaseEstimator

    tags = getattr(BaseEstimator, "__sklearn_tags__", None)
    if tags is None or hasattr(CrowdKitWawa, "__sklearn_tags__"):
        return CrowdKitWawa()  # scikit-learn < 1.6, or a crowd-kit that has tags itself

    class TaggedWawa(CrowdKitWawa):
        __sklearn_tags__ = tags

    return TaggedWawa()


class Wawa(CrowdKit):
    """Wawa (worker agreement with aggregate): each annotator's agreement with the majority
    vote as their weight, then the weighted majority vote. No settings; deterministic."""

    def aggregator(self, seed):
        return _wawa()

    def report(self, model):
        return {"mean_worker_skill": float(model.skills_.mean())}
