"""The strategy interface: learn from a LabelPool, return something that predicts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool

# model(in_shape=..., num_classes=...) -> torch.nn.Module
ModelFactory = Callable[..., Any]
# trainer(**overrides) -> pytorch_lightning.Trainer
TrainerFactory = Callable[..., Any]


@dataclass(frozen=True)
class Checkpointing:
    """Where a fit may keep checkpoints, and how often (optimizer steps). The folder is the
    same for every attempt at the same run (it is keyed by the run key), so a fit that finds
    a checkpoint there resumes from it."""

    dir: Path
    every_steps: int


@runtime_checkable
class Predictor(Protocol):
    """A fitted classifier. `fit_info` holds plain floats about the fit (steps, best
    validation score ...) that the run record keeps under `fit/`."""

    fit_info: dict[str, float]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (len(x), num_classes), rows summing to 1."""
        ...


# For the one-line refusal when a strategy meets annotations it cannot learn from.
STRATEGIES_FOR = {
    "labels": "supervised or another strategy for single labels",
    "crowd": "majority_vote, dawid_skene, soft_crowd, glad, mace, one_coin_ds, mmsr or wawa",
    "weak": "lf_majority or label_model",
    "partial": "proden or complementary",
}
GIVES = {
    "labels": "single labels",
    "crowd": "crowd annotations",
    "weak": "labeling-function votes",
    "partial": "candidate sets",
}


class Strategy(ABC):
    """A learning method. Gets observed labels only (LabelPool) and a label-free view of the
    task; validation labels are the only ones it may select models with.

    `accepts` names the kinds of annotation (LabelPool.kind) it learns from: single labels
    unless a strategy says otherwise (crowd votes, labeling-function votes, candidate sets)."""

    accepts: tuple[str, ...] = ("labels",)
    # A marked upper bound (distill with teacher=oracle) learns from the true labels of the
    # whole pool: the run hands them over as `oracle_pool` (clean, full budget) before fit,
    # and marks the record and the strategy's table name. No other strategy sees them.
    upper_bound: bool = False
    oracle_pool: LabelPool | None = None

    # False for strategies that never touch the run's `model` (scikit-learn's logistic
    # regression ...): they are tabled with the model `–`, and their run key leaves the
    # model out, since they give the same run under any.
    uses_model: bool = True

    @classmethod
    def trains_network(cls, config: Mapping[str, Any]) -> bool:
        """Whether a strategy built from `config` (its resolved YAML node) trains the run's
        `model` (`uses_model`, unless a strategy decides from its config)."""
        return cls.uses_model

    def check(self, pool: LabelPool, task: TaskView) -> None:
        """Refuse labels this strategy cannot learn from, and settings that cannot work with
        them (a kNN `k` larger than the labeled set ...), by raising ConfigError. Called
        before any training starts; overrides call this first."""
        if pool.kind not in self.accepts:
            wanted = " or ".join(GIVES[k] for k in self.accepts)
            raise ConfigError(
                f"learns from {wanted} but the regime gives {GIVES[pool.kind]};"
                f" strategies for those: {STRATEGIES_FOR[pool.kind]}"
            )

    def check_model(self, model: ModelFactory) -> None:  # noqa: B027 (optional hook)
        """Refuse a model this strategy cannot work with (an active-learning query that
        needs embeddings, with a model that has none) by raising ConfigError. Called with
        `check`, before any training."""

    @abstractmethod
    def fit(
        self,
        pool: LabelPool,
        task: TaskView,
        model: ModelFactory,
        trainer: TrainerFactory,
        *,
        seed: int,
        checkpoint: Checkpointing | None = None,
    ) -> Predictor: ...
