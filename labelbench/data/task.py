"""TaskData: a dataset with its fixed pool/val/test split, and the label-free view of it
that strategies receive."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelbench.config import ConfigError

MODALITIES = ("vector", "image", "text")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Split:
    """Dataset indices of the pool (labels bought from it), validation and test items."""

    pool: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for name in ("pool", "val", "test"):
            object.__setattr__(self, name, _frozen(getattr(self, name).astype(np.int64)))


def stratified_split(
    y: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    test: np.ndarray | None = None,
) -> Split:
    """Per class, shuffle its items and cut a test share, a validation share and the pool.

    Depends only on the labels, the fractions and `seed` (the run's `split_seed`). `test`:
    a source's own fixed test indices; they are the test split whatever the seed (and
    `test_fraction` is ignored), and each class's other items are cut into validation
    (`val_fraction` of them) and pool."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B17]))
    rest = np.ones(len(y), dtype=bool)
    parts: dict[str, list[np.ndarray]] = {"pool": [], "val": [], "test": []}
    if test is not None:
        test = np.unique(np.asarray(test, dtype=np.int64))
        if len(test) and (test[0] < 0 or test[-1] >= len(y)):
            raise ValueError(f"fixed test indices must lie in 0..{len(y) - 1}")
        rest[test] = False
        parts["test"].append(test)
    for c in np.unique(y):
        items = rng.permutation(np.flatnonzero((y == c) & rest))
        n_test = 0 if test is not None else round(test_fraction * len(items))
        n_val = round(val_fraction * len(items))
        parts["test"].append(items[:n_test])
        parts["val"].append(items[n_test : n_test + n_val])
        parts["pool"].append(items[n_test + n_val :])
    return Split(**{k: np.sort(np.concatenate(v)) for k, v in parts.items()})


@dataclass(frozen=True)
class TaskView:
    """What a strategy may see: the inputs and which of them form the pool and the
    validation split. No labels at all, and the test indices are withheld."""

    name: str
    x: np.ndarray
    classes: tuple[str, ...]
    modality: str
    input_shape: tuple[int, ...]
    pool: np.ndarray
    val: np.ndarray
    flip_invariant: bool = False  # mirroring an input left-right keeps its class

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class TaskData:
    """Inputs, true labels, class names and modality, with the fixed split.

    `y` holds the ground truth: regimes corrupt it and evaluation scores against it; it
    never reaches a strategy (strategies get `view()`)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    modality: str
    input_shape: tuple[int, ...]
    split: Split
    flip_invariant: bool = False  # mirroring an input left-right keeps its class (not digits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _frozen(self.x))
        object.__setattr__(self, "y", _frozen(self.y.astype(np.int64)))
        if self.modality not in MODALITIES:
            raise ConfigError(f"modality={self.modality!r} is not one of {', '.join(MODALITIES)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} inputs but {len(self.y)} labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def view(self) -> TaskView:
        """The label-free, test-free view handed to strategies."""
        return TaskView(
            name=self.name,
            x=self.x,
            classes=self.classes,
            modality=self.modality,
            input_shape=self.input_shape,
            pool=self.split.pool,
            val=self.split.val,
            flip_invariant=self.flip_invariant,
        )
