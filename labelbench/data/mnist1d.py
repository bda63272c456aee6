"""MNIST-1D (Greydanus & Kobak, 2020): a small 1-D analogue of MNIST, generated offline by
the PyPI package `mnist1d`."""

from __future__ import annotations

import random
from functools import lru_cache
from importlib import metadata

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.sources import Source


@lru_cache(maxsize=1)
def _generate() -> tuple[np.ndarray, np.ndarray, int]:
    """Train then test rows of the package's standard dataset (its default arguments:
    5000 signals, seed 42), and the number of train rows. Read-only, built once a process."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ConfigError(
            "dataset=mnist1d needs the `mnist1d` package: pip install 'mnist1d>=0.0.2'"
        ) from None

    # make_dataset seeds the global `random` and `np.random`: put them back afterwards, so
    # loading the data moves no other RNG.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y, len(data["y"])


class MNIST1D(Source):
    """MNIST-1D: 5000 signals of 40 samples, 10 digit classes (4000 train, 1000 test), as
    the `mnist1d` package generates them with its default arguments; no download.

    The package's own split is kept: its 1000 test items are the test split for every split
    seed; validation (`val_fraction` of each class) and the pool are cut from its 4000 train
    items by the run's `split_seed`. Items have shape (1, 40), one channel of 40 samples, so
    a 1-D CNN (model=cnn1d) reads them as signals; an MLP flattens them. The modality is
    `vector`: image augmentations do not apply."""

    name = "mnist1d"
    modality = "vector"

    def __init__(self, val_fraction: float = 0.15) -> None:
        # Not Source.__init__: the test split is fixed, so there is no test_fraction and
        # val_fraction is a share of the train items only.
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction={val_fraction} is outside (0, 1)")
        self.val_fraction = val_fraction
        self.test_fraction = 0.2  # the package's own: 1000 of 5000 (unused by the split)

    @property
    def origin(self) -> str:
        return f"mnist1d {self.version} (make_dataset with get_dataset_args())"

    @property
    def version(self) -> str | None:
        """The installed `mnist1d` package that generates the data (None if missing)."""
        try:
            return metadata.version("mnist1d")
        except metadata.PackageNotFoundError:
            return None

    def arrays(self):
        x, y, _ = _generate()
        return x, y, tuple(str(d) for d in range(10)), (1, x.shape[1])

    def test_indices(self) -> np.ndarray:
        x, _, n_train = _generate()
        return np.arange(n_train, len(x))
