"""The strategy interface: learn from a LabelPool, return something that predicts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

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


class Strategy(ABC):
    """A learning method. Gets observed labels only (LabelPool) and a label-free view of the
    task; validation labels are the only ones it may select models with."""

    def check(self, pool: LabelPool, task: TaskView) -> None:  # noqa: B027 (optional hook)
        """Refuse settings that cannot work with these labels (a kNN `k` larger than the
        labeled set ...) by raising ConfigError. Called before any training starts."""

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
