"""TaskData: a dataset with its fixed pool/val/test split, and the label-free view of it
that strategies receive."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labelbench.config import ConfigError

MODALITIES = ("vector", "image", "text")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


NO_LABEL = -1  # the label of an unlabeled-only item (in TaskData.y and a source's labels)


@dataclass(frozen=True)
class TokenSpec:
    """What a tokenized text task's inputs are: each row of x holds `max_length` token ids
    (int64) of the tokenizer `tokenizer` (a name; `fingerprint` identifies its vocabulary
    files), laid out as the tokenizer does it: `special_ids` (e.g. [CLS] ... [SEP]) around
    the sentence's tokens, then `pad_id` to the end of the row. `mask_id`: the tokenizer's
    [MASK] token, if it has one. Networks that read token ids (model=hf on text) check
    it against their own tokenizer; text augmentations draw replacements from
    `vocab_size` and leave special and padding positions alone."""

    tokenizer: str
    fingerprint: str
    vocab_size: int
    pad_id: int
    special_ids: tuple[int, ...]
    max_length: int
    mask_id: int | None = None


@dataclass(frozen=True)
class Split:
    """Dataset indices of the pool (labels bought from it), validation and test items, and
    the unlabeled-only items: inputs without any label (STL-10's unlabeled split, USB's
    open-set data, a folder of unlabeled photos). Those are never revealed, never in
    validation or test, and no regime or budget sees them; strategies that learn from
    unlabeled inputs get them beside the unrevealed pool (LabelPool.extra)."""

    pool: np.ndarray
    val: np.ndarray
    test: np.ndarray
    unlabeled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        for name in ("pool", "val", "test", "unlabeled"):
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
    (`val_fraction` of them) and pool. Items labelled NO_LABEL are the unlabeled-only
    items, whatever the seed; they take no part in the cut (so adding some moves no
    other item)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B17]))
    unlabeled = np.flatnonzero(y == NO_LABEL)
    rest = y != NO_LABEL
    parts: dict[str, list[np.ndarray]] = {"pool": [], "val": [], "test": []}
    if test is not None:
        test = np.unique(np.asarray(test, dtype=np.int64))
        if len(test) and (test[0] < 0 or test[-1] >= len(y)):
            raise ValueError(f"fixed test indices must lie in 0..{len(y) - 1}")
        if (y[test] == NO_LABEL).any():
            raise ValueError("fixed test items must have labels")
        rest[test] = False
        parts["test"].append(test)
    for c in np.unique(y[y != NO_LABEL]):
        items = rng.permutation(np.flatnonzero((y == c) & rest))
        n_test = 0 if test is not None else round(test_fraction * len(items))
        n_val = round(val_fraction * len(items))
        parts["test"].append(items[:n_test])
        parts["val"].append(items[n_test : n_test + n_val])
        parts["pool"].append(items[n_test + n_val :])
    return Split(**{k: np.sort(np.concatenate(v)) for k, v in parts.items()}, unlabeled=unlabeled)


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
    tokens: TokenSpec | None = None  # inputs are token ids (a tokenized text task)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class TaskData:
    """Inputs, true labels, class names and modality, with the fixed split.

    `y` holds the ground truth: regimes corrupt it and evaluation scores against it; it
    never reaches a strategy (strategies get `view()`). It is NO_LABEL exactly at the
    unlabeled-only items (`split.unlabeled`). `x` is an array, or a LazyInputs
    (labelbench.data.lazy) for inputs that stay on disk."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    modality: str
    input_shape: tuple[int, ...]
    split: Split
    flip_invariant: bool = False  # mirroring an input left-right keeps its class (not digits)
    tokens: TokenSpec | None = None  # x holds token ids of this tokenizer (text to fine-tune on)

    def __post_init__(self) -> None:
        if isinstance(self.x, np.ndarray) or not hasattr(self.x, "reader"):
            object.__setattr__(self, "x", _frozen(self.x))
        object.__setattr__(self, "y", _frozen(self.y.astype(np.int64)))
        if self.modality not in MODALITIES:
            raise ConfigError(f"modality={self.modality!r} is not one of {', '.join(MODALITIES)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} inputs but {len(self.y)} labels")
        if not np.array_equal(np.flatnonzero(self.y == NO_LABEL), self.split.unlabeled):
            raise ValueError(f"{self.name}: the unlabeled-only items must be those labelled -1")

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
            tokens=self.tokens,
        )
