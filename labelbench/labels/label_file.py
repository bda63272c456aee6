"""Noisy labels read from a file: real annotators' labels published for a dataset, such as
CIFAR-10N / CIFAR-100N (Wei et al. 2022, "Learning with noisy labels revisited").

Row i of the file labels item i of the dataset: its i-th row as the source loads it. Sources
keep their data's order: `files` the table's rows, `synthetic` and `digits` their arrays,
`hub` the rows of `split` in the dataset's own order, then those of `test_split` (so on
`dataset=cifar10` rows 0..49,999 are CIFAR-10's training images, in the order CIFAR-N
labels them, and 50,000.. its test images, which are never annotated). The file needs a
row for every pool and validation item, and may have more (CIFAR-N's 50,000 rows serve a
sliced `train[:5000]` as well). Labels are class indices 0..K-1.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from pathlib import Path

import numpy as np

from labelbench.config import ConfigError
from labelbench.labels.pool import Observed
from labelbench.labels.regime import Regime

FORMATS = (".csv", ".npy", ".pt")
# CIFAR-N's keys (UCSC-REAL/cifar-10-100n README), and the names its paper and code use for
# them (main.py `noise_type`: aggre, worst, rand1..3; noisy100 for CIFAR-100N).
ALIASES = {
    "aggre": "aggre_label",
    "worst": "worse_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
    "rand1": "random_label1",
    "rand2": "random_label2",
    "rand3": "random_label3",
    "noisy": "noisy_label",
    "noisy100": "noisy_label",
    "clean": "clean_label",
}
CLEAN = "clean_label"  # the true labels: never used as annotations
# A dict without `column`: CIFAR-10N's "worst" labels (the hardest of its settings, 40.2%
# noise, Wei et al. 2022 Table 1), or the only noisy key (CIFAR-100N: noisy_label).
DEFAULT_KEY = "worse_label"
MISMATCH_WARNING = 0.01  # clean_label disagreeing with the dataset on more rows: misaligned?


def _integer_labels(values: np.ndarray, where: str) -> np.ndarray:
    """`values` as a 1-d int64 array; ConfigError for anything but whole numbers."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ConfigError(f"{where} holds an array of shape {values.shape}; one label per row")
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if (
        values.dtype.kind == "f"
        and np.isfinite(values).all()
        and (values == np.round(values)).all()
    ):
        return values.astype(np.int64)
    raise ConfigError(f"{where} holds {values.dtype} values; labels must be class indices 0..K-1")


def checked_path(path: str, formats: tuple[str, ...]) -> Path:
    """`path` as a Path to an existing file with one of `formats`' extensions; ConfigError
    (one line, naming the path and what is allowed) otherwise."""
    checked = Path(str(path)).expanduser()
    if checked.suffix.lower() not in formats:
        raise ConfigError(
            f"path={path} has extension {checked.suffix or '(none)'!r}; allowed:"
            f" {', '.join(formats)}"
        )
    if not checked.is_file():
        raise ConfigError(f"path={path} does not exist or is not a file")
    return checked


def file_sha256(path: Path) -> str:
    """First 16 hex digits of the file's sha256 (recorded, since a run key knows a file's
    path but not what it held), read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _torch_load(path: Path) -> object:
    """A .pt file through torch.load(weights_only=True): tensors, and numpy arrays (CIFAR-N's
    files hold those), but no code."""
    import torch

    reconstruct = np.zeros(0).__reduce__()[0]  # how numpy pickles an array
    allowed = [
        np.ndarray,
        np.dtype,
        *{type(np.dtype(code)) for code in "?bhilqBHILQefd"},  # numeric dtypes only
        reconstruct,
        # files written under numpy < 2 (CIFAR-N's) name it by its old module
        (reconstruct, "numpy.core.multiarray._reconstruct"),
    ]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


class LabelFile(Regime):
    """The labels in `path` (.csv, .npy or .pt), row i for dataset item i; pool and
    validation items both get theirs. `column` picks a .csv column (by its header) or a key
    of a .pt dict (CIFAR-N: aggre_label, random_label1..3, worse_label, noisy_label, or
    aggre, random1..3 / rand1..3, worst, noisy); by default a .csv's only column and a
    CIFAR-N dict's worse_label. A dict's clean_label is never used as annotations; if
    present, it is compared with the dataset's labels and a warning says when they differ
    on more than 1% of the items: a hint that the file's rows are not the dataset's.

    The file's labels replace whatever a stage before gave, so in a stack it follows only
    stages that shape the split (longtail)."""

    name = "label_file"

    def __init__(self, path: str, column: str | None = None) -> None:
        self.path = checked_path(path, FORMATS)
        if column is not None and not isinstance(column, str):
            raise ConfigError(f"column={column!r} must be a column name or a key")
        self.column = self.key = column
        self._clean: np.ndarray | None = None
        reader = {".csv": self._csv, ".npy": self._npy, ".pt": self._pt}
        self.labels = reader[self.path.suffix.lower()]()
        if len(self.labels) == 0:
            raise ConfigError(f"path={self.path} holds no labels")
        # recorded, since the run key knows the path but not what the file held
        self.sha256 = file_sha256(self.path)

    def _csv(self) -> np.ndarray:
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        while rows and not rows[-1]:  # trailing blank lines; one inside would shift items
            rows.pop()
        if not rows:
            raise ConfigError(f"path={self.path} is empty")
        header = [h.strip() for h in rows[0]]
        if self.column is None:
            if len(header) != 1:
                raise ConfigError(
                    f"path={self.path} has {len(header)} columns ({', '.join(header)}); set"
                    " column to the one with the labels"
                )
            col = 0
            body = rows[1:] if not header[0].lstrip("-").isdigit() else rows  # header or not
        else:
            if self.column not in header:
                raise ConfigError(
                    f"column={self.column!r} is not a column of {self.path}; columns:"
                    f" {', '.join(header)}"
                )
            col, body = header.index(self.column), rows[1:]
        values = []
        for item, row in enumerate(body):
            cell = row[col].strip() if col < len(row) else ""
            try:
                values.append(int(cell))
            except ValueError:
                raise ConfigError(
                    f"path={self.path} holds {cell!r} for item {item}; labels must be class"
                    " indices 0..K-1"
                ) from None
        return np.asarray(values, dtype=np.int64)

    def _npy(self) -> np.ndarray:
        if self.column is not None:
            raise ConfigError(
                f"column={self.column!r} is for .csv and .pt files; a .npy file holds one array"
            )
        try:
            values = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ConfigError(f"path={self.path} is not a readable .npy array: {e}") from None
        return _integer_labels(values, f"path={self.path}")

    def _pt(self) -> np.ndarray:
        try:
            data = _torch_load(self.path)
        except Exception:  # torch raises many kinds, with pages of advice
            raise ConfigError(
                f"path={self.path} cannot be read by torch.load(weights_only=True); it must hold"
                " a tensor or numeric numpy array of labels, or a dict of them (CIFAR-N)"
            ) from None
        if not isinstance(data, dict):
            if self.column is not None:
                raise ConfigError(
                    f"column={self.column!r}: {self.path} holds one array, not a dict of them"
                )
            return _integer_labels(np.asarray(data), f"path={self.path}")
        keys = [str(k) for k in data]
        noisy = [k for k in keys if k != CLEAN]
        if self.column is not None:
            key = ALIASES.get(self.column, self.column)
            if key == CLEAN:
                raise ConfigError(
                    f"column={self.column!r} holds the true labels; pick annotators' labels:"
                    f" {', '.join(noisy)}"
                )
            if key not in keys:
                raise ConfigError(
                    f"column={self.column!r} is not a key of {self.path}; keys: {', '.join(noisy)}"
                )
        elif DEFAULT_KEY in keys:
            key = DEFAULT_KEY
        elif len(noisy) == 1:
            key = noisy[0]
        else:
            raise ConfigError(
                f"path={self.path} holds several label sets; set column to one of:"
                f" {', '.join(noisy)}"
            )
        self.key = key
        if CLEAN in data:  # kept only to warn of a misaligned file, never to annotate
            self._clean = _integer_labels(np.asarray(data[CLEAN]).reshape(-1), CLEAN)
        return _integer_labels(np.asarray(data[key]).reshape(-1), f"{self.path} [{key}]")

    def check(self, num_classes: int) -> None:
        low, high = int(self.labels.min()), int(self.labels.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ConfigError(
                f"path={self.path} holds label {bad} but the dataset has {num_classes} classes;"
                f" allowed: 0..{num_classes - 1}"
            )

    def check_items(self, items: np.ndarray) -> None:
        needed = int(np.max(items)) + 1 if len(items) else 0
        if needed > len(self.labels):
            raise ConfigError(
                f"path={self.path} has {len(self.labels)} rows but the dataset has at least"
                f" {needed} items to label (row i labels dataset item i)"
            )

    def _at(self, given_labels: np.ndarray, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        self.check_items(items)
        if self._clean is not None and len(items) and len(self._clean) == len(self.labels):
            differ = float(np.mean(self._clean[items] != given_labels))
            if differ > MISMATCH_WARNING:
                warnings.warn(
                    f"{self.path}: its clean_label differs from the dataset's labels on"
                    f" {differ:.1%} of the items; are its rows in the dataset's order?",
                    stacklevel=2,
                )
        return self.labels[items]

    def observe(self, given, x, num_classes, rng):
        raise ValueError("a label file needs the items' dataset indices: call observe_at")

    def observe_at(self, given, x, items, num_classes, rng):
        return Observed.of_labels(self._at(given.labels, items))

    def observe_val_at(self, y, x, items, num_classes, rng):
        return self._at(y, items)

    def stats(self, observed, y_true):
        return {"label_file": str(self.path), "label_file_sha256": self.sha256}

    def label(self) -> str:
        return f"label_file({self.path.stem}{f' {self.key}' if self.key else ''})"
