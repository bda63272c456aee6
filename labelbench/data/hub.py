"""Hugging Face datasets by hub name (`uoft-cs/cifar10`), or a local folder that `datasets`
reads (a `save_to_disk` folder, or a folder of parquet/csv/arrow files)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.encoders import check_encoder
from labelbench.data.lazy import ItemReader, LazyInputs, UnreadableItem
from labelbench.data.sources import Source
from labelbench.data.task import MODALITIES, NO_LABEL

OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
TRUE = {"1", "ON", "YES", "TRUE"}
CHUNK = 4096  # rows of numeric vectors converted at a time (never the whole column twice)


def offline_declared() -> bool:
    """Whether the user declared offline mode (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE)."""
    return any(os.environ.get(v, "").strip().upper() in TRUE for v in OFFLINE_VARS)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens within `timeout` seconds. Behind a proxy the
    answer is left to `datasets` (True). Without it `datasets` retries for ~23 s offline."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def offline_mode(offline: bool) -> Iterator[None]:
    """While loading: both offline variables set and `datasets`/`huggingface_hub` told, so
    either variable (or a failed reachability check) makes both libraries use the local
    cache at once instead of retrying the network. Restored afterwards."""
    if not offline:
        yield
        return
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved_env = {v: os.environ.get(v) for v in OFFLINE_VARS}
    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    os.environ.update(dict.fromkeys(OFFLINE_VARS, "1"))
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved
        for v, value in saved_env.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class Hub(Source):
    """A Hugging Face dataset: `name` is a hub id (`uoft-cs/cifar10`, `Davlan/sib200`) or a
    local folder `datasets` can read. `input_column` and `label_column` pick the columns
    (`input_column` None: the only column besides the label, refused when there are
    several); labels of any kind become sorted class names (a ClassLabel keeps its own names).

    `split` (slices allowed for hub ids and file folders: `train[:5000]`) gives the pool and
    validation items, and, cut per split seed, the test items; `test_split` names the
    dataset's own test split instead, which is then the fixed test split whatever the seed.
    `unlabeled_split` names a split whose rows are all unlabeled-only items (NO_LABEL: never
    revealed, never in validation or test), whatever its label column says or if it has
    none (STL-10's `unlabeled`). Rows come in that order: split, test_split, unlabeled_split.
    Only two things mean "no label": a ClassLabel value of -1 (such rows of `split` become
    unlabeled-only; in `test_split` they are refused) and the rows of `unlabeled_split`. A
    missing value in any other label column is refused.

    Images (an Image column, or an array column with modality image) stay on disk: the
    inputs are a LazyInputs that decodes rows on demand (see ArrowImageReader), scaled to
    [0, 1] where used, channels first. Text needs an `encoder`; text and numeric vectors are
    read into memory. `flip`: whether a left-right mirror keeps an image's class (true for
    CIFAR and STL-10, false for digits and SVHN); augmentations flip only where it is true.

    Offline (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE set, or the Hub unreachable), only
    datasets in the local Hugging Face cache load; anything else is one ConfigError line."""

    def __init__(
        self,
        name: str,
        input_column: str | None = None,
        label_column: str = "label",
        split: str = "train",
        test_split: str | None = None,
        config: str | None = None,
        revision: str | None = None,
        modality: str | None = None,
        hf_cache_dir: str | None = None,
        encoder: Any = None,
        cache_dir: str | None = None,
        cache_dtype: str = "float32",
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        flip: bool = False,
        unlabeled_split: str | None = None,
    ) -> None:
        super().__init__(val_fraction, test_fraction, flip=flip)
        if not name or not str(name).strip():
            raise ConfigError("name is empty; give a hub id (uoft-cs/cifar10) or a local folder")
        if modality is not None and modality not in MODALITIES:
            raise ConfigError(
                f"modality={modality!r} is not one of {', '.join(MODALITIES)} (or null: from"
                " the column's type)"
            )
        check_encoder(encoder)
        if modality is not None and encoder is not None and modality == "text":
            _check_text_encoder(encoder)
        if test_split is not None and str(test_split) == str(split):
            raise ConfigError(f"test_split={test_split!r} is the training split itself")
        if unlabeled_split is not None and str(unlabeled_split) in (str(split), str(test_split)):
            which = "the training split" if str(unlabeled_split) == str(split) else "test_split"
            raise ConfigError(f"unlabeled_split={unlabeled_split!r} is {which} itself")
        self.hub_name = str(name)
        self.input_column = None if input_column is None else str(input_column)
        self.label_column = str(label_column)
        self.split = str(split)
        self.test_split = None if test_split is None else str(test_split)
        self.unlabeled_split = None if unlabeled_split is None else str(unlabeled_split)
        self.config = None if config is None else str(config)
        self.revision = None if revision is None else str(revision)
        self.hf_cache_dir = hf_cache_dir
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.cache_dtype = cache_dtype
        self.modality = modality or "vector"  # replaced by the column's kind when null
        self._modality_given = modality is not None
        self._n_split = 0  # rows of each split, set by arrays()
        self._n_test: int | None = None
        base = self.hub_name.rstrip("/").rsplit("/", 1)[-1]
        self.name = f"{base}.{self.config}" if self.config else base

    @property
    def origin(self) -> str:
        return self.hub_name + (f" ({self.config})" if self.config else "")

    # --- reading -----------------------------------------------------------------------------

    def _local(self) -> Path | None:
        path = Path(self.hub_name).expanduser()
        if path.exists():
            return path
        if self.hub_name.startswith(("/", "./", "../", "~")):
            raise ConfigError(f"name={self.hub_name} is a path that does not exist")
        return None

    def _splits(self) -> list[tuple[str, str]]:
        """(option, split) of each split read, in row order."""
        named = (
            ("split", self.split),
            ("test_split", self.test_split),
            ("unlabeled_split", self.unlabeled_split),
        )
        return [(key, s) for key, s in named if s is not None]

    def _read(self) -> list[Any]:
        """The splits of `_splits()`, as memory-mapped `datasets.Dataset`s."""
        import datasets

        datasets.disable_progress_bars()
        local = self._local()
        if local is not None and local.is_file():
            raise ConfigError(
                f"name={self.hub_name} is a file; use dataset=files for a CSV or Parquet table"
            )
        if local is not None and any(
            (local / f).is_file() for f in ("dataset_dict.json", "state.json")
        ):
            return self._read_saved(local)
        declared = local is None and offline_declared()
        offline = declared or (local is None and not hub_reachable())
        why = "offline mode is set (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE)" if declared else None
        with offline_mode(offline):
            return [
                self._load(key, s, local, offline and (why or "the Hub cannot be reached"))
                for key, s in self._splits()
            ]

    def _read_saved(self, folder: Path) -> list[Any]:
        """A `save_to_disk` folder: a DatasetDict (splits by name) or one Dataset (its only
        split, whatever `split` says)."""
        import datasets

        saved = datasets.load_from_disk(str(folder), keep_in_memory=False)
        if isinstance(saved, datasets.Dataset):
            for key, s in self._splits()[1:]:
                raise ConfigError(f"{key}={s!r}: {folder} holds a single split; set {key}=null")
            return [saved]
        out = []
        for key, s in self._splits():
            if s not in saved:
                raise ConfigError(
                    f"{key}={s!r} is not a split of {folder}; splits: {', '.join(saved)}"
                    " (slices such as train[:1000] work for hub ids and file folders only)"
                )
            out.append(saved[s])
        return out

    def _load(self, key: str, split: str, local: Path | None, offline: str | bool) -> Any:
        """One split through `load_dataset` (a hub id or a file folder), memory-mapped from
        the cache. `offline`: False, or why the Hub is not asked (for the message)."""
        import datasets

        try:
            return datasets.load_dataset(
                str(local) if local is not None else self.hub_name,
                self.config,
                split=split,
                revision=self.revision,
                cache_dir=self.hf_cache_dir,
                keep_in_memory=False,
            )
        except ConnectionError as e:  # datasets' own: the Hub not reached, not in the cache
            why = offline or f"the Hub cannot be reached ({_first_line(e)})"
            raise self._unreachable(why) from None
        except ValueError as e:
            text = _first_line(e)
            if "split" in text.lower():
                raise ConfigError(f"{key}={split!r}: {text}") from None
            if "config" in text.lower():
                raise ConfigError(f"config={self.config!r}: {text}") from None
            raise ConfigError(f"name={self.hub_name} could not be loaded: {text}") from None
        except Exception as e:  # not found, gated, a broken file: one line, not a traceback
            if offline and local is None:
                raise self._unreachable(offline) from None
            text = _first_line(e)
            if "script" in text.lower():  # datasets >= 4 runs no dataset loading scripts
                text += " (look for a parquet copy of the dataset on the Hub)"
            raise ConfigError(
                f"name={self.hub_name} could not be loaded: {type(e).__name__}: {text}"
            ) from None

    def _unreachable(self, why: str) -> ConfigError:
        args = ", ".join(repr(a) for a in (self.hub_name, self.config) if a)
        return ConfigError(
            f"name={self.hub_name} is not in the local Hugging Face cache and {why}: download it"
            f' once with network (python -c "import datasets; datasets.load_dataset({args})",'
            " or this same run), then HF_DATASETS_OFFLINE=1 reads the cache; or save it to a"
            " local folder for dataset.name=<folder>, or use dataset=files with local files"
        )

    # --- arrays ------------------------------------------------------------------------------

    def _column(self, table: Any, column: str, key: str, split: str | None = None) -> None:
        if column not in table.column_names:
            where = f"split {split!r} of " if split else ""
            raise ConfigError(
                f"{key}={column!r} is not a column of {where}{self.origin};"
                f" columns: {', '.join(table.column_names)}"
            )

    def _only_input(self, table: Any) -> str:
        """The one column besides the label, for `input_column` None; else a ConfigError
        that lists the columns to choose from."""
        columns = list(table.column_names)
        candidates = [c for c in columns if c != self.label_column]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise ConfigError(
                f"input_column=null: {self.origin} has no column besides"
                f" label_column={self.label_column!r}; columns: {', '.join(columns)}"
            )
        raise ConfigError(
            f"input_column=null: {len(candidates)} columns could be the input; columns of"
            f" {self.origin}: {', '.join(columns)}; set dataset.input_column=..."
        )

    def arrays(self):
        tables = self._read()
        splits = self._splits()
        labelled = tables[: len(tables) - (self.unlabeled_split is not None)]
        self._column(tables[0], self.label_column, "label_column")
        if self.input_column is None:
            self.input_column = self._only_input(tables[0])
        if self.input_column == self.label_column:
            raise ConfigError(
                f"input_column={self.input_column!r} is the label column; the label must"
                " not be an input"
            )
        for k, ((_, split), table) in enumerate(zip(splits, tables, strict=True)):
            named = split if k else None  # the first split's columns are the dataset's
            self._column(table, self.input_column, "input_column", named)
            if k < len(labelled):
                self._column(table, self.label_column, "label_column", named)
        empty = [s for (_, s), t in zip(splits, tables, strict=True) if len(t) == 0]
        if empty:
            raise ConfigError(f"{self.origin}: split {empty[0]!r} has no rows")
        n_unlabeled = len(tables[-1]) if self.unlabeled_split is not None else 0
        y, classes = self._labels(labelled, n_unlabeled)
        x, input_shape = self._inputs(tables)
        self._n_split = len(tables[0])
        self._n_test = len(tables[1]) if self.test_split is not None else None
        return x, y, classes, input_shape

    def test_indices(self) -> np.ndarray | None:
        """The rows of `test_split`: after those of `split`, before those of
        `unlabeled_split` in `arrays()`."""
        if self._n_test is None:
            return None
        return np.arange(self._n_split, self._n_split + self._n_test)

    def _labels(self, tables: list[Any], n_unlabeled: int) -> tuple[np.ndarray, tuple[str, ...]]:
        """Labels of the rows of `split` and `test_split` (`tables`), then NO_LABEL for the
        `n_unlabeled` rows of `unlabeled_split`."""
        import datasets

        feature = tables[0].features[self.label_column]
        values = [_values(t, self.label_column) for t in tables]
        tail = np.full(n_unlabeled, NO_LABEL, dtype=np.int64)
        if isinstance(feature, datasets.ClassLabel):
            if len(values) > 1 and (missing := int((values[1] < 0).sum())):
                raise ConfigError(
                    f"label_column={self.label_column!r} of test_split={self.test_split!r} of"
                    f" {self.origin} has {missing} items without a label (-1); test items"
                    " must be labelled"
                )
            if not (values[0] >= 0).any():
                raise ConfigError(
                    f"split={self.split!r} of {self.origin} has no labelled items (all -1);"
                    " name a labelled split (unlabeled_split= takes the unlabeled one)"
                )
            labels = np.concatenate(values).astype(np.int64)
            labels[labels < 0] = NO_LABEL  # ClassLabel's "no label": unlabeled-only items
            return np.concatenate([labels, tail]), tuple(feature.names)
        labels = np.concatenate(values)
        if labels.dtype == object and any(v is None for v in labels):
            raise ConfigError(
                f"label_column={self.label_column!r} of {self.origin} has missing values"
            )
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise ConfigError(
                f"label_column={self.label_column!r} of {self.origin} has missing values"
            )
        if labels.ndim != 1:
            raise ConfigError(
                f"label_column={self.label_column!r} of {self.origin} holds {labels.ndim}-d"
                " values; one class per item is needed"
            )
        classes, y = np.unique(labels, return_inverse=True)
        return np.concatenate([y.astype(np.int64), tail]), tuple(str(v) for v in classes)

    def _kind(self, feature: Any) -> str:
        import datasets

        if isinstance(feature, datasets.Image):
            return "image"
        if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
            return "text"
        return "vector"

    def _inputs(self, tables: list[Any]) -> tuple[Any, tuple[int, ...]]:
        kind = self._kind(tables[0].features[self.input_column])
        if not self._modality_given:
            self.modality = kind
        if (kind == "text") != (self.modality == "text"):
            raise ConfigError(
                f"modality={self.modality!r} does not fit input_column={self.input_column!r}"
                f" of {self.origin}, which holds {kind} data"
            )
        if kind == "text":
            return self._encode([_values(t, self.input_column) for t in tables])
        accepts = getattr(self.encoder, "accepts", None)
        if callable(accepts) and not accepts(self.modality):
            raise ConfigError(
                f"encoder={self.encoder.name} cannot read the {self.modality} inputs of"
                f" {self.origin}; use dataset/encoder=none"
            )
        if self.modality == "image":
            reader_type = ArrowImageReader if kind == "image" else ArrowArrayReader
            splits = [s for _, s in self._splits()]
            x = LazyInputs(reader_type(tables, splits, self.input_column, self.origin))
            if self.encoder is not None and self.encoder.name != "none":  # a frozen backbone
                from labelbench.data.cache import EmbeddingCache

                cache = EmbeddingCache(self.cache_dir, self.cache_dtype)
                x = cache.get(self.name, x, self.encoder, view="image")
                self.modality = "vector"  # embeddings: vector views, vector models
                return x, (int(x.shape[1]),)
            return x, x.item_shape
        # Numeric vectors (and an Image column read as modality vector): in memory, flat.
        x = np.concatenate([self._numeric(t) for t in tables])
        if not np.isfinite(x).all():
            raise ConfigError(
                f"input_column={self.input_column!r} of {self.origin} has non-finite values"
            )
        shape = (int(np.prod(x.shape[1:])),)
        return x.reshape(len(x), -1), shape

    def _numeric(self, table: Any) -> np.ndarray:
        """The input column as float32 (decoded images scaled to [0, 1]), read in chunks."""
        data = table.with_format("numpy")
        parts = []
        for start in range(0, len(table), CHUNK):
            try:
                chunk = np.asarray(data[start : start + CHUNK][self.input_column])
                if chunk.dtype == object:
                    chunk = np.stack(list(chunk))
            except (TypeError, ValueError) as e:
                raise ConfigError(
                    f"input_column={self.input_column!r} of {self.origin} does not stack into"
                    f" one array (items of different sizes or types?): {_first_line(e)}"
                ) from None
            if chunk.dtype.kind not in "biuf":
                raise ConfigError(
                    f"input_column={self.input_column!r} of {self.origin} is not numeric"
                    f" ({chunk.dtype}); text needs modality text"
                )
            scale = 255.0 if chunk.dtype == np.uint8 else 1.0
            parts.append(chunk.astype(np.float32) / np.float32(scale))
        try:
            return np.concatenate(parts)
        except ValueError as e:
            raise ConfigError(
                f"input_column={self.input_column!r} of {self.origin}: items differ in shape"
                f" ({_first_line(e)}); resize them to one size first"
            ) from None

    def _encode(self, texts: list[Any]) -> tuple[np.ndarray, tuple[int, ...]]:
        """Texts -> the encoder's embeddings, through the embedding cache (one entry per
        dataset content and encoder, shared by every run and split seed)."""
        _check_text_encoder(self.encoder)
        from labelbench.data.cache import EmbeddingCache
        from labelbench.data.text import encode_texts

        strings = [str(s) for column in texts for s in column]
        cache = EmbeddingCache(self.cache_dir, self.cache_dtype)
        x = encode_texts(self.name, strings, self.encoder, cache)
        return x, (int(x.shape[1]),)

    def tokens(self):
        from labelbench.data.text import token_spec

        return token_spec(self.encoder) if self.modality == "text" else None


def _values(table: Any, column: str) -> np.ndarray:
    """One column of a split as one numpy array, read as a whole (`datasets` 5 iterates a
    `table[column]` row by row, ~0.4 ms a row) and touching no other column."""
    return np.asarray(table.select_columns([column]).with_format("numpy")[:][column])


def _check_text_encoder(encoder: Any) -> None:
    accepts = getattr(encoder, "accepts", None)
    if encoder is None or (callable(accepts) and not accepts("text")):
        name = getattr(encoder, "name", None)
        raise ConfigError(
            f"encoder={name}: the inputs are text and nothing trains on raw strings; choose a"
            " text encoder (dataset/encoder=minilm)"
        )


# --- images read in place --------------------------------------------------------------------

SAMPLE = 32  # rows per split decoded at load to settle (and check) the item shape
# PIL modes of one grey channel; an image of any other mode (RGBA, P, CMYK ...) becomes RGB.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def sample_rows(n: int, k: int = SAMPLE) -> np.ndarray:
    """The rows of a split of `n` rows checked at load: `k` evenly spaced ones, first and
    last included (all rows when `n <= k`)."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64))


def _size(shape: tuple[int, ...]) -> str:
    """An item's size for messages: height x width, with its channels."""
    channels = f", {shape[0]} channels" if len(shape) == 3 else ""
    return f"{shape[-2]}x{shape[-1]}{channels}"


class ArrowReader(ItemReader):
    """One column of the rows of several `datasets.Dataset` splits, read in place from
    their memory-mapped Arrow files. Row i of the reader is row i of the splits in order
    (`offsets` marks where each begins): one reader over the list rather than one
    `concatenate_datasets` table, as splits may differ in their other columns (an unlabeled
    split without a label column) and messages name each row by its split.

    Pickling (to DataLoader workers under spawn) writes each split's Arrow file paths and
    the column selection, not its rows: about 1.5 kB, reopened (memory-mapped) in the
    worker. Subclasses decode one value (`_decode`); `settle` fixes `item_shape` and
    `dtype` from a sample of rows at load."""

    version = 1  # part of the fingerprint: bump when the decoding of a value changes

    def __init__(self, tables: list[Any], splits: list[str], column: str, origin: str) -> None:
        self.column, self.origin, self.splits = column, origin, tuple(splits)
        # What the rows are, for the fingerprint: the datasets' own fingerprints (their
        # content and history) and the sizes of the files they map.
        self._ids = [[getattr(t, "_fingerprint", None), sorted(_file_sizes(t))] for t in tables]
        self.tables = [self._prepare(t) for t in tables]
        self.offsets = np.cumsum([0, *(len(t) for t in tables)]).astype(np.int64)
        self.settle()

    def _prepare(self, table: Any) -> Any:
        """The split as it is read: this column only, in the format `_value` reads."""
        raise NotImplementedError

    def _value(self, k: int, j: int) -> Any:
        raise NotImplementedError

    def _decode(self, value: Any, i: int) -> np.ndarray:
        """The value of row i as an array (its own shape and dtype); UnreadableItem if it
        cannot be decoded."""
        raise NotImplementedError

    def _finish(self, a: np.ndarray, i: int) -> np.ndarray:
        """A decoded array as an item of `item_shape` and `dtype`."""
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return k, i - int(self.offsets[k])

    def where(self, i: int) -> str:
        k, j = self._locate(i)
        return f"{self.origin} split {self.splits[k]!r} row {j}"

    def _raw(self, i: int) -> np.ndarray:
        k, j = self._locate(i)
        try:
            value = self._value(k, j)
        except Exception as e:  # a damaged file: name the row, not a pyarrow traceback
            raise UnreadableItem(
                f"{self.where(i)}: cannot be read ({type(e).__name__}: {_first_line(e)})"
            ) from None
        if value is None:
            raise UnreadableItem(f"{self.where(i)}: {self.column!r} is empty (null)")
        return self._decode(value, i)

    def read(self, i: int) -> np.ndarray:
        a = self._finish(self._raw(i), i)
        if a.shape != self.item_shape:
            raise UnreadableItem(
                f"{self.where(i)}: {self.column!r} is {_size(a.shape)} (height x width), the"
                f" dataset's items are {_size(self.item_shape)}; resize them to one size first"
            )
        return a

    def settle(self) -> None:
        """Decode `sample_rows` of each split: fixes `item_shape` and `dtype` and checks the
        sampled rows agree, so a dataset of mixed sizes fails here in one line rather than
        mid-training. Rows not sampled are checked as they are read (UnreadableItem)."""
        raise NotImplementedError

    def _sample(self) -> list[tuple[int, np.ndarray]]:
        """(reader row, decoded value) of the sampled rows; a row that does not decode is a
        ConfigError at load."""
        out = []
        for k, start in enumerate(self.offsets[:-1]):
            n = int(self.offsets[k + 1] - start)
            for j in sample_rows(n):
                i = int(start + j)
                try:
                    out.append((i, self._raw(i)))
                except UnreadableItem as e:
                    raise ConfigError(f"input_column={self.column!r}: {e}") from None
        return out

    def _same_shape(self, shapes: list[tuple[int, tuple[int, ...]]]) -> tuple[int, ...]:
        first_row, first = shapes[0]
        for i, shape in shapes[1:]:
            if shape != first:
                raise ConfigError(
                    f"input_column={self.column!r}: items differ in size: {self.where(first_row)}"
                    f" is {_size(first)}, {self.where(i)} is {_size(shape)} (height x width);"
                    " resize them to one size first"
                )
        return first

    def fingerprint(self) -> str:
        import hashlib
        import json

        what = {
            "reader": type(self).__name__,
            "version": self.version,
            "splits": self.splits,
            "column": self.column,
            "datasets": self._ids,
            "item_shape": list(self.item_shape),
            "dtype": np.dtype(self.dtype).str,
            **self._rendering(),
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def _rendering(self) -> dict[str, Any]:
        """What else decides the decoded values (for the fingerprint)."""
        return {}


class ArrowImageReader(ArrowReader):
    """An Image column: row i decoded on demand as `datasets` decodes it (PIL, EXIF
    orientation applied), then as uint8 (C, H, W). The channels are settled at load from
    the sampled rows: 1 (mode L) if they are all grey (modes 1, L, LA, I, I;16, F), else 3
    (RGB); every image is converted to that mode (PIL's `convert`: RGBA and LA lose their
    alpha, palette images take their colours, grey becomes RGB by repetition, 16-bit and
    float grey clip to 0..255). For RGB and 8-bit grey images the values are exactly those
    of decoding the whole column with `datasets` and dividing by 255."""

    mode = "RGB"

    def _prepare(self, table: Any) -> Any:
        import datasets

        # Decoded as `datasets` decodes the column, with the mode its feature may declare.
        declared = getattr(table.features[self.column], "mode", None)
        self._feature = datasets.Image(mode=declared)
        return table.select_columns([self.column]).with_format("arrow")

    def _value(self, k: int, j: int) -> Any:
        return self.tables[k][j].column(0)[0].as_py()  # {"bytes": ..., "path": ...}

    def _image(self, value: Any, i: int) -> Any:
        try:
            return self._feature.decode_example(value)
        except Exception as e:
            raise UnreadableItem(
                f"{self.where(i)}: the image does not decode ({type(e).__name__}: {_first_line(e)})"
            ) from None

    def _decode(self, value: Any, i: int) -> Any:
        return self._image(value, i)  # a PIL image: its mode is settled before converting

    def _finish(self, image: Any, i: int) -> np.ndarray:
        if image.mode != self.mode:
            if image.mode in ("P", "PA"):  # palette transparency: through RGBA, no warning
                image = image.convert("RGBA")
            image = image.convert(self.mode)
        a = np.array(image, dtype=np.uint8)  # a copy: PIL's buffer is read-only
        return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))

    def settle(self) -> None:
        self.dtype = np.uint8
        images = self._sample()
        grey = all(image.mode in GREY_MODES for _, image in images)
        self.mode = "L" if grey else "RGB"
        size = self._same_shape([(i, (image.height, image.width)) for i, image in images])
        self.item_shape = (1 if grey else 3, *size)

    def _rendering(self) -> dict[str, Any]:
        return {"mode": self.mode}


class ArrowArrayReader(ArrowReader):
    """An array column holding images: (H, W) becomes (1, H, W); (C, H, W) is kept, channels
    first. uint8 values stay uint8 (scaled by 1/255 where used); other numbers become
    float32 as they are. Settled at load from the sampled rows; a row of another shape,
    or with non-finite values, is an UnreadableItem when read."""

    def _prepare(self, table: Any) -> Any:
        dtype = _value_dtype(table.features[self.column])
        kwargs = {} if dtype is None else {"dtype": dtype}  # else numpy's int64 for uint8
        return table.select_columns([self.column]).with_format("numpy", **kwargs)

    def _value(self, k: int, j: int) -> Any:
        return self.tables[k][j][self.column]

    def _decode(self, value: Any, i: int) -> np.ndarray:
        a = np.asarray(value)
        if a.dtype == object or a.dtype.kind not in "biuf":
            raise UnreadableItem(
                f"{self.where(i)}: {self.column!r} does not hold one numeric array (rows of"
                " different lengths?)"
            )
        return a

    def _finish(self, a: np.ndarray, i: int) -> np.ndarray:
        a = np.array(a[None] if a.ndim == 2 else a, dtype=self.dtype)  # a writable copy
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise UnreadableItem(f"{self.where(i)}: {self.column!r} has non-finite values")
        return a

    def settle(self) -> None:
        arrays = self._sample()
        first = arrays[0][1]
        if first.ndim not in (2, 3):
            raise ConfigError(
                f"input_column={self.column!r} of {self.origin} holds arrays of shape"
                f" {first.shape}; images are (height, width) or (channels, height, width)"
            )
        self.dtype = np.uint8 if first.dtype == np.uint8 else np.float32
        shapes = [(i, (1, *a.shape) if a.ndim == 2 else a.shape) for i, a in arrays]
        self.item_shape = tuple(int(v) for v in self._same_shape(shapes))
        for i, a in arrays:
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise ConfigError(
                    f"input_column={self.column!r} of {self.origin} has non-finite values"
                    f" ({self.where(i)})"
                )


def _value_dtype(feature: Any) -> Any:
    """The numbers' dtype of an array feature (Array2D/3D, nested List/Sequence of Value),
    or None if it has none."""
    dtype = getattr(feature, "dtype", None)
    if isinstance(dtype, str) and dtype not in ("list", "string", "large_string"):
        try:
            return np.dtype(dtype)
        except TypeError:
            return None
    inner = getattr(feature, "feature", None)
    return None if inner is None else _value_dtype(inner)


def _file_sizes(table: Any) -> list[list[Any]]:
    """[file name, size] of the Arrow files a dataset maps (names without folders: the
    same data in another cache folder is the same data)."""
    out = []
    for f in getattr(table, "cache_files", None) or []:
        path = f.get("filename") if isinstance(f, dict) else None
        if path:
            try:
                out.append([os.path.basename(path), os.path.getsize(path)])
            except OSError:
                out.append([os.path.basename(path), None])
    return out
