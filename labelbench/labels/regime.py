"""Label regimes: what the annotators return for an item, given its true label."""

from __future__ import annotations

import numpy as np


class Regime:
    """Base regime. `observe` maps true labels to observed labels; it is the only place in
    the project where ground truth turns into something a strategy sees."""

    name = "regime"

    def observe(self, y_true: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def check(self, num_classes: int) -> None:
        """Refuse settings that cannot work with this many classes (a transition matrix of
        the wrong size ...) by raising ConfigError. Called before any label is drawn."""

    def cost(self, n_items: int) -> float:
        """Label cost of `n_items` annotated items (one unit each unless a regime says otherwise)."""
        return float(n_items)


class Clean(Regime):
    """Annotators are always right: observed labels equal the true ones."""

    name = "clean"

    def observe(self, y_true: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
        return np.array(y_true, dtype=np.int64, copy=True)
