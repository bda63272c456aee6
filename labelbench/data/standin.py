"""Generated stand-ins for datasets that cannot be had here (no network, no CIFAR): random
images of the real dataset's shape, classes, columns and split names (its unlabeled split
too, where it has one), saved as a `datasets` folder that the real hub loader reads
(`dataset.name=<folder>`), and label files shaped like CIFAR-N's. A preset runs on a
stand-in through its own code path, so tests and the step-time benchmark exercise what a
cluster run does, only on meaningless pixels (or generated sentences). A model=hf whose
weights are not here gets a tiny random network of the same family (BERT with MiniLM's
uncased WordPiece tokenizer; ViT-S/2-shaped for 32x32 images) as `model.path`.
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
    "stl10": ((96, 96, 3), 10),
}
# CIFAR-N's label files (UCSC-REAL/cifar-10-100n data/CIFAR-10_human.pt): one array of
# labels per annotation set, in CIFAR-10's training order.
CIFAR10N_KEYS = ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3")


def write_hub_standin(
    folder: str | Path, stem: str, dataset: Any, n_train: int = 200, n_test: int = 100,
    seed: int = 0, n_unlabeled: int = 100,
) -> Path:  # fmt: skip
    """Save a stand-in for the hub dataset `stem` (a key of SHAPES) under `folder`, with the
    splits and columns the composed `dataset` node names (split, test_split, unlabeled_split,
    input_column, label_column); labels cycle through the classes so every class is present.
    An `unlabeled_split` gets `n_unlabeled` rows labelled -1 (a ClassLabel's "no label", as
    STL-10's unlabeled split on the Hub)."""
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

    def split(n: int, labelled: bool = True) -> datasets.Dataset:
        pixels = rng.integers(0, 256, size=(n, height, width, channels), dtype=np.uint8)
        return datasets.Dataset.from_dict(
            {
                str(dataset.input_column): [Image.fromarray(p) for p in pixels],
                str(dataset.label_column): [i % num_classes if labelled else -1 for i in range(n)],
            },
            features=features,
        )

    splits = {str(dataset.split): split(n_train)}
    if dataset.get("test_split"):
        splits[str(dataset.test_split)] = split(n_test)
    if dataset.get("unlabeled_split"):
        splits[str(dataset.unlabeled_split)] = split(n_unlabeled, labelled=False)
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
    overrides: list[str], folder: str | Path, n_train: int = 240, n_test: int = 60,
    n_unlabeled: int = 60,
) -> list[str]:  # fmt: skip
    """The overrides of a run whose hub dataset (and CIFAR-N label file) are replaced by
    stand-ins written under `folder` (once; reused after; an unlabeled split, STL-10's, of
    `n_unlabeled` rows): `dataset.name=<folder>/<stem>`,
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
            write_hub_standin(
                data, stem, node, n_train=n_train, n_test=n_test, n_unlabeled=n_unlabeled
            )
        extra.append(f"dataset.name={data}")
    if stem == "ag_news":  # text: generated sentences in AG News' columns and classes
        data = folder / stem
        if not data.exists():
            write_ag_news_standin(data)
        extra.append(f"dataset.name={data}")
    if choices["model"] == "hf" and not _weights_here(cfg.model):
        kind = "bert" if cfg.dataset.get("modality") == "text" or stem == "ag_news" else "vit"
        net = folder / f"{kind}-standin"
        if not net.exists():
            (write_bert_standin if kind == "bert" else write_vit_standin)(net)
        extra.append(f"model.path={net}")
    if choices["regime"] == "label_file":
        labels = folder / "CIFAR-10_human.pt"
        if not labels.exists():
            write_cifar10n_standin(labels, n_train)
        extra.append(f"regime.path={labels}")
    return [*overrides, *extra]


def write_ag_news_standin(folder: str | Path, per_class: int = 30, test_per_class: int = 5) -> Path:
    """AG News' columns, class names and splits (text, label: World, Sports, Business,
    Sci/Tech; train, test), with generated sentences."""
    import datasets

    words = ["market", "team", "game", "stocks", "rocket", "league", "election", "orbit"]
    rng = np.random.default_rng(0)
    names = ["World", "Sports", "Business", "Sci/Tech"]

    def split(n: int) -> datasets.Dataset:
        labels = [i % 4 for i in range(4 * n)]
        texts = [" ".join(rng.choice(words, size=int(rng.integers(4, 20)))) for _ in labels]
        features = datasets.Features(
            {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}
        )
        return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)

    datasets.disable_progress_bars()
    datasets.DatasetDict({"train": split(per_class), "test": split(test_per_class)}).save_to_disk(
        str(folder)
    )
    return folder


def write_bert_standin(folder: str | Path) -> Path:
    """A tiny random BERT in save_pretrained layout with the packaged MiniLM's (BERT's
    uncased WordPiece) tokenizer files, so the preset's tokenizer (model.path) is its own."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=512,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    from labelbench.data.encoders import packaged_minilm_path

    minilm = packaged_minilm_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)
    return folder


def write_vit_standin(folder: str | Path) -> Path:
    """A tiny random ViT in save_pretrained layout with USB's patch size and input size, and
    USB's CIFAR-100 normalisation in preprocessor_config.json."""
    import json

    import torch
    from transformers import ViTConfig, ViTModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=2, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, qkv_bias=True, layer_norm_eps=1e-6,
    )  # fmt: skip
    ViTModel(config).save_pretrained(folder)
    stats = {
        "image_mean": [v / 255 for v in (129.3, 124.1, 112.4)],
        "image_std": [v / 255 for v in (68.2, 65.4, 70.4)],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(stats))
    return folder


def _weights_here(model: Any) -> bool:
    """Whether a model=hf node's weights can be had here (a folder, the packaged MiniLM,
    the HF cache); random-init networks need none."""
    from labelbench.config import ConfigError
    from labelbench.models.hf import model_folder

    if not model.get("pretrained", True):
        return True
    try:
        model_folder(str(model.path))
    except ConfigError:
        return False
    return True


def write_image_folder(
    root: str | Path,
    classes: int | list[str] | tuple[str, ...] = 3,
    per_class: int = 20,
    size: tuple[int, int] = (16, 16),
    unlabeled: int = 0,
    fmt: str = "png",
    seed: int = 0,
    corrupt: int = 0,
    truncated: int = 0,
) -> tuple[Path, Path | None, list[Path]]:
    """Write a small image dataset in the class-folder layout (`dataset=folder`): under
    `root`, one sub-folder per class holding `per_class` images of `size` (height, width).
    Each class is learnable: its own colour and stripe direction, under pixel noise.

    `unlabeled` images (of random classes) go to a folder `unlabeled` beside `root`;
    `corrupt` files of non-image bytes and `truncated` images cut in the middle of their
    pixel data (their headers intact) are added to the class folders, named `corrupt_*` and
    `truncated_*`. Returns (root, the unlabeled folder or None, the bad files)."""
    from PIL import Image

    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt={fmt!r} must be png or jpeg")
    names = [f"class_{k}" for k in range(classes)] if isinstance(classes, int) else list(classes)
    rng = np.random.default_rng(seed)
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width]
    ext = ".jpg" if fmt == "jpeg" else ".png"

    def image(k: int) -> np.ndarray:
        hue = 2 * np.pi * k / len(names)
        colour = 127.5 + 100 * np.cos(hue + np.array([0.0, 2.1, 4.2]))
        stripes = np.sin(2 * np.pi * (rows * np.cos(hue) + cols * np.sin(hue)) / 4)
        pixels = colour + 40 * stripes[..., None] + rng.normal(0, 20, (height, width, 3))
        return np.clip(pixels, 0, 255).astype(np.uint8)

    def save(pixels: np.ndarray, path: Path) -> Path:
        Image.fromarray(pixels).save(path, format=fmt.upper())
        return path

    root = Path(root)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            save(image(k), root / name / f"{i:04d}{ext}")
    folder = None
    if unlabeled:
        folder = root.parent / "unlabeled"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(unlabeled):
            save(image(int(rng.integers(len(names)))), folder / f"{i:04d}{ext}")
    bad = []
    for i in range(corrupt):
        path = root / names[i % len(names)] / f"corrupt_{i}{ext}"
        path.write_bytes(b"this is not an image\n" * 4)
        bad.append(path)
    for i in range(truncated):
        k = i % len(names)
        path = save(image(k), root / names[k] / f"truncated_{i}{ext}")
        data = path.read_bytes()
        # Cut inside the pixel data (after PNG's first IDAT chunk header, JPEG's start of
        # scan), so the header still opens and only decoding fails.
        start = data.index(b"IDAT") + 8 if fmt == "png" else data.index(b"\xff\xda") + 2
        path.write_bytes(data[: start + (len(data) - start) // 2])
        bad.append(path)
    return root, folder, bad
