"""`dataset=folder`: image files on disk, read lazily (decoded one at a time when used).

Two layouts:

- `root`: one sub-folder per class (class names are the sub-folder names, sorted), images
  found recursively inside each; the layout of torchvision's ImageFolder.
- `index`: a CSV or Parquet table with a path column and a label column; relative paths
  resolve against `root` when it is given, else against the index file's folder. Rows with
  an empty label are unlabeled-only items.

`unlabeled` adds a folder of images without labels; `test_root` / `test_index` give the
dataset's own fixed test split. Items are ordered: the labelled layout's items (class by
class, or in the index's row order), the fixed test items, then the unlabeled folder's (so
adding an unlabeled folder moves no other item).

Each image is decoded with Pillow, converted with `.convert("RGB")` (channels=3) or
`.convert("L")` (channels=1; an alpha channel is dropped, a GIF gives its first frame, EXIF
orientation is not applied, as with torchvision's ImageFolder), resized when `size` is set,
and handed over as uint8 (C, H, W) (float32 in [0, 1] where used). Resizing uses Pillow's
BILINEAR filter (with Pillow's antialiasing when shrinking), torchvision's default:
`resize=stretch` resizes to `size` exactly; `resize=center_crop` scales the image so that
it covers `size` (its shorter side, relative to the target, fits) and cuts the centre out,
the standard ImageNet evaluation transform (Resize then CenterCrop).

What stops a run before training (one ConfigError line at load, naming the path) and what
fails it later (the file's UnreadableItem, written as a `failed` record naming the file):

=============================================  ==============  ===============  =========
bad input                                      check=full      check=header     none
=============================================  ==============  ===============  =========
missing root / index / unlabeled / test        at load         at load          at load
root without class folders, empty class        at load         at load          at load
index without its path or label column         at load         at load          at load
fewer than 2 classes, test class not in train  at load         at load          at load
index row whose file is missing                at load         at load          when read
corrupt or non-image file                      at load         at load          when read
images of mixed sizes with size null           at load         at load          when read
truncated image                                at load         when read        when read
=============================================  ==============  ===============  =========

`check=header` opens every file's header without decoding it (100,000 JPEGs: 28 s on 2
cores with a warm page cache, against 3.6 s for `check=none`, which only lists them);
`check=full` decodes every image once (slow: a full pass over the data). Pillow's
`ImageFile.LOAD_TRUNCATED_IMAGES` must stay False (its default) for a truncated file to
fail rather than decode as grey.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.encoders import check_encoder
from labelbench.data.lazy import ItemReader, LazyInputs, UnreadableItem
from labelbench.data.sources import Source
from labelbench.data.task import NO_LABEL

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
INDEX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
RESIZES = ("stretch", "center_crop")
CHECKS = ("header", "full", "none")
MODES = {3: "RGB", 1: "L"}
CHECK_THREADS = 8  # opening headers is I/O bound: threads hide a network file system's latency


def _reason(e: BaseException) -> str:
    """Why Pillow could not read a file, in a few words (the path is named by the caller)."""
    from PIL import UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):
        return "not an image file Pillow can identify"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _resized(image: Any, size: tuple[int, int], resize: str) -> Any:
    """`image` at `size` (height, width): stretched, or scaled to cover it and centre-cropped
    (torchvision's Resize + CenterCrop rounding)."""
    from PIL import Image

    height, width = size
    w, h = image.size
    if (w, h) == (width, height):
        return image
    if resize == "stretch":
        return image.resize((width, height), Image.Resampling.BILINEAR)
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = round((new_w - width) / 2.0), round((new_h - height) / 2.0)
    return image.crop((left, top, left + width, top + height))


class FolderReader(ItemReader):
    """Decodes image files with Pillow: item i is the file `base/rel[i]` as uint8
    (channels, height, width). `rel` holds paths relative to `base` (or absolute ones), as a
    numpy bytes array so that DataLoader workers share it without copying."""

    dtype = np.uint8

    def __init__(
        self,
        base: str | os.PathLike,
        rel: np.ndarray,
        item_shape: tuple[int, int, int],
        size: tuple[int, int] | None = None,
        resize: str = "stretch",
    ) -> None:
        self.base = os.fspath(base)
        self.rel = np.asarray(rel, dtype=np.bytes_)
        self.item_shape = tuple(int(v) for v in item_shape)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.resize = resize
        self.mode = MODES[self.item_shape[0]]

    def __len__(self) -> int:
        return len(self.rel)

    def path(self, i: int) -> str:
        return os.path.join(self.base, os.fsdecode(self.rel[i]))

    def where(self, i: int) -> str:
        return self.path(i)

    def read(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.path(i)
        try:
            with Image.open(path) as image:
                image = image.convert(self.mode)  # decodes: a truncated file raises here
        except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError ... for bad files
            raise UnreadableItem(f"{path}: cannot decode ({_reason(e)})") from None
        if self.size is not None:
            image = _resized(image, self.size, self.resize)
        _, height, width = self.item_shape
        if image.size != (width, height):
            raise UnreadableItem(
                f"{path}: is {image.size[0]}x{image.size[1]} pixels (width x height), the"
                f" other images {width}x{height}; set dataset.size to resize every image"
            )
        a = np.asarray(image, dtype=np.uint8)
        return np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))

    def fingerprint(self) -> str:
        """sha256 over every item's relative path, size in bytes and modification time (ns),
        and the decoding settings (size, resize, channels)."""
        digest = hashlib.sha256()
        digest.update(f"folder|{self.item_shape}|{self.size}|{self.resize}|".encode())
        for i in range(len(self)):
            try:
                stat = os.stat(self.path(i))
            except OSError as e:
                raise UnreadableItem(f"{self.path(i)}: cannot be read ({_reason(e)})") from None
            record = self.rel[i] + f"|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
            digest.update(len(record).to_bytes(8, "little") + record)
        return digest.hexdigest()


def _size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        values = [size, size]
    elif isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
        values = list(size)
    else:
        values = []
    if len(values) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise ConfigError(
            f"size={size!r} must be null (keep the images' own size), a positive integer"
            " (square) or [height, width]"
        )
    return int(values[0]), int(values[1])


def _images_under(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively, links followed, hidden files and folders
    skipped), sorted by their path relative to it."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            Path(here, f)
            for f in files
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in EXTENSIONS
        )
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _label_value(v: Any) -> Any:
    """A label cell as a class value, or None for an empty one (null, NaN, blank)."""
    if v is None:
        return None
    if isinstance(v, float):
        if not np.isfinite(v):
            return None
        return int(v) if v.is_integer() else v  # an int column with nulls, read as floats
    if isinstance(v, str):
        return v.strip() or None
    return v


def _class_names(values: list[Any]) -> list[str]:
    """Distinct label values as class names: numbers in numeric order, else text order."""
    distinct = set(values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct):
        return [str(v) for v in sorted(distinct)]
    return sorted({str(v) for v in distinct})


class Folder(Source):
    """Image files on disk: a folder with one sub-folder per class (`root`), or a CSV /
    Parquet index of paths and labels (`index`); an optional folder of unlabeled images and
    an optional fixed test split (`test_root` or `test_index`). Inputs stay on disk (a
    LazyInputs); see the module docstring for decoding and for when bad files are caught.
    `encoder` (not `none`): a frozen image encoder whose embeddings (through the embedding
    cache) replace the images, as vector data."""

    modality = "image"

    def __init__(
        self,
        root: str | None = None,
        index: str | None = None,
        path_column: str = "path",
        label_column: str = "label",
        unlabeled: str | None = None,
        test_root: str | None = None,
        test_index: str | None = None,
        size: Any = None,
        resize: str = "stretch",
        channels: int = 3,
        check: str = "header",
        name: str | None = None,
        encoder: Any = None,
        cache_dir: str | None = None,
        cache_dtype: str = "float32",
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        flip: bool = False,
    ) -> None:
        super().__init__(val_fraction, test_fraction, flip=flip)
        if root in (None, "") and index in (None, ""):
            raise ConfigError(
                "root and index are both null; give root=<a folder with one sub-folder of"
                " images per class> or index=<a CSV/Parquet file with path and label columns>"
            )
        if test_root not in (None, "") and test_index not in (None, ""):
            raise ConfigError(
                f"test_root={test_root} and test_index={test_index} are both given; the fixed"
                " test split comes from one of them"
            )
        for key, value in (("index", index), ("test_index", test_index)):
            if value not in (None, "") and Path(str(value)).suffix.lower() not in INDEX_FORMATS:
                raise ConfigError(
                    f"{key}={value} has an unknown extension; allowed: {', '.join(INDEX_FORMATS)}"
                )
        if resize not in RESIZES:
            raise ConfigError(f"resize={resize!r} is not one of {', '.join(RESIZES)}")
        if check not in CHECKS:
            raise ConfigError(
                f"check={check!r} is not one of {', '.join(CHECKS)} (header: open every file's"
                " header at load; full: decode every image at load; none: no check)"
            )
        if isinstance(channels, bool) or channels not in MODES:
            raise ConfigError(f"channels={channels!r} must be 3 (RGB) or 1 (grey)")
        check_encoder(encoder)
        accepts = getattr(encoder, "accepts", None)
        if callable(accepts) and not accepts("image"):
            raise ConfigError(
                f"encoder={getattr(encoder, 'name', encoder)} cannot read images; use"
                " dataset/encoder=none or an image encoder (resnet18)"
            )

        def path(value: Any) -> Path | None:
            return None if value in (None, "") else Path(str(value)).expanduser()

        self.root, self.index = path(root), path(index)
        self.unlabeled, self.test_root, self.test_index = (
            path(unlabeled),
            path(test_root),
            path(test_index),
        )
        self.path_column, self.label_column = str(path_column), str(label_column)
        self.size = _size(size)
        self.resize = resize
        self.channels = int(channels)
        self.check = check
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.cache_dtype = cache_dtype
        named = self.index.stem if self.index is not None else self.root.resolve().name
        self.name = str(name) if name else named
        self._n_main = self._n_test = 0

    @property
    def origin(self) -> str:
        return f"index={self.index}" if self.index is not None else f"root={self.root}"

    # --- listing -----------------------------------------------------------------------------

    def _folder(self, key: str, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError(f"{key}={folder} does not exist or is not a folder")

    def _class_folders(self, key: str, root: Path) -> list[Path]:
        """The class sub-folders of `root` (hidden ones, and the unlabeled or test folder
        when it sits inside root, are not classes)."""
        self._folder(key, root)
        others = {p.resolve() for p in (self.unlabeled, self.test_root) if p is not None}
        folders = sorted(
            (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.name,
        )
        folders = [p for p in folders if p.resolve() not in others]
        if not folders:
            raise ConfigError(
                f"{key}={root} has no class folders; one sub-folder of images per class is"
                " expected (for a flat folder of images give dataset.index=<a CSV of path,label>)"
            )
        return folders

    def _scan(self, key: str, root: Path) -> tuple[list[Path], list[str], list[str]]:
        """Files, their class names and the messages' names of them, for a class-folder
        layout."""
        files, labels = [], []
        for folder in self._class_folders(key, root):
            found = _images_under(folder)
            if not found:
                raise ConfigError(
                    f"{key}={root}: class folder {folder.name!r} ({folder}) has no image files"
                    f" ({' '.join(EXTENSIONS)})"
                )
            files.extend(found)
            labels.extend([folder.name] * len(found))
        return files, labels, [str(f) for f in files]

    def _table(self, key: str, index: Path) -> tuple[list[Any], list[Any]]:
        """The path and label columns of an index file, as Python lists."""
        if not index.is_file():
            raise ConfigError(f"{key}={index} does not exist or is not a file")
        import pyarrow as pa

        fmt = INDEX_FORMATS[index.suffix.lower()]
        try:
            if fmt == "csv":
                from pyarrow import csv

                table = csv.read_csv(
                    index,
                    convert_options=csv.ConvertOptions(
                        column_types={self.path_column: pa.string()}, strings_can_be_null=True
                    ),
                )
            else:
                import pyarrow.parquet as pq

                table = pq.read_table(index)
        except (pa.ArrowException, OSError) as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{key}={index} cannot be read as {fmt} ({text})") from None
        for column_key, column in (("path_column", self.path_column), ("label_column", self.label_column)):  # fmt: skip
            if column not in table.column_names:
                raise ConfigError(
                    f"{column_key}={column!r} is not a column of {index}; columns:"
                    f" {', '.join(table.column_names)}"
                )
        if table.num_rows == 0:
            raise ConfigError(f"{key}={index} has no rows")
        paths = table.column(self.path_column).to_pylist()
        labels = [_label_value(v) for v in table.column(self.label_column).to_pylist()]
        return paths, labels

    def _indexed(self, key: str, index: Path) -> tuple[list[Path], list[Any], list[str]]:
        """Files, label values (None: unlabeled) and the messages' names of them, for an
        index file; relative paths resolve against root, else the index's folder."""
        paths, labels = self._table(key, index)
        base = self.root if self.root is not None else index.parent
        files, where = [], []
        for row, value in enumerate(paths, start=1):
            if value is None or not str(value).strip():
                raise ConfigError(
                    f"{key}={index} row {row}: the {self.path_column!r} cell is empty"
                )
            file = base / Path(str(value)).expanduser()
            files.append(file)
            where.append(f"{key}={index} row {row}: {file}")
        return files, labels, where

    # --- checking ----------------------------------------------------------------------------

    def _inspect(self, file: Path) -> tuple[int, int] | str:
        """(width, height) from the file's header (check=full: after decoding it), or why it
        cannot be read."""
        from PIL import Image

        try:
            with Image.open(file) as image:
                if self.check == "full":
                    image.load()
                return image.size
        except Exception as e:  # any failure of a file is reported, not raised here
            return _reason(e)

    def _checked_shape(self, files: list[Path], where: list[str]) -> tuple[int, int, int]:
        """The item shape (C, H, W), after checking the files as `check` says."""
        if self.check == "none":
            if self.size is not None:
                return (self.channels, *self.size)
            files, where = files[:1], where[:1]  # the first file's size stands for all
        with ThreadPoolExecutor(CHECK_THREADS) as pool:
            found = list(pool.map(self._inspect, files, chunksize=64))
        first: tuple[int, str] | None = None
        for k, got in enumerate(found):
            if isinstance(got, str):
                if not files[k].is_file():
                    raise ConfigError(f"{where[k]} does not exist")
                if self.check == "full":
                    raise ConfigError(
                        f"{where[k]}: cannot decode it ({got}); the file is damaged, truncated"
                        " or not an image: replace or remove it"
                    )
                raise ConfigError(
                    f"{where[k]}: cannot open it as an image ({got}); expected an image file"
                    f" ({' '.join(EXTENSIONS)}): replace or remove it"
                )
            if self.size is None:
                if first is None:
                    first = (k, got)
                elif got != found[first[0]]:
                    (w0, h0), (w1, h1) = found[first[0]], got
                    raise ConfigError(
                        f"images differ in size: {where[first[0]]} is {w0}x{h0} and {where[k]}"
                        f" is {w1}x{h1} (width x height); set dataset.size=[height,width] (and"
                        " dataset.resize) to resize every image to one size"
                    )
        if self.size is not None:
            return (self.channels, *self.size)
        width, height = found[0]
        return (self.channels, height, width)

    # --- arrays ------------------------------------------------------------------------------

    def _items(self) -> tuple[list[Path], np.ndarray, tuple[str, ...], list[str]]:
        """Every file (main, fixed test, unlabeled), labels, class names, messages' names."""
        if self.index is not None:
            if self.root is not None:  # the folder the index's relative paths start from
                self._folder("root", self.root)
            files, values, where = self._indexed("index", self.index)
        else:
            files, values, where = self._scan("root", self.root)
        known = [v for v in values if v is not None]
        classes = tuple(_class_names(known))
        if len(classes) < 2:
            what = f"a single class ({classes[0]!r})" if classes else "no labelled items"
            raise ConfigError(
                f"{self.origin} has {what}; a classification task needs at least 2 classes"
            )
        ids = {name: k for k, name in enumerate(classes)}
        y = [NO_LABEL if v is None else ids[str(v)] for v in values]
        self._n_main = len(files)

        test: tuple[list[Path], list[Any], list[str]] | None = None
        if self.test_root is not None:
            test = self._scan("test_root", self.test_root)
        elif self.test_index is not None:
            test = self._indexed("test_index", self.test_index)
        self._n_test = 0
        if test is not None:
            t_files, t_values, t_where = test
            for k, v in enumerate(t_values):
                if v is None:
                    raise ConfigError(f"{t_where[k]} has no label; fixed test items need one")
                if str(v) not in ids:
                    raise ConfigError(
                        f"{t_where[k]}: class {str(v)!r} is not a class of {self.origin};"
                        f" classes: {', '.join(classes)}"
                    )
            files, where = files + t_files, where + t_where
            y += [ids[str(v)] for v in t_values]
            self._n_test = len(t_files)

        if self.unlabeled is not None:
            self._folder("unlabeled", self.unlabeled)
            extra = _images_under(self.unlabeled)
            if not extra:
                raise ConfigError(
                    f"unlabeled={self.unlabeled} has no image files ({' '.join(EXTENSIONS)})"
                )
            files, where = files + extra, where + [str(f) for f in extra]
            y += [NO_LABEL] * len(extra)
        return files, np.asarray(y, dtype=np.int64), classes, where

    def _reader(self, files: list[Path], where: list[str]) -> FolderReader:
        shape = self._checked_shape(files, where)
        base = self.root if self.root is not None else self.index.parent
        base_text = os.path.abspath(base)
        rel = []
        for f in files:
            full = os.path.abspath(f)
            inside = full.startswith(base_text.rstrip(os.sep) + os.sep)
            rel.append(os.fsencode(os.path.relpath(full, base_text) if inside else full))
        return FolderReader(
            base_text, np.array(rel, dtype=np.bytes_), shape, self.size, self.resize
        )

    def arrays(self):
        files, y, classes, where = self._items()
        x = LazyInputs(self._reader(files, where))
        if self.encoder is not None and getattr(self.encoder, "name", None) != "none":
            from labelbench.data.cache import EmbeddingCache

            cache = EmbeddingCache(self.cache_dir, self.cache_dtype)
            embedded = cache.get(self.name, x, self.encoder, view="image")
            self.modality = "vector"  # embeddings: vector views, vector models
            return embedded, y, classes, (int(embedded.shape[1]),)
        return x, y, classes, tuple(x.item_shape)

    def test_indices(self) -> np.ndarray | None:
        """The items of test_root / test_index, after the main items in `arrays()`."""
        if not self._n_test:
            return None
        return np.arange(self._n_main, self._n_main + self._n_test)
