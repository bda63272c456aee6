"""Label regimes: what the annotators return for an item, given its true label.

A regime acts in two places. Before labels are bought it may reshape the split
(`select_pool`: a long-tailed pool; `select_test`: a shifted test split). Then it turns
the labels it is given into what the annotators report (`observe`): noisy labels, crowd
votes, labeling-function votes, candidate sets. Regimes stack (`Stack`): each stage
observes what the stage before it reported, the first stage the truth.

The run annotates through `observe_at` and `observe_val_at`, which also pass the rows'
dataset indices (`items`), and the validation items' inputs. Most regimes need neither and
inherit them as `observe` and `observe_val`; a regime whose answers belong to particular
dataset items (a label file) or depend on the inputs (instance-dependent noise) overrides
them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from labelbench.config import ConfigError
from labelbench.labels.pool import Observed
from labelbench.labels.votes import Votes


class Regime:
    """Base regime: keeps the split, reports the labels it is given, one unit of cost per
    item. `kind` is what `observe` returns (see labels.pool.Observed)."""

    name = "regime"
    kind = "labels"
    annotations_per_item = 1  # budget units one revealed item takes (crowd: m annotations)

    def check(self, num_classes: int) -> None:
        """Refuse settings that cannot work with this many classes (a transition matrix of
        the wrong size ...) by raising ConfigError. Called before any label is drawn."""

    def select_pool(
        self, y: np.ndarray, num_classes: int, rng: np.random.Generator
    ) -> np.ndarray | None:
        """Positions of the pool items that exist under this regime (None: all of them)."""
        return None

    def select_test(
        self, y: np.ndarray, num_classes: int, rng: np.random.Generator
    ) -> np.ndarray | None:
        """Positions of the test items to evaluate on (None: all of them)."""
        return None

    def observe(
        self, given: Observed, x: np.ndarray, num_classes: int, rng: np.random.Generator
    ) -> Observed:
        """What the annotators report for items whose labels (so far) are `given.labels`;
        `x` holds the items' inputs, one row each. Only kind 'labels' can be observed."""
        return given

    def observe_val(self, y: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
        """Single labels for validation items. Regimes of kind 'labels' annotate them like
        the pool; the others (crowd, weak, partial) leave them gold: a small dev set."""
        if self.kind != "labels":
            return np.asarray(y, dtype=np.int64)
        return self.observe(Observed.of_labels(y), None, num_classes, rng).labels

    def check_dataset(self, size: int) -> None:
        """Refuse a dataset this regime cannot annotate (a vote file naming an item the
        dataset of `size` items lacks) by raising ConfigError. Called before the split is
        shaped, before any label is drawn."""

    def check_items(self, items: np.ndarray) -> None:
        """Refuse dataset items this regime cannot annotate (a label file without a row for
        one of them) by raising ConfigError. `items`: the dataset indices of the pool and
        validation items. Called when the regime has shaped the split, before any label is
        drawn."""

    def observe_at(
        self,
        given: Observed,
        x: np.ndarray | None,
        items: np.ndarray,
        num_classes: int,
        rng: np.random.Generator,
    ) -> Observed:
        """`observe` for the rows at dataset indices `items` (row-aligned with `given`)."""
        return self.observe(given, x, num_classes, rng)

    def observe_val_at(
        self,
        y: np.ndarray,
        x: np.ndarray | None,
        items: np.ndarray,
        num_classes: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """`observe_val` for the validation items at dataset indices `items`, whose inputs
        are `x`."""
        return self.observe_val(y, num_classes, rng)

    def observe_val_votes(self, x: np.ndarray) -> Votes | None:
        """The votes of the regime's sources on validation items with inputs x
        (labeling functions: the same LFs `observe` wrote), drawing nothing at random; None
        where the sources cannot vote on them (crowd annotators are asked about the pool)."""
        return None

    def cost(self, bought: Observed) -> float:
        """Label cost of the revealed pool items, whose annotations are `bought` (one unit an
        item by default; crowds are paid per vote)."""
        return float(len(bought))

    def stats(self, observed: Observed, y_true: np.ndarray) -> dict[str, float | list]:
        """What the regime realised on the revealed items (votes' accuracy ...), for the
        record. Statistics every regime has (noise rate, imbalance) are added by reveal."""
        return {}

    def label(self) -> str:
        """Short name for tables, with the setting that matters: 'symmetric(0.4)'."""
        return self.name


class Clean(Regime):
    """Annotators are always right: observed labels equal the true ones."""

    name = "clean"


class Stack(Regime):
    """Regimes applied in order: `stages` is a mapping (its order is the order of the
    defaults or command-line entries that built it) or a list. Each stage observes what the
    one before reported; stages that give no single label (crowd, weak, partial) must come
    last, since nothing after them has a label to act on."""

    name = "stack"

    def __init__(self, stages: Mapping[str, Regime] | Sequence[Regime]) -> None:
        items = list(stages.values() if isinstance(stages, Mapping) else stages)
        if not items:
            raise ConfigError(
                "stages is empty; add stages, e.g. +regime@regime.stages.a=longtail"
                " +regime@regime.stages.b=symmetric"
            )
        for stage in items:
            if not isinstance(stage, Regime):
                raise ConfigError(f"stages holds {stage!r}, which is not a regime")
        for before, after in itertools.pairwise(items):
            if before.kind != "labels":
                raise ConfigError(
                    f"stage {after.name} comes after {before.name}, which gives"
                    f" {before.kind} annotations rather than single labels; put"
                    f" {before.name} last"
                )
        self.stages = items
        self.kind = items[-1].kind
        self.annotations_per_item = items[-1].annotations_per_item

    def check(self, num_classes: int) -> None:
        for stage in self.stages:
            stage.check(num_classes)

    def _select(self, method: str, y, num_classes, rng) -> np.ndarray | None:
        kept = np.arange(len(y))
        for stage in self.stages:
            pick = getattr(stage, method)(y[kept], num_classes, rng)
            if pick is not None:
                kept = kept[pick]
        return None if len(kept) == len(y) else kept

    def select_pool(self, y, num_classes, rng):
        return self._select("select_pool", y, num_classes, rng)

    def select_test(self, y, num_classes, rng):
        return self._select("select_test", y, num_classes, rng)

    def observe(self, given, x, num_classes, rng):
        for stage in self.stages:
            given = stage.observe(given, x, num_classes, rng)
        return given

    def observe_val(self, y, num_classes, rng):
        for stage in self.stages:
            y = stage.observe_val(y, num_classes, rng)
        return y

    def check_dataset(self, size):
        for stage in self.stages:
            stage.check_dataset(size)

    def check_items(self, items):
        for stage in self.stages:
            stage.check_items(items)

    def observe_at(self, given, x, items, num_classes, rng):
        for stage in self.stages:
            given = stage.observe_at(given, x, items, num_classes, rng)
        return given

    def observe_val_at(self, y, x, items, num_classes, rng):
        for stage in self.stages:
            y = stage.observe_val_at(y, x, items, num_classes, rng)
        return y

    def observe_val_votes(self, x):
        return self.stages[-1].observe_val_votes(x)  # only the last stage can give votes

    def cost(self, bought: Observed) -> float:
        return self.stages[-1].cost(bought)  # the last stage's annotators are paid

    def stats(self, observed, y_true):
        return self.stages[-1].stats(observed, y_true)

    def label(self) -> str:
        return "+".join(stage.label() for stage in self.stages)
