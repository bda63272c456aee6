"""Hugging Face image datasets read in place (labelbench.data.hub: ArrowImageReader,
ArrowArrayReader) and unlabeled-only rows (ClassLabel -1, `unlabeled_split`), on small
`save_to_disk` datasets written here."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from labelbench.config import ConfigError
from labelbench.data.hub import ArrowArrayReader, ArrowImageReader, Hub, sample_rows
from labelbench.data.lazy import LazyInputs, Streaming, UnreadableItem
from labelbench.data.task import NO_LABEL

datasets = pytest.importorskip("datasets")
PIL = pytest.importorskip("PIL.Image")
datasets.disable_progress_bars()

CLASSES = ["cat", "dog", "frog"]
H, W = 10, 12  # not square: a swapped height and width shows
N_TRAIN, N_TEST, N_UNLABELED = 30, 12, 18
NO_LABEL_TRAIN_ROWS = (4, 11)  # ClassLabel -1 inside the training split


def _pixels(n: int, seed: int, shape: tuple[int, ...] = (H, W, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _split(pixels, labels, mode: str | None = None, column: str = "image", with_label=True):
    features = {column: datasets.Image()}
    data = {column: [PIL.fromarray(p, mode) if mode else PIL.fromarray(p) for p in pixels]}
    if with_label:
        features["label"] = datasets.ClassLabel(names=CLASSES)
        data["label"] = list(labels)
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def _train_labels(n: int) -> list[int]:
    labels = [i % len(CLASSES) for i in range(n)]
    for r in NO_LABEL_TRAIN_ROWS:
        labels[r] = -1
    return labels


@pytest.fixture(scope="module")
def three_splits(tmp_path_factory):
    """train (30 rows, two labelled -1), test (12), unlabeled (18, all -1): RGB 10x12."""
    folder = tmp_path_factory.mktemp("lazy") / "three"
    datasets.DatasetDict(
        train=_split(_pixels(N_TRAIN, 0), _train_labels(N_TRAIN)),
        test=_split(_pixels(N_TEST, 1), [i % 3 for i in range(N_TEST)]),
        unlabeled=_split(_pixels(N_UNLABELED, 2), [-1] * N_UNLABELED),
    ).save_to_disk(str(folder))
    return folder


def _three(folder, **kwargs) -> Hub:
    return Hub(
        str(folder), input_column="image", test_split="test", unlabeled_split="unlabeled",
        **kwargs,
    )  # fmt: skip


def _eager(folder, splits, column="image") -> np.ndarray:
    """The previous decoding of an Image column: `datasets` decodes the whole column, one
    float32 array, uint8 / 255, channels first."""
    saved = datasets.load_from_disk(str(folder))
    parts = []
    for s in splits:
        table = saved[s]
        chunk = np.asarray(table.with_format("numpy")[0 : len(table)][column])
        parts.append(chunk.astype(np.float32) / np.float32(255.0))
    x = np.concatenate(parts)
    return x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _workers(x: LazyInputs, n: int = 2) -> LazyInputs:
    return LazyInputs(x.reader, x.rows, Streaming(workers=n))


# --- images stay on disk and decode as before -------------------------------------------------


def test_images_are_lazy_and_decode_exactly_as_the_eager_column(three_splits):
    src = _three(three_splits)
    x, _, classes, shape = src.arrays()
    assert isinstance(x, LazyInputs) and isinstance(x.reader, ArrowImageReader)
    n = N_TRAIN + N_TEST + N_UNLABELED
    assert shape == (3, H, W) and x.shape == (n, 3, H, W) and src.modality == "image"
    assert classes == tuple(CLASSES)
    expected = _eager(three_splits, ["train", "test", "unlabeled"])
    got = np.asarray(x)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    # channels first: row 5, channel 2, pixel (3, 4) of the training split
    assert x[5][2, 3, 4] == np.float32(_pixels(N_TRAIN, 0)[5, 3, 4, 2]) / np.float32(255)
    assert x.reader.read(0).dtype == np.uint8 and x.value_range() == (0.0, 1.0)
    assert x.reader.where(N_TRAIN + 2) == f"{three_splits} split 'test' row 2"


def test_unlabeled_rows_and_minus_one_labels_are_unlabeled_only(three_splits):
    src = _three(three_splits)
    task = src.load(0)
    n_labelled = N_TRAIN + N_TEST
    expected_unlabeled = [*NO_LABEL_TRAIN_ROWS, *range(n_labelled, n_labelled + N_UNLABELED)]
    assert task.split.unlabeled.tolist() == expected_unlabeled
    assert (task.y[expected_unlabeled] == NO_LABEL).all()
    assert (np.delete(task.y, expected_unlabeled) >= 0).all()
    # the dataset's own test split, rows 30..41, whatever the seed; no unlabeled row elsewhere
    np.testing.assert_array_equal(src.test_indices(), np.arange(N_TRAIN, n_labelled))
    for seed in (0, 1):
        split = src.load(seed).split
        np.testing.assert_array_equal(split.test, np.arange(N_TRAIN, n_labelled))
        assert len(split.pool) + len(split.val) == N_TRAIN - len(NO_LABEL_TRAIN_ROWS)
        used = np.concatenate([split.pool, split.val, split.test])
        assert not np.isin(split.unlabeled, used).any()
    labels = np.asarray(_train_labels(N_TRAIN))
    keep = labels >= 0
    np.testing.assert_array_equal(task.y[:N_TRAIN][keep], labels[keep])


def test_unlabeled_split_ignores_its_labels_and_may_lack_the_column(tmp_path):
    folder = tmp_path / "nolabel"
    datasets.DatasetDict(
        train=_split(_pixels(9, 0), [0, 1, 2] * 3),
        extra=_split(_pixels(5, 1), None, with_label=False),  # no label column at all
        labelled_extra=_split(_pixels(4, 2), [0, 1, 2, 0]),  # real labels: ignored
    ).save_to_disk(str(folder))
    for name, n in (("extra", 5), ("labelled_extra", 4)):
        task = Hub(str(folder), "image", unlabeled_split=name).load(0)
        assert task.split.unlabeled.tolist() == list(range(9, 9 + n))
        assert len(task.x) == 9 + n


def test_labels_that_mean_no_label_and_those_refused(tmp_path):
    folder = tmp_path / "refused"
    datasets.DatasetDict(
        train=_split(_pixels(6, 0), [0, 1, 2, 0, 1, 2]),
        test=_split(_pixels(4, 1), [0, -1, 2, 1]),
        all_missing=_split(_pixels(3, 2), [-1, -1, -1]),
    ).save_to_disk(str(folder))
    with pytest.raises(ConfigError, match=r"test_split='test' of .* has 1 items without a label"):
        Hub(str(folder), "image", test_split="test").arrays()
    with pytest.raises(ConfigError, match=r"^split='all_missing' of .* has no labelled items"):
        Hub(str(folder), "image", split="all_missing").arrays()
    # a label column that is not a ClassLabel: a missing value is refused, -1 is a class
    plain = tmp_path / "plain"
    datasets.Dataset.from_dict(
        {"x": [[0.0, 1.0]] * 4, "label": ["a", None, "b", "a"]}
    ).save_to_disk(str(plain))
    with pytest.raises(ConfigError, match=r"label_column='label' of .* has missing values"):
        Hub(str(plain), "x").arrays()
    ints = tmp_path / "ints"
    datasets.Dataset.from_dict({"x": [[0.0]] * 4, "label": [-1, 0, -1, 0]}).save_to_disk(str(ints))
    _, y, classes, _ = Hub(str(ints), "x").arrays()
    assert classes == ("-1", "0") and (y >= 0).all()


def test_unlabeled_split_must_differ_from_the_others():
    with pytest.raises(ConfigError, match=r"^unlabeled_split='train' is the training split"):
        Hub("a/b", "x", unlabeled_split="train")
    with pytest.raises(ConfigError, match=r"^unlabeled_split='test' is test_split itself"):
        Hub("a/b", "x", test_split="test", unlabeled_split="test")


def test_single_saved_split_refuses_an_unlabeled_split(tmp_path):
    _split(_pixels(6, 0), [0, 1, 2] * 2).save_to_disk(str(tmp_path / "one"))
    with pytest.raises(ConfigError, match=r"^unlabeled_split='u': .* holds a single split"):
        Hub(str(tmp_path / "one"), "image", unlabeled_split="u").arrays()


# --- reading through workers, pickling -----------------------------------------------------------


def test_batches_through_dataloader_workers(three_splits):
    x, *_ = _three(three_splits).arrays()
    import torch

    batches = list(_workers(x).batches(7))
    assert [len(b) for b in batches] == [7] * 8 + [4]
    np.testing.assert_array_equal(torch.cat(batches).numpy(), np.asarray(x))
    rows = np.array([40, 3, 55, 3])
    view = _workers(x[rows])
    np.testing.assert_array_equal(torch.cat(list(view.batches(3))).numpy(), np.asarray(x)[rows])


def test_the_reader_pickles_by_file_reference(three_splits):
    x, *_ = _three(three_splits).arrays()
    blob = pickle.dumps(x.reader)
    assert len(blob) < 8192  # file paths and column selections, not the rows' bytes
    again = pickle.loads(blob)
    for i in (0, N_TRAIN, len(x) - 1):
        np.testing.assert_array_equal(again.read(i), x.reader.read(i))
    assert again.fingerprint() == x.reader.fingerprint()


# --- bad rows ----------------------------------------------------------------------------------


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _with_bad_rows(folder, n: int, bad: dict[int, bytes]):
    pixels = _pixels(n, 3)
    images = [{"bytes": bad.get(i, _png(p)), "path": None} for i, p in enumerate(pixels)]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}
    )
    data = {"image": images, "label": [i % 3 for i in range(n)]}
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(folder))
    return folder


def test_a_corrupt_or_odd_sized_row_is_unreadable_when_read(tmp_path):
    n = 80
    unsampled = sorted(set(range(n)) - set(sample_rows(n).tolist()))
    corrupt, odd = unsampled[0], unsampled[1]
    folder = _with_bad_rows(
        tmp_path / "bad", n, {corrupt: b"not an image", odd: _png(_pixels(1, 9, (7, 5, 3))[0])}
    )
    task = Hub(str(folder), "image").load(0)  # the sampled rows are fine
    with pytest.raises(UnreadableItem, match=rf"split 'train' row {corrupt}: the image does not"):
        task.x[corrupt]
    with pytest.raises(UnreadableItem) as info:
        task.x[odd]
    assert f"split 'train' row {odd}: 'image' is 7x5, 3 channels" in str(info.value)
    assert f"the dataset's items are {H}x{W}, 3 channels" in str(info.value)
    fine = sample_rows(n)[:2]
    assert np.asarray(task.x[fine]).shape == (2, 3, H, W)


@pytest.mark.slow
def test_a_corrupt_row_read_by_a_worker_is_the_same_one_line(tmp_path):
    """Slow: after a worker's error torch waits ~5 s per worker to shut them down."""
    n = 80
    corrupt = sorted(set(range(n)) - set(sample_rows(n).tolist()))[0]
    task = Hub(str(_with_bad_rows(tmp_path / "bad", n, {corrupt: b"not an image"})), "image").load(
        0
    )
    with pytest.raises(UnreadableItem) as info:
        list(_workers(task.x, 1).batches(16))
    assert f"split 'train' row {corrupt}: the image does not decode" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_row_among_the_sampled_ones_fails_the_load(tmp_path):
    folder = _with_bad_rows(tmp_path / "bad0", 20, {0: b"\x89PNG broken"})
    with pytest.raises(ConfigError, match=r"^input_column='image': .* row 0: the image does not"):
        Hub(str(folder), "image").arrays()
    folder = _with_bad_rows(tmp_path / "odd", 20, {19: _png(_pixels(1, 9, (7, 5, 3))[0])})
    with pytest.raises(ConfigError) as info:
        Hub(str(folder), "image").arrays()
    assert "items differ in size" in str(info.value) and "row 19 is 7x5" in str(info.value)


# --- modes --------------------------------------------------------------------------------------


def test_grey_images_get_one_channel(tmp_path):
    folder = tmp_path / "grey"
    pixels = _pixels(12, 4, (9, 7))
    datasets.DatasetDict(train=_split(pixels, [i % 3 for i in range(12)])).save_to_disk(str(folder))
    x, _, _, shape = Hub(str(folder), "image").arrays()
    assert shape == (1, 9, 7) and x.reader.mode == "L"
    np.testing.assert_array_equal(np.asarray(x), _eager(folder, ["train"]))
    np.testing.assert_array_equal(x.reader.read(3)[0], pixels[3])


def test_rgba_and_mixed_modes_become_rgb(tmp_path):
    rgba = _pixels(6, 5, (H, W, 4))
    grey = _pixels(6, 6, (H, W))
    folder = tmp_path / "modes"
    datasets.DatasetDict(
        train=datasets.concatenate_datasets(
            [_split(rgba, [0, 1, 2] * 2, mode="RGBA"), _split(grey, [0, 1, 2] * 2)]
        )
    ).save_to_disk(str(folder))
    x, _, _, shape = Hub(str(folder), "image").arrays()
    assert shape == (3, H, W) and x.reader.mode == "RGB"
    np.testing.assert_array_equal(x.reader.read(2), rgba[2, :, :, :3].transpose(2, 0, 1))
    np.testing.assert_array_equal(x.reader.read(8), np.repeat(grey[2][None], 3, axis=0))


# --- array columns ---------------------------------------------------------------------------------


def test_array_columns_of_images_are_lazy_too(tmp_path):
    chw = _pixels(10, 7, (3, 6, 5))
    folder = tmp_path / "arrays"
    datasets.Dataset.from_dict(
        {"px": chw.tolist(), "label": [i % 2 for i in range(10)]},
        features=datasets.Features(
            {"px": datasets.Array3D((3, 6, 5), "uint8"), "label": datasets.Value("int64")}
        ),
    ).save_to_disk(str(folder))
    x, _, _, shape = Hub(str(folder), "px", modality="image").arrays()
    assert isinstance(x.reader, ArrowArrayReader) and shape == (3, 6, 5)
    assert x.reader.dtype == np.uint8  # scaled to [0, 1] where used
    np.testing.assert_array_equal(np.asarray(x), chw.astype(np.float32) / np.float32(255))

    hw = np.random.default_rng(8).normal(size=(40, 6, 5)).astype(np.float32)
    unsampled = sorted(set(range(40)) - set(sample_rows(40).tolist()))[0]
    hw[unsampled, 2, 2] = np.nan
    folder = tmp_path / "floats"
    datasets.Dataset.from_dict(
        {"px": hw.tolist(), "label": [i % 2 for i in range(40)]}
    ).save_to_disk(str(folder))
    x, _, _, shape = Hub(str(folder), "px", modality="image").arrays()
    assert shape == (1, 6, 5) and x.reader.dtype == np.float32  # values as they are
    np.testing.assert_array_equal(x[0], hw[0][None])
    with pytest.raises(UnreadableItem, match=rf"row {unsampled}: 'px' has non-finite values"):
        x[unsampled]


def test_array_columns_of_the_wrong_rank_are_one_line(tmp_path):
    datasets.Dataset.from_dict({"px": [[0.5] * 8] * 6, "label": [0, 1] * 3}).save_to_disk(
        str(tmp_path / "flat")
    )
    with pytest.raises(ConfigError, match=r"holds arrays of shape \(8,\); images are"):
        Hub(str(tmp_path / "flat"), "px", modality="image").arrays()


# --- fingerprints and the encoder path ---------------------------------------------------------------


def test_fingerprint_follows_the_data_columns_and_splits(three_splits, tmp_path):
    first = _three(three_splits).arrays()[0].reader.fingerprint()
    assert _three(three_splits).arrays()[0].reader.fingerprint() == first
    no_unlabeled = Hub(str(three_splits), "image", test_split="test").arrays()[0]
    assert no_unlabeled.reader.fingerprint() != first
    other = tmp_path / "other"
    datasets.DatasetDict(
        train=_split(_pixels(N_TRAIN, 10), _train_labels(N_TRAIN)),
        test=_split(_pixels(N_TEST, 1), [i % 3 for i in range(N_TEST)]),
        unlabeled=_split(_pixels(N_UNLABELED, 2), [-1] * N_UNLABELED),
    ).save_to_disk(str(other))
    assert _three(other).arrays()[0].reader.fingerprint() != first


class _Recorder:
    """A duck-typed image encoder that records the sizes of what it is handed."""

    name = "recorder"
    batch_size = 16

    def __init__(self) -> None:
        self.seen: list[int] = []

    def accepts(self, modality: str) -> bool:
        return modality == "image"

    def fingerprint(self) -> str:
        return "recorder-v1"

    def encode(self, items):
        self.seen.append(len(items))
        return np.asarray(items, dtype=np.float32).reshape(len(items), -1)[:, :4]


def test_the_image_encoder_gets_the_lazy_inputs_in_batches(three_splits, tmp_path):
    """The frozen-encoder path hands the embedding cache the LazyInputs, which encodes it
    `batch_size` rows at a time: the decoded images never exist all at once."""
    encoder = _Recorder()
    src = _three(three_splits, encoder=encoder, cache_dir=str(tmp_path / "emb"))
    x, _, _, shape = src.arrays()
    assert encoder.seen == [16, 16, 16, 12]  # 60 rows, never all of them at once
    assert shape == (4,) and src.modality == "vector"
    expected = _eager(three_splits, ["train", "test", "unlabeled"]).reshape(len(x), -1)[:, :4]
    np.testing.assert_array_equal(x, expected)
    again = _three(three_splits, encoder=encoder, cache_dir=str(tmp_path / "emb")).arrays()[0]
    assert len(encoder.seen) == 4 and np.array_equal(again, x)  # read back from the cache


# --- the stl10 preset on a stand-in of its shape ---------------------------------------------------


def test_stl10_preset_reads_its_three_splits(compose_fast, tmp_path):
    from hydra.utils import instantiate

    folder = tmp_path / "stl10"
    classes = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)}
    )

    def split(n, seed, labels):
        images = [PIL.fromarray(p) for p in _pixels(n, seed, (96, 96, 3))]
        return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)

    datasets.DatasetDict(
        train=split(20, 0, [i % 10 for i in range(20)]),
        test=split(10, 1, list(range(10))),
        unlabeled=split(7, 2, [-1] * 7),
    ).save_to_disk(str(folder))
    cfg, _ = compose_fast("dataset=stl10", f"dataset.name={folder}", fast=False)
    assert cfg.dataset.unlabeled_split == "unlabeled" and cfg.dataset.flip is True
    task = instantiate(cfg.dataset).load(0)
    assert task.input_shape == (3, 96, 96) and task.flip_invariant is True
    assert task.classes == tuple(classes)
    np.testing.assert_array_equal(task.split.test, np.arange(20, 30))
    np.testing.assert_array_equal(task.split.unlabeled, np.arange(30, 37))


# --- memory -------------------------------------------------------------------------------------------

PEAK = """
import json, pickle, resource, sys, time
import datasets
from labelbench.data.hub import Hub
datasets.disable_progress_bars()
Hub(sys.argv[2], "image").load(0)  # imports and a first map, outside the measurement
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
task = Hub(sys.argv[1], "image").load(0)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": after - before, "decoded_bytes": task.x.nbytes,
                  "seconds": seconds, "pickled": len(pickle.dumps(task.x.reader))}))
"""


def test_loading_twenty_thousand_images_does_not_decode_them(tmp_path):
    """The peak memory of `load` over 20,000 32x32 images (234 MiB decoded as float32)
    stays a small fraction of it; measured in a fresh process (ru_maxrss is a peak)."""
    rng = np.random.default_rng(0)
    # Few distinct, compressible images: a small file, so that mapped pages stay small too.
    tiles = [_png(np.repeat(rng.integers(0, 256, (32, 1, 3), dtype=np.uint8), 32, 1)) for _ in range(16)]  # fmt: skip
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)}
    )
    n = 20_000
    data = {
        "image": [{"bytes": tiles[i % 16], "path": None} for i in range(n)],
        "label": [i % 3 for i in range(n)],
    }
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(tmp_path / "big"))
    datasets.Dataset.from_dict(
        {"image": data["image"][:6], "label": data["label"][:6]}, features=features
    ).save_to_disk(str(tmp_path / "small"))
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, str(tmp_path / "big"), str(tmp_path / "small")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["decoded_bytes"] == n * 3 * 32 * 32 * 4
    assert out["peak_kib"] * 1024 < out["decoded_bytes"] / 10, out
    assert out["pickled"] < 8192, out  # the reader of 20,000 rows pickles as small as one of 60
