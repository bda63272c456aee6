"""LabelPool: everything a strategy may know about labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _readonly(a: np.ndarray, dtype: type) -> np.ndarray:
    a = np.array(a, dtype=dtype)  # a private copy, so no caller can mutate it under us
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class LabelPool:
    """Revealed pool items with the labels the annotators gave, and the items still unlabeled.

    Holds observed labels only: the true labels of the pool are not stored here and cannot be
    reached from it. All indices are dataset indices (rows of `TaskView.x`)."""

    indices: np.ndarray  # revealed pool items, in reveal order
    labels: np.ndarray  # observed label of each revealed item
    unlabeled: np.ndarray  # pool items not revealed
    val_indices: np.ndarray  # validation items whose (observed) labels the strategy may use
    val_labels: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        for name in ("indices", "labels", "unlabeled", "val_indices", "val_labels"):
            object.__setattr__(self, name, _readonly(getattr(self, name), np.int64))
        if len(self.indices) != len(self.labels):
            raise ValueError("one observed label per revealed index is required")
        if len(self.val_indices) != len(self.val_labels):
            raise ValueError("one observed label per validation index is required")
        if np.intersect1d(self.indices, self.unlabeled).size:
            raise ValueError("an item cannot be both revealed and unlabeled")

    def __len__(self) -> int:
        return len(self.indices)

    def class_counts(self) -> np.ndarray:
        """Observed labels per class among the revealed items."""
        return np.bincount(self.labels, minlength=self.num_classes)
