"""The embedding cache: a frozen encoder's output for a dataset, computed once and read back
memory-mapped by every later run.

Where: `dataset.cache_dir` when set, else the `LABELBENCH_CACHE` environment variable, else
`~/.cache/labelbench/embeddings` (shared by every results folder and checkout of a user, as
the encoder's output does not depend on them; the folder may be deleted at any time).

One entry per (dataset, items, encoder name, encoder weights, view), all hashed into its
key: `items` is a hash of every item in order (so a changed or reordered dataset misses),
the weights hash comes from `Encoder.fingerprint()`, and `view` names the rendering of the
items that was encoded ("text": the items as they are). The split is applied after
encoding, so one entry serves every split seed. An entry is two files:

    <dataset>-<encoder>-<view>-<key>.json           what it is: shape, dtype, sha256, file
    <dataset>-<encoder>-<view>-<key>.<sha12>.npy    the array (float32 or float16)

Both are written to a temp name and renamed (labelbench.results.atomic), the array first,
so a reader never sees half of either. The array's name carries its content hash, so two
jobs that build the same entry at once never overwrite one file with different bytes (an
encoder may differ in the last bit between runs): whichever description lands last names
a complete array that matches it. A reader trusts an entry only if its description parses,
names this key, and the array loads with the described shape and dtype and the described
sha256 (hashing costs about 1 ms per MB); anything else is logged and rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelbench.config import ConfigError
from labelbench.results.atomic import atomic_write

log = logging.getLogger("labelbench")

ENV_VAR = "LABELBENCH_CACHE"
DEFAULT_DIR = "~/.cache/labelbench/embeddings"
DTYPES = ("float32", "float16")
FORMAT = 1


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: `cache_dir`, else $LABELBENCH_CACHE, else ~/.cache/labelbench/embeddings."""
    chosen = cache_dir if cache_dir not in (None, "") else os.environ.get(ENV_VAR) or DEFAULT_DIR
    return Path(chosen).expanduser()


def items_digest(items: Sequence[Any] | np.ndarray) -> str:
    """sha256 of the items in order: strings by their UTF-8 bytes, length-prefixed (so no two
    lists collide by concatenation); an array by its dtype, shape and bytes."""
    digest = hashlib.sha256()
    if isinstance(items, np.ndarray):
        digest.update(f"array|{items.dtype.str}|{items.shape}|".encode())
        digest.update(np.ascontiguousarray(items).tobytes())
        return digest.hexdigest()
    digest.update(b"items|")
    for item in items:
        data = str(item).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", part)[:40] or "_"


class CacheCorrupt(Exception):
    """A cache entry that must not be trusted (the message says why)."""


class EmbeddingCache:
    """Embeddings by (dataset, items, encoder, weights, view), under `root` (see the module
    docstring). `dtype`: how they are stored, float32 or float16 (half the disk; the
    rounding is applied on the first run too, so every run sees the same values)."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"cache_dtype={dtype!r} is not one of {', '.join(DTYPES)}")
        self.root = cache_root(cache_dir)
        self.dtype = dtype

    def describe(self, dataset: str, items_sha: str, encoder: Any, view: str) -> dict[str, Any]:
        """What identifies an entry, and its key (a hash of all of it)."""
        ident = {
            "format": FORMAT,
            "dataset": dataset,
            "items_sha256": items_sha,
            "encoder": encoder.name,
            "encoder_fingerprint": encoder.fingerprint(),
            "view": view,
            "dtype": self.dtype,
        }
        blob = json.dumps(ident, sort_keys=True).encode()
        ident["key"] = hashlib.sha256(blob).hexdigest()[:20]
        return ident

    def stem(self, ident: dict[str, Any]) -> str:
        """The entry's file name without extension."""
        parts = (ident["dataset"], ident["encoder"], ident["view"])
        return "-".join(_safe(p) for p in parts) + f"-{ident['key']}"

    def get(
        self, dataset: str, items: Sequence[Any] | np.ndarray, encoder: Any, view: str = "text"
    ) -> np.ndarray:
        """The embeddings of `items` (float32, one row each, read-only): read from the cache,
        or computed with `encoder.encode(items)`, stored and read back."""
        ident = self.describe(dataset, items_digest(items), encoder, view)
        meta_path = self.root / f"{self.stem(ident)}.json"
        if meta_path.exists():
            try:
                return self._as_float32(self.read(meta_path, ident, len(items)))
            except CacheCorrupt as e:
                log.warning("embedding cache %s is not usable (%s); rebuilding it", meta_path, e)
        log.info(
            "encoding %d items of %s with %s (cache: %s)",
            len(items),
            dataset,
            encoder.name,
            self.root,
        )
        x = np.asarray(encoder.encode(items))
        if x.ndim != 2 or len(x) != len(items):
            raise ValueError(
                f"encoder {encoder.name} returned shape {x.shape} for {len(items)} items;"
                " expected (n_items, d)"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"encoder {encoder.name} returned non-finite values")
        self.write(meta_path, ident, x.astype(self.dtype))
        try:
            return self._as_float32(self.read(meta_path, ident, len(items)))
        except CacheCorrupt:  # a concurrent writer's entry replaced ours and is itself broken
            return self._as_float32(x.astype(self.dtype))

    @staticmethod
    def _as_float32(x: np.ndarray) -> np.ndarray:
        if x.dtype == np.float32:
            return x  # the memory map itself
        out = x.astype(np.float32)
        out.setflags(write=False)
        return out

    def write(self, meta_path: Path, ident: dict[str, Any], x: np.ndarray) -> None:
        """Store `x`: the array under its content hash, then the description naming it."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(x), allow_pickle=False)
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        array_name = f"{meta_path.stem}.{sha[:12]}.npy"
        atomic_write(meta_path.parent / array_name, data)
        meta = {**ident, "file": array_name, "shape": list(x.shape), "sha256": sha}
        atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")

    def read(self, meta_path: Path, ident: dict[str, Any], n_items: int) -> np.ndarray:
        """The entry's array, memory-mapped read-only, after checking it against its
        description; raises CacheCorrupt saying what is wrong."""
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheCorrupt(f"description unreadable: {type(e).__name__}") from None
        if not isinstance(meta, dict):
            raise CacheCorrupt("description is not a JSON object")
        for field, value in ident.items():
            if meta.get(field) != value:
                raise CacheCorrupt(f"description has {field}={meta.get(field)!r}, not {value!r}")
        name = meta.get("file")
        if not isinstance(name, str) or "/" in name or not name.startswith(meta_path.stem):
            raise CacheCorrupt(f"description names no array file ({name!r})")
        path = meta_path.parent / name
        try:
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CacheCorrupt(f"{name} does not load: {reason}") from None
        shape = meta.get("shape")
        if list(x.shape) != shape or x.ndim != 2 or x.shape[0] != n_items:
            raise CacheCorrupt(f"{name} has shape {x.shape}, expected {shape} for {n_items} items")
        if str(x.dtype) != self.dtype:
            raise CacheCorrupt(f"{name} has dtype {x.dtype}, expected {self.dtype}")
        if _file_sha256(path) != meta.get("sha256"):
            raise CacheCorrupt(f"{name} does not match its sha256")
        return x
