"""Dataset sources. Each is a small config-constructed object whose `load(split_seed)`
returns a TaskData; constructors check their arguments, `load` checks the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from labelbench.config import ConfigError, check_flag
from labelbench.data.task import TaskData, TokenSpec, stratified_split


class Source:
    """Base: holds the split fractions and turns arrays into a split TaskData.
    `standardize` (vector data only) scales every feature to mean 0 and standard deviation
    1 with the statistics of the pool items."""

    name = "source"
    modality = "vector"
    standardize = False  # sources with their own __init__ (mnist1d) keep their data as is
    # Whether mirroring an input left-right keeps its class, unless `dataset.flip` says:
    # augmentations flip only where it does. A mirrored digit is another symbol (or none).
    flip_invariant = False

    @property
    def origin(self) -> str:
        """Where the data comes from, for messages."""
        return self.name

    def __init__(
        self,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        standardize: bool = False,
        flip: bool | None = None,
    ) -> None:
        # val_fraction=0: no validation split, for recipes that select the last weights
        # (strategy.selection=last); strategies that select on validation refuse it.
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"val_fraction={val_fraction} is outside [0, 1)")
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction={test_fraction} is outside (0, 1)")
        if val_fraction + test_fraction >= 1:
            raise ConfigError(
                f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no pool;"
                " it must be below 1"
            )
        check_flag("standardize", standardize)
        if flip is not None:
            if not isinstance(flip, bool):
                raise ConfigError(
                    f"flip={flip!r} must be true or false (whether a left-right mirror keeps"
                    " an image's class)"
                )
            self.flip_invariant = flip
        if standardize and self.modality != "vector":
            raise ConfigError(
                f"standardize=true is for tabular (vector) data; {self.name} is {self.modality} data"
            )
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize

    def arrays(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[int, ...]]:
        """Inputs (float32, one row per item; or a LazyInputs of items read from disk),
        labels (0..K-1; NO_LABEL for unlabeled-only items), class names, input shape."""
        raise NotImplementedError

    def test_indices(self) -> np.ndarray | None:
        """The rows of `arrays()` that form a fixed test split (a dataset's own, published
        one), or None to cut a stratified `test_fraction` per split seed."""
        return None

    def tokens(self) -> TokenSpec | None:
        """What the inputs are when they are token ids (a text source with
        dataset/encoder=tokens), else None."""
        return None

    def load(self, split_seed: int) -> TaskData:
        x, y, classes, input_shape = self.arrays()
        if len(classes) < 2:
            raise ConfigError(
                f"{self.origin} has a single class ({classes[0]!r}); a classification task needs"
                " at least 2"
            )
        split = stratified_split(
            y, self.val_fraction, self.test_fraction, split_seed, test=self.test_indices()
        )
        tokens = self.tokens()
        if tokens is not None:  # token ids stay integers
            x = np.asarray(x, dtype=np.int64)
        elif isinstance(x, np.ndarray):  # a LazyInputs stays on disk (labelbench.data.lazy)
            x = x.astype(np.float32, copy=False)
        if self.standardize:
            x = standardized(x, split.pool)
        return TaskData(
            name=self.name,
            x=x,
            y=y,
            classes=classes,
            modality=self.modality,
            input_shape=input_shape,
            split=split,
            flip_invariant=self.flip_invariant,
            tokens=tokens,
        )


def standardized(x: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Every feature shifted and scaled to mean 0 and standard deviation 1 over the rows
    `fit_rows` (the pool: never the validation or test items, whose statistics would leak
    into training). A feature constant on those rows is only shifted."""
    fit = x[fit_rows].astype(np.float64)
    mean, std = fit.mean(axis=0), fit.std(axis=0)
    std[std == 0] = 1.0
    return ((x - mean) / std).astype(np.float32)


class Digits(Source):
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), pixels scaled to [0, 1].
    Not flip-invariant: a mirrored digit is another symbol or none."""

    name = "digits"
    modality = "image"

    def arrays(self):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.astype(np.float32) / 16.0
        classes = tuple(str(c) for c in bunch.target_names)
        return x, bunch.target.astype(np.int64), classes, (1, 8, 8)


class Synthetic(Source):
    """`sklearn.datasets.make_classification`: Gaussian clusters, sizes configurable. The
    data is fixed by `generator_seed`; the split by the run's `split_seed`."""

    name = "synthetic"

    def __init__(
        self,
        n_samples: int = 1000,
        n_features: int = 20,
        n_informative: int = 10,
        n_classes: int = 4,
        class_sep: float = 1.0,
        generator_seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        standardize: bool = False,
    ) -> None:
        super().__init__(val_fraction, test_fraction, standardize)
        if n_classes < 2:
            raise ConfigError(f"n_classes={n_classes} must be at least 2")
        if not 1 <= n_informative <= n_features:
            raise ConfigError(
                f"n_informative={n_informative} must be in 1..n_features={n_features}"
            )
        if n_samples < 10 * n_classes:
            raise ConfigError(
                f"n_samples={n_samples} must be at least 10 x n_classes ({10 * n_classes})"
            )
        self.params = dict(
            n_samples=n_samples,
            n_features=n_features,
            n_informative=n_informative,
            n_redundant=0,
            n_classes=n_classes,
            n_clusters_per_class=1,
            class_sep=class_sep,
            random_state=generator_seed,
        )

    def arrays(self):
        from sklearn.datasets import make_classification

        x, y = make_classification(**self.params)
        classes = tuple(f"class_{c}" for c in range(self.params["n_classes"]))
        return x, y.astype(np.int64), classes, (self.params["n_features"],)


class Files(Source):
    """A local CSV or Parquet table read through Hugging Face `datasets`.

    `label_column` names the class (any values: they are sorted into class ids);
    `feature_columns` lists numeric inputs (default: every other column); `standardize`
    (default on: table columns come in any units) scales them with pool statistics."""

    name = "files"
    FORMATS: ClassVar[dict[str, str]] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

    def __init__(
        self,
        path: str,
        label_column: str = "label",
        feature_columns: list[str] | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        standardize: bool = True,
    ) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        super().__init__(val_fraction, test_fraction, standardize)
        if self.path.suffix.lower() not in self.FORMATS:
            raise ConfigError(
                f"path={path} has an unknown extension; allowed: {', '.join(self.FORMATS)}"
            )
        self.label_column = label_column
        self.feature_columns = list(feature_columns) if feature_columns else None

    @property
    def origin(self) -> str:
        return str(self.path)

    def _read(self) -> Any:
        if not self.path.is_file():
            raise ConfigError(f"path={self.path} does not exist or is not a file")
        import datasets

        datasets.disable_progress_bars()
        fmt = self.FORMATS[self.path.suffix.lower()]
        reader = datasets.Dataset.from_csv if fmt == "csv" else datasets.Dataset.from_parquet
        return reader(str(self.path), keep_in_memory=True)

    def arrays(self):
        table = self._read()
        columns = list(table.column_names)
        if self.label_column not in columns:
            raise ConfigError(
                f"label_column={self.label_column!r} is not a column of {self.path};"
                f" columns: {', '.join(columns)}"
            )
        features = self.feature_columns or [c for c in columns if c != self.label_column]
        if self.label_column in features:
            raise ConfigError(
                f"feature_columns={features} includes the label column {self.label_column!r};"
                " the label must not be an input"
            )
        missing = [c for c in features if c not in columns]
        if missing or not features:
            raise ConfigError(
                f"feature_columns={features} must name columns of {self.path} besides the label;"
                f" columns: {', '.join(columns)}"
            )
        data = table.with_format("numpy")
        labels = np.asarray(data[self.label_column])
        if len(labels) == 0:
            raise ConfigError(f"path={self.path} has no rows")
        try:
            x = np.stack([np.asarray(data[c], dtype=np.float32) for c in features], axis=1)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"feature_columns of {self.path} must be numeric: {e}") from None
        if not np.isfinite(x).all():
            raise ConfigError(f"path={self.path} has missing or non-finite feature values")
        values, y = np.unique(labels, return_inverse=True)
        classes = tuple(str(v) for v in values)
        return x, y.astype(np.int64), classes, (len(features),)
