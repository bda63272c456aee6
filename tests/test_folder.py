"""dataset=folder: image files read lazily, from class folders or an index, on real files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from labelbench.config import ConfigError
from labelbench.data.folder import Folder, FolderReader
from labelbench.data.lazy import LazyInputs, Streaming, UnreadableItem
from labelbench.data.standin import write_image_folder
from labelbench.data.task import NO_LABEL


def decoded(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """The file as float32 (C, H, W) in [0, 1], decoded directly with Pillow."""
    a = np.asarray(Image.open(path).convert(mode))
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return a.astype(np.float32) / np.float32(255)


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "path,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{p},{label}\n" for p, label in rows))
    return path


@pytest.fixture
def data(tmp_path):
    """3 classes x 8 PNG images of 16x16 under tmp_path/data."""
    root, _, _ = write_image_folder(tmp_path / "data", classes=3, per_class=8)
    return root


# --- loading -----------------------------------------------------------------------------


def test_class_folders_load_lazily_in_class_order(data):
    source = Folder(root=str(data))
    x, y, classes, shape = source.arrays()
    assert isinstance(x, LazyInputs) and isinstance(x.reader, FolderReader)
    assert classes == ("class_0", "class_1", "class_2")
    assert shape == (3, 16, 16) and x.shape == (24, 3, 16, 16)
    np.testing.assert_array_equal(y, np.repeat([0, 1, 2], 8))
    assert x.reader.where(8) == str(data / "class_1" / "0000.png")
    assert source.name == "data" and source.modality == "image"
    assert source.test_indices() is None


def test_values_equal_a_direct_pil_decode(data):
    x, *_ = Folder(root=str(data)).arrays()
    for i in (0, 9, 23):
        item = x[i]
        assert item.dtype == np.float32
        np.testing.assert_array_equal(item, decoded(x.reader.where(i)))
    assert x.reader.read(9).dtype == np.uint8


def test_views_and_asarray_read_the_same_values(data):
    x, *_ = Folder(root=str(data)).arrays()
    view = x[np.array([3, 0, 17])]
    assert isinstance(view, LazyInputs) and view.shape == (3, 3, 16, 16)
    np.testing.assert_array_equal(np.asarray(view), np.stack([x[3], x[0], x[17]]))
    assert x[2:5].shape == (3, 3, 16, 16)
    whole = np.asarray(x)
    assert whole.dtype == np.float32 and whole.shape == (24, 3, 16, 16)
    np.testing.assert_array_equal(whole[17], x[17])
    assert whole.min() >= 0 and whole.max() <= 1


def test_index_csv_with_unlabeled_rows(data, tmp_path):
    files = [data / "class_0" / "0000.png", data / "class_2" / "0001.png", data / "class_1" / "0003.png"]  # fmt: skip
    rows = [(os.path.relpath(files[0], tmp_path), "cat"), (str(files[1]), ""), (os.path.relpath(files[2], tmp_path), "dog")]  # fmt: skip
    index = write_csv(tmp_path / "pets.csv", rows)
    source = Folder(index=str(index), root=None)
    x, y, classes, _ = source.arrays()
    assert classes == ("cat", "dog") and source.name == "pets"
    np.testing.assert_array_equal(y, [0, NO_LABEL, 1])
    for i, f in enumerate(files):
        np.testing.assert_array_equal(x[i], decoded(f))


def test_index_parquet_with_null_labels_named_columns_and_root(data, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["class_0/0000.png", "class_1/0000.png", "class_2/0000.png", "class_0/0001.png"]
    table = pa.table({"file": names, "y": pa.array([10, 2, None, 10], type=pa.int64())})
    pq.write_table(table, tmp_path / "idx.parquet")
    source = Folder(root=str(data), index=str(tmp_path / "idx.parquet"), path_column="file", label_column="y")  # fmt: skip
    x, y, classes, _ = source.arrays()
    assert classes == ("2", "10")  # numeric labels sort as numbers
    np.testing.assert_array_equal(y, [1, 0, NO_LABEL, 1])
    np.testing.assert_array_equal(x[2], decoded(data / "class_2" / "0000.png"))
    assert source.name == "idx"


def test_unlabeled_folder_items_come_last(tmp_path):
    root, unlabeled, _ = write_image_folder(tmp_path / "data", classes=2, per_class=5, unlabeled=4)
    x, y, classes, _ = Folder(root=str(root), unlabeled=str(unlabeled)).arrays()
    assert len(x) == 14 and classes == ("class_0", "class_1")
    np.testing.assert_array_equal(y[10:], [NO_LABEL] * 4)
    assert (y[:10] != NO_LABEL).all()
    assert x.reader.where(13) == str(unlabeled / "0003.png")
    np.testing.assert_array_equal(x[13], decoded(unlabeled / "0003.png"))


def test_unlabeled_and_hidden_folders_inside_root_are_not_classes(data):
    save(data / ".thumbnails" / "a.png", np.zeros((16, 16, 3), np.uint8))
    save(data / "extra" / "a.png", np.zeros((16, 16, 3), np.uint8))
    x, y, classes, _ = Folder(root=str(data), unlabeled=str(data / "extra")).arrays()
    assert classes == ("class_0", "class_1", "class_2")
    assert len(x) == 25 and y[-1] == NO_LABEL


def test_fixed_test_folder_is_the_test_split_for_every_seed(data, tmp_path):
    test_root, _, _ = write_image_folder(tmp_path / "test", classes=3, per_class=4, seed=1)
    source = Folder(root=str(data), test_root=str(test_root))
    _, y, _, _ = source.arrays()
    np.testing.assert_array_equal(source.test_indices(), np.arange(24, 36))
    np.testing.assert_array_equal(y[24:], np.repeat([0, 1, 2], 4))
    for seed in (0, 1):
        task = source.load(seed)
        np.testing.assert_array_equal(task.split.test, np.arange(24, 36))
        assert len(task.split.pool) + len(task.split.val) == 24


def test_fixed_test_index(data, tmp_path):
    index = write_csv(tmp_path / "test.csv", [("class_1/0000.png", "class_1"), ("class_0/0002.png", "class_0")])  # fmt: skip
    source = Folder(root=str(data), test_index=str(index))
    _, y, _, _ = source.arrays()
    np.testing.assert_array_equal(source.test_indices(), [24, 25])
    np.testing.assert_array_equal(y[24:], [1, 0])


# --- decoding ----------------------------------------------------------------------------


@pytest.fixture
def wide(tmp_path):
    """Two classes of 20x10 (width x height) images: red left and right quarters, green middle."""
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :5, 0] = pixels[:, 15:, 0] = 255
    pixels[:, 5:15, 1] = 255
    for c in ("a", "b"):
        for i in range(3):
            save(tmp_path / "wide" / c / f"{i}.png", pixels)
    return tmp_path / "wide"


def test_size_and_resize_give_the_asked_shapes(wide):
    for size, shape in ((8, (3, 8, 8)), ([6, 12], (3, 6, 12)), (None, (3, 10, 20))):
        for resize in ("stretch", "center_crop"):
            x, *_ = Folder(root=str(wide), size=size, resize=resize).arrays()
            assert x.shape[1:] == shape and x[0].shape == shape


def test_center_crop_keeps_the_centre_and_stretch_uses_bilinear(wide):
    x, *_ = Folder(root=str(wide), size=10, resize="center_crop").arrays()
    crop = x[0]
    np.testing.assert_array_equal(crop[1], np.ones((10, 10), np.float32))  # all green
    np.testing.assert_array_equal(crop[0], np.zeros((10, 10), np.float32))  # no red
    x, *_ = Folder(root=str(wide), size=10, resize="stretch").arrays()
    with Image.open(x.reader.where(0)) as image:
        expected = np.asarray(image.convert("RGB").resize((10, 10), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(x.reader.read(0), expected.transpose(2, 0, 1))
    assert x[0][0, :, 0].max() == 1.0  # the red edges are still there


def test_grey_channels(data):
    x, _, _, shape = Folder(root=str(data), channels=1).arrays()
    assert shape == (1, 16, 16)
    np.testing.assert_array_equal(x[4], decoded(x.reader.where(4), mode="L"))


def test_loading_keeps_truncated_images_failing():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_reader_pickles_for_workers(data):
    x, *_ = Folder(root=str(data)).arrays()
    copy = pickle.loads(pickle.dumps(x.reader))
    assert copy.rel.dtype.kind == "S"
    np.testing.assert_array_equal(copy.read(5), x.reader.read(5))


def test_fingerprint_follows_files_and_settings(data):
    reader = Folder(root=str(data)).arrays()[0].reader
    before = reader.fingerprint()
    assert Folder(root=str(data)).arrays()[0].reader.fingerprint() == before
    assert Folder(root=str(data), size=8).arrays()[0].reader.fingerprint() != before
    target = data / "class_2" / "0005.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert reader.fingerprint() != before  # a newer file
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert reader.fingerprint() == before
    target.write_bytes(target.read_bytes() + b"\0")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert reader.fingerprint() != before  # another size, same time


# --- loading a task ------------------------------------------------------------------------


def test_load_puts_exactly_the_unlabeled_only_items_in_split_unlabeled(tmp_path):
    root, unlabeled, _ = write_image_folder(tmp_path / "data", classes=2, per_class=10, unlabeled=3)
    rows = [(f"class_{i % 2}/{i:04d}.png", "" if i % 4 == 3 else f"class_{i % 2}") for i in range(10)]  # fmt: skip
    index = write_csv(tmp_path / "data.csv", rows)
    source = Folder(root=str(root), index=str(index), unlabeled=str(unlabeled))
    task = source.load(split_seed=0)
    expected = np.array([3, 7, 10, 11, 12])
    np.testing.assert_array_equal(task.split.unlabeled, expected)
    np.testing.assert_array_equal(np.flatnonzero(task.y == NO_LABEL), expected)
    rest = np.concatenate([task.split.pool, task.split.val, task.split.test])
    assert not set(rest) & set(expected) and len(rest) == 8
    assert isinstance(task.x, LazyInputs) and task.modality == "image"
    assert task.input_shape == (3, 16, 16) and task.flip_invariant is False


def test_compose_and_instantiate(data):
    import hydra.utils

    from labelbench.run import compose

    cfg, choices = compose(["dataset=folder", f"dataset.root={data}", "dataset.flip=true"])
    assert choices["dataset"] == "folder"
    source = hydra.utils.instantiate(cfg.dataset)
    assert isinstance(source, Folder) and source.flip_invariant
    task = source.load(0)
    assert task.num_classes == 3 and len(task.x) == 24


def test_standin_images_are_learnable(tmp_path):
    from sklearn.linear_model import LogisticRegression

    root, _, _ = write_image_folder(tmp_path / "data", classes=4, per_class=30, size=(12, 12))
    task = Folder(root=str(root)).load(0)
    x = np.asarray(task.x).reshape(len(task.x), -1)
    train = np.concatenate([task.split.pool, task.split.val])
    model = LogisticRegression(max_iter=500).fit(x[train], task.y[train])
    assert model.score(x[task.split.test], task.y[task.split.test]) > 0.9


# --- bad input ---------------------------------------------------------------------------


def refused(match: str, *texts: object, **kwargs) -> str:
    """Folder(**kwargs).arrays() raises one ConfigError line that matches and names texts."""
    with pytest.raises(ConfigError, match=match) as info:
        Folder(**kwargs).arrays()
    message = str(info.value)
    assert "\n" not in message
    for text in texts:
        assert str(text) in message
    return message


def test_missing_folders_and_files(data, tmp_path):
    gone = tmp_path / "gone"
    refused("does not exist", f"root={gone}", root=str(gone))
    refused("does not exist", f"index={gone}.csv", index=f"{gone}.csv")
    refused("does not exist", f"unlabeled={gone}", root=str(data), unlabeled=str(gone))
    refused("does not exist", f"test_root={gone}", root=str(data), test_root=str(gone))
    refused("does not exist", f"test_index={gone}.csv", root=str(data), test_index=f"{gone}.csv")


def test_root_without_class_folders(tmp_path):
    save(tmp_path / "flat" / "a.png", np.zeros((4, 4, 3), np.uint8))
    refused("no class folders", tmp_path / "flat", "dataset.index", root=str(tmp_path / "flat"))


def test_empty_class_folder(data):
    (data / "class_9" / "sub").mkdir(parents=True)
    (data / "class_9" / "notes.txt").write_text("not an image")
    refused("has no image files", "'class_9'", data / "class_9", root=str(data))


def test_index_row_with_missing_file(data, tmp_path):
    index = write_csv(tmp_path / "i.csv", [("class_0/0000.png", "a"), ("class_0/nope.png", "b")])
    refused("does not exist", "row 2", data / "class_0" / "nope.png", root=str(data), index=str(index))  # fmt: skip


def test_index_without_its_columns(data, tmp_path):
    index = write_csv(tmp_path / "i.csv", [("class_0/0000.png", "a")], header="file,label")
    refused("path_column='path' is not a column", index, "file", index=str(index), root=str(data))
    refused("label_column='y' is not a column", index, index=str(index), root=str(data), path_column="file", label_column="y")  # fmt: skip


@pytest.mark.parametrize("check", ["header", "full"])
def test_corrupt_file(tmp_path, check):
    root, _, bad = write_image_folder(tmp_path / "data", classes=2, per_class=3, corrupt=1)
    refused("cannot (open|decode) it", bad[0], root=str(root), check=check)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_truncated_file_is_refused_by_a_full_check(tmp_path, fmt):
    root, _, bad = write_image_folder(tmp_path / "data", classes=2, per_class=3, truncated=1, fmt=fmt)  # fmt: skip
    refused("cannot decode it .*truncated", bad[0], root=str(root), check="full")


def test_mixed_sizes_need_a_size(data):
    odd = save(data / "class_1" / "odd.png", np.zeros((10, 12, 3), np.uint8))
    refused("images differ in size", odd, "12x10", "16x16", "dataset.size", data / "class_0" / "0000.png", root=str(data))  # fmt: skip
    x, *_ = Folder(root=str(data), size=16).arrays()
    assert x.shape == (25, 3, 16, 16)
    x, *_ = Folder(
        root=str(data), check="none"
    ).arrays()  # mixed sizes pass; the odd one fails when read
    position = next(i for i in range(len(x)) if x.reader.where(i) == str(odd))
    with pytest.raises(UnreadableItem, match=r"12x10 pixels .* the other images 16x16") as info:
        x[position]
    assert str(odd) in str(info.value)


def test_fewer_than_two_classes(tmp_path, data):
    root, _, _ = write_image_folder(tmp_path / "one", classes=1, per_class=3)
    refused("single class .*at least 2", "root=", root, root=str(root))
    index = write_csv(tmp_path / "i.csv", [("class_0/0000.png", "a"), ("class_0/0001.png", "")])
    refused("single class", index, index=str(index), root=str(data))
    index = write_csv(tmp_path / "j.csv", [("class_0/0000.png", "")])
    refused("no labelled items", index, index=str(index), root=str(data))


def test_test_classes_must_be_training_classes(data, tmp_path):
    test_root, _, _ = write_image_folder(tmp_path / "test", classes=["class_0", "zebra"], per_class=2)  # fmt: skip
    refused("class 'zebra' is not a class", "root=", root=str(data), test_root=str(test_root))
    index = write_csv(tmp_path / "t.csv", [("class_0/0000.png", "")])
    refused("has no label", "row 1", root=str(data), test_index=str(index))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "root and index are both null"),
        ({"root": "r", "test_root": "a", "test_index": "b.csv"}, "both given"),
        ({"index": "labels.txt"}, r"index=labels\.txt has an unknown extension"),
        ({"root": "r", "size": 0}, "size=0 must be"),
        ({"root": "r", "size": [8, 8, 3]}, "size=.* must be"),
        ({"root": "r", "resize": "fit"}, "resize='fit' is not one of stretch, center_crop"),
        ({"root": "r", "check": "yes"}, "check='yes' is not one of header, full, none"),
        ({"root": "r", "channels": 4}, "channels=4 must be 3 .* or 1"),
        ({"root": "r", "encoder": "resnet"}, "encoder='resnet' must be an encoder"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Folder(**kwargs)


def test_truncated_file_passes_a_header_check_and_fails_when_read(tmp_path):
    root, _, bad = write_image_folder(tmp_path / "data", classes=2, per_class=12, truncated=1)
    x, *_ = Folder(root=str(root), check="header").arrays()  # the header opens: loads
    x = LazyInputs(x.reader, streaming=Streaming(workers=2))
    with pytest.raises(UnreadableItem) as info:
        for _ in x.batches(5):
            pass
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{bad[0]}: cannot decode (")
    assert "truncated" in message


def test_check_none_defers_a_corrupt_file_to_its_read(tmp_path):
    root, _, bad = write_image_folder(tmp_path / "data", classes=2, per_class=3, corrupt=1)
    x, *_ = Folder(root=str(root), check="none").arrays()
    position = next(i for i in range(len(x)) if x.reader.where(i) == str(bad[0]))
    with pytest.raises(UnreadableItem, match=r"cannot decode .*not an image file"):
        x.reader.read(position)
