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
from labelbench.data.sources import Source
from labelbench.data.task import MODALITIES

OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
TRUE = {"1", "ON", "YES", "TRUE"}
CHUNK = 4096  # rows decoded at a time: 50k CIFAR images never exist twice as float64


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
    Images are scaled to [0, 1], channels first; text needs an `encoder`. `flip`: whether a
    left-right mirror keeps an image's class (true for CIFAR and STL-10, false for digits
    and SVHN); augmentations flip only where it is true.

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
    ) -> None:
        super().__init__(val_fraction, test_fraction, flip=flip)
        if not name or not str(name).strip():
            raise ConfigError("name is empty; give a hub id (uoft-cs/cifar10) or a local folder")
        if modality is not None and modality not in MODALITIES:
            raise ConfigError(
                f"modality={modality!r} is not one of {', '.join(MODALITIES)} (or null: from"
                " the column's type)"
            )
        if encoder is not None and not callable(getattr(encoder, "encode", None)):
            raise ConfigError(
                f"encoder={encoder!r} must be an encoder (a node with a _target_ from"
                " labelbench.data.encoders)"
            )
        if modality is not None and encoder is not None and modality == "text":
            _check_text_encoder(encoder)
        if test_split is not None and str(test_split) == str(split):
            raise ConfigError(f"test_split={test_split!r} is the training split itself")
        self.hub_name = str(name)
        self.input_column = None if input_column is None else str(input_column)
        self.label_column = str(label_column)
        self.split = str(split)
        self.test_split = None if test_split is None else str(test_split)
        self.config = None if config is None else str(config)
        self.revision = None if revision is None else str(revision)
        self.hf_cache_dir = hf_cache_dir
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.cache_dtype = cache_dtype
        self.modality = modality or "vector"  # replaced by the column's kind when null
        self._modality_given = modality is not None
        self._n_total = 0
        self._n_test: int | None = None  # rows of test_split, set by arrays()
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

    def _splits(self) -> list[str]:
        return [self.split] + ([self.test_split] if self.test_split else [])

    def _read(self) -> list[Any]:
        """The training split and, if named, the test split, as `datasets.Dataset`s."""
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
                self._load(s, local, offline and (why or "the Hub cannot be reached"))
                for s in self._splits()
            ]

    def _read_saved(self, folder: Path) -> list[Any]:
        """A `save_to_disk` folder: a DatasetDict (splits by name) or one Dataset (its only
        split, whatever `split` says)."""
        import datasets

        saved = datasets.load_from_disk(str(folder), keep_in_memory=False)
        if isinstance(saved, datasets.Dataset):
            if self.test_split:
                raise ConfigError(
                    f"test_split={self.test_split!r}: {folder} holds a single split; set"
                    " test_split=null"
                )
            return [saved]
        out = []
        for key, s in (("split", self.split), ("test_split", self.test_split)):
            if s is None:
                continue
            if s not in saved:
                raise ConfigError(
                    f"{key}={s!r} is not a split of {folder}; splits: {', '.join(saved)}"
                    " (slices such as train[:1000] work for hub ids and file folders only)"
                )
            out.append(saved[s])
        return out

    def _load(self, split: str, local: Path | None, offline: str | bool) -> Any:
        """One split through `load_dataset` (a hub id or a file folder). `offline`: False,
        or why the Hub is not asked (for the message)."""
        import datasets

        key = "split" if split == self.split else "test_split"
        try:
            return datasets.load_dataset(
                str(local) if local is not None else self.hub_name,
                self.config,
                split=split,
                revision=self.revision,
                cache_dir=self.hf_cache_dir,
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

    def _column(self, table: Any, column: str, key: str) -> None:
        if column not in table.column_names:
            raise ConfigError(
                f"{key}={column!r} is not a column of {self.origin};"
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
        self._column(tables[0], self.label_column, "label_column")
        if self.input_column is None:
            self.input_column = self._only_input(tables[0])
        for table in tables:
            self._column(table, self.label_column, "label_column")
            self._column(table, self.input_column, "input_column")
            if self.input_column == self.label_column:
                raise ConfigError(
                    f"input_column={self.input_column!r} is the label column; the label must"
                    " not be an input"
                )
        if any(len(t) == 0 for t in tables):
            raise ConfigError(f"{self.origin}: split {self._splits()} has no rows")
        y, classes = self._labels(tables)
        x, input_shape = self._inputs(tables)
        self._n_total = len(y)
        self._n_test = len(tables[1]) if len(tables) > 1 else None
        return x, y, classes, input_shape

    def test_indices(self) -> np.ndarray | None:
        """The rows of `test_split`, after those of `split` in `arrays()`."""
        if self._n_test is None:
            return None
        return np.arange(self._n_total - self._n_test, self._n_total)

    def _labels(self, tables: list[Any]) -> tuple[np.ndarray, tuple[str, ...]]:
        import datasets

        feature = tables[0].features[self.label_column]
        values = [np.asarray(t.with_format("numpy")[self.label_column]) for t in tables]
        labels = np.concatenate(values)
        if isinstance(feature, datasets.ClassLabel):
            missing = int((labels < 0).sum())
            if missing:
                raise ConfigError(
                    f"label_column={self.label_column!r} of {self.origin} has {missing} items"
                    " without a label (-1); pick a labelled split"
                )
            return labels.astype(np.int64), tuple(feature.names)
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
        values, y = np.unique(labels, return_inverse=True)
        return y.astype(np.int64), tuple(str(v) for v in values)

    def _kind(self, feature: Any) -> str:
        import datasets

        if isinstance(feature, datasets.Image):
            return "image"
        if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
            return "text"
        return "vector"

    def _inputs(self, tables: list[Any]) -> tuple[np.ndarray, tuple[int, ...]]:
        kind = self._kind(tables[0].features[self.input_column])
        if not self._modality_given:
            self.modality = kind
        if (kind == "text") != (self.modality == "text"):
            raise ConfigError(
                f"modality={self.modality!r} does not fit input_column={self.input_column!r}"
                f" of {self.origin}, which holds {kind} data"
            )
        if kind == "text":
            return self._encode([t.with_format("numpy")[self.input_column] for t in tables])
        accepts = getattr(self.encoder, "accepts", None)
        if callable(accepts) and not accepts(self.modality):
            raise ConfigError(
                f"encoder={self.encoder.name} cannot read the {self.modality} inputs of"
                f" {self.origin}; use dataset/encoder=none"
            )
        x = np.concatenate([self._numeric(t) for t in tables])
        if not np.isfinite(x).all():
            raise ConfigError(
                f"input_column={self.input_column!r} of {self.origin} has non-finite values"
            )
        if self.modality == "image":
            x = _channels_first(
                x, decoded=kind == "image", origin=self.origin, column=self.input_column
            )
            if self.encoder is not None and self.encoder.name != "none":  # a frozen backbone
                from labelbench.data.cache import EmbeddingCache

                cache = EmbeddingCache(self.cache_dir, self.cache_dtype)
                x = cache.get(self.name, x, self.encoder, view="image")
                self.modality = "vector"  # embeddings: vector views, vector models
                return x, (int(x.shape[1]),)
            shape = tuple(int(v) for v in x.shape[1:])
        else:
            shape = (int(np.prod(x.shape[1:])),)
        return x.reshape(len(x), -1), shape

    def _numeric(self, table: Any) -> np.ndarray:
        """The input column as float32, images scaled to [0, 1], read in chunks."""
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

        strings = [str(s) for column in texts for s in column]
        x = EmbeddingCache(self.cache_dir, self.cache_dtype).get(self.name, strings, self.encoder)
        return x, (int(x.shape[1]),)


def _check_text_encoder(encoder: Any) -> None:
    accepts = getattr(encoder, "accepts", None)
    if encoder is None or (callable(accepts) and not accepts("text")):
        name = getattr(encoder, "name", None)
        raise ConfigError(
            f"encoder={name}: the inputs are text and nothing trains on raw strings; choose a"
            " text encoder (dataset/encoder=minilm)"
        )


def _channels_first(x: np.ndarray, decoded: bool, origin: str, column: str) -> np.ndarray:
    """Images as (N, C, H, W). Decoded images (an Image column) come as (N, H, W) or
    (N, H, W, C); array columns as (N, H, W) or already channels first, (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if decoded else x
    raise ConfigError(
        f"input_column={column!r} of {origin} holds arrays of shape {x.shape[1:]}; images"
        " are (height, width), (height, width, channels) decoded or (channels, height, width)"
    )
