"""Generated stand-ins for datasets that cannot be had here (no network, no CIFAR): random
images of the real dataset's shape, classes, columns and split names, saved as a
`datasets` folder that the real hub loader reads (`dataset.name=<folder>`), and label files
shaped like CIFAR-N's. A preset runs on a stand-in through its own code path, so tests and
the step-time benchmark exercise what a cluster run does, only on meaningless pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Hub datasets by their YAML stem: (height, width, channels), number of classes.
SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "svhn": ((32, 32, 3), 10),
}
# CIFAR-N's label files (UCSC-REAL/cifar-10-100n data/CIFAR-10_human.pt): one array of
# labels per annotation set, in CIFAR-10's training order.
CIFAR10N_KEYS = ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")


def write_hub_standin(
    folder: str | Path, stem: str, dataset: Any, n_train: int = 200, n_test: int = 100,
    seed: int = 0,
) -> Path:  # fmt: skip
    """Save a stand-in for the hub dataset `stem` (a key of SHAPES) under `folder`, with the
    splits and columns the composed `dataset` node names (split, test_split, input_column,
    label_column); labels cycle through the classes so every class is present."""
    import datasets
    from PIL import Image

    if stem not in SHAPES:
        raise ValueError(f"no stand-in shape for dataset {stem!r}; known: {', '.join(SHAPES)}")
    (height, width, channels), num_classes = SHAPES[stem]
    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {
            str(dataset.input_column): datasets.Image(),
            str(dataset.label_column): datasets.ClassLabel(num_classes=num_classes),
        }
    )

    def split(n: int) -> datasets.Dataset:
        pixels = rng.integers(0, 256, size=(n, height, width, channels), dtype=np.uint8)
        return datasets.Dataset.from_dict(
            {
                str(dataset.input_column): [Image.fromarray(p) for p in pixels],
                str(dataset.label_column): [i % num_classes for i in range(n)],
            },
            features=features,
        )

    splits = {str(dataset.split): split(n_train)}
    if dataset.get("test_split"):
        splits[str(dataset.test_split)] = split(n_test)
    path = Path(folder)
    datasets.disable_progress_bars()
    datasets.DatasetDict(splits).save_to_disk(str(path))
    return path


def write_cifar10n_standin(path: str | Path, n: int, num_classes: int = 10, seed: int = 0) -> Path:
    """A .pt file shaped like CIFAR-10N's: a dict of numpy label arrays, one per annotation
    set, and the clean labels (here the stand-in's: item i has class i mod num_classes)."""
    import torch

    rng = np.random.default_rng(seed)
    labels = {key: rng.integers(0, num_classes, n) for key in CIFAR10N_KEYS}
    labels["clean_label"] = np.arange(n) % num_classes
    path = Path(path)
    torch.save(labels, path)
    return path


def standin_overrides(
    overrides: list[str], folder: str | Path, n_train: int = 240, n_test: int = 60
) -> list[str]:
    """The overrides of a run whose hub dataset (and CIFAR-N label file) are replaced by
    stand-ins written under `folder` (once; reused after): `dataset.name=<folder>/<stem>`,
    `regime.path=<folder>/CIFAR-10_human.pt`, and a joined or sliced split (SVHN's
    train+extra) read as the stand-in's one training split. Other runs come back as given."""
    from labelbench.run import compose

    cfg, choices = compose(overrides)
    folder, stem, extra = Path(folder), choices["dataset"], []
    if stem in SHAPES:
        node = cfg.dataset
        if "+" in str(node.split) or "[" in str(node.split):
            extra.append("dataset.split=train")
            node.split = "train"
        data = folder / stem
        if not data.exists():
            write_hub_standin(data, stem, node, n_train=n_train, n_test=n_test)
        extra.append(f"dataset.name={data}")
    if choices["regime"] == "label_file":
        labels = folder / "CIFAR-10_human.pt"
        if not labels.exists():
            write_cifar10n_standin(labels, n_train)
        extra.append(f"regime.path={labels}")
    return [*overrides, *extra]
