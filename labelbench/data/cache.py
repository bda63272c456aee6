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

Items kept on disk (a labelbench.data.lazy.LazyInputs) are keyed by their reader's
`fingerprint()` and the rows of the view, without decoding any item, and are encoded in
batches read through DataLoader workers (`Encoder.encode_batches`): only the embeddings
are ever held. Such an encoding leaves its progress next to the entry, so that a job
killed part-way resumes where it stopped:

    <stem>.partial.npy      the rows encoded so far (the entry's shape and dtype)
    <stem>.partial.json     whose they are (the entry's identity), shape, rows done
    <stem>.lock             held (flock) by the one job encoding the entry

The array is flushed, then the progress file replaced atomically, every `checkpoint_rows`
rows and when the encoding stops on an error. A later `get` of the same entry continues
from the rows done, after checking the progress names this entry, shape and dtype (a
mismatching or unreadable one is logged and discarded); the finished entry is written as
above and the partial files removed. The lock makes a second job wait for the first and
then read its entry, rather than both resuming the same partial. On a file system without
working flock (some network mounts) the lock is skipped with a log line, and two jobs that
resume the same partial at once are not supported there (each may overwrite the other's
rows; the entry each writes is still whole).

A full disk (or a file size limit) stops the run with WriteError, one line naming the file
and why, and leaves nothing a later run would trust: a temp file is removed, an array whose
description could not be written is removed with it, and a streamed encoding reserves its
partial array's disk space before writing through the memory map (a write through a map to
space the disk cannot give kills the process with SIGBUS); its progress so far is kept.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: streamed encodings take no lock (see above)
    fcntl = None  # type: ignore[assignment]

from labelbench.config import ConfigError, check_int
from labelbench.data.lazy import LazyInputs, is_lazy
from labelbench.results.atomic import WriteError, atomic_write

log = logging.getLogger("labelbench")

ENV_VAR = "LABELBENCH_CACHE"
DEFAULT_DIR = "~/.cache/labelbench/embeddings"
DTYPES = ("float32", "float16")
FORMAT = 1
CHECKPOINT_ROWS = 8192  # rows encoded between two progress checkpoints of a streamed encoding
STREAM_BATCH = 256  # rows per batch for an encoder that names no batch_size


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: `cache_dir`, else $LABELBENCH_CACHE, else ~/.cache/labelbench/embeddings."""
    chosen = cache_dir if cache_dir not in (None, "") else os.environ.get(ENV_VAR) or DEFAULT_DIR
    return Path(chosen).expanduser()


def items_digest(items: Sequence[Any] | np.ndarray | LazyInputs) -> str:
    """sha256 of the items in order: strings by their UTF-8 bytes, length-prefixed (so no two
    lists collide by concatenation); an array by its dtype, shape and bytes; a LazyInputs by
    its reader's fingerprint, item shape and dtype and its rows, decoding nothing."""
    digest = hashlib.sha256()
    if is_lazy(items):
        reader = items.reader
        rows = np.ascontiguousarray(items.rows, dtype=np.int64)
        head = f"lazy|{tuple(reader.item_shape)}|{np.dtype(reader.dtype).str}|{len(rows)}|"
        digest.update(head.encode())
        digest.update(str(reader.fingerprint()).encode("utf-8") + b"|")
        digest.update(rows.tobytes())
        return digest.hexdigest()
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
    rounding is applied on the first run too, so every run sees the same values).
    `checkpoint_rows`: rows of a streamed encoding between two progress checkpoints."""

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        dtype: str = "float32",
        checkpoint_rows: int = CHECKPOINT_ROWS,
    ) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"cache_dtype={dtype!r} is not one of {', '.join(DTYPES)}")
        self.root = cache_root(cache_dir)
        self.dtype = dtype
        self.checkpoint_rows = check_int("checkpoint_rows", checkpoint_rows, 1)

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
        self,
        dataset: str,
        items: Sequence[Any] | np.ndarray | LazyInputs,
        encoder: Any,
        view: str = "text",
    ) -> np.ndarray:
        """The embeddings of `items` (float32, one row each, read-only): read from the cache,
        or computed with `encoder.encode(items)` (a LazyInputs: `encoder.encode_batches`
        over its batches, resumably), stored and read back."""
        ident = self.describe(dataset, items_digest(items), encoder, view)
        meta_path = self.root / f"{self.stem(ident)}.json"
        hit = self._hit(meta_path, ident, len(items))
        if hit is not None:
            return hit
        if is_lazy(items):
            return self._get_streamed(meta_path, ident, items, encoder)
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
                " expected one row per item"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"encoder {encoder.name} returned non-finite values")
        return self._store(meta_path, ident, x.astype(self.dtype))

    def _hit(self, meta_path: Path, ident: dict[str, Any], n_items: int) -> np.ndarray | None:
        """The entry as float32 if it is there and sound; None (logged if damaged) if not."""
        if not meta_path.exists():
            return None
        try:
            return self._as_float32(self.read(meta_path, ident, n_items))
        except CacheCorrupt as e:
            log.warning("embedding cache %s is not usable (%s); rebuilding it", meta_path, e)
            return None

    def _store(self, meta_path: Path, ident: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Write the entry `x` (in the cache dtype) and return it read back as float32."""
        self.write(meta_path, ident, x)
        try:
            return self._as_float32(self.read(meta_path, ident, len(x)))
        except CacheCorrupt:  # a concurrent writer's entry replaced ours and is itself broken
            return self._as_float32(x)

    # -- items kept on disk: encoded in batches, resumable ---------------------------------
    def partial_paths(self, meta_path: Path) -> tuple[Path, Path, Path]:
        """The progress files of an entry's streamed encoding: array, progress, lock."""
        stem = meta_path.stem
        folder = meta_path.parent
        return (
            folder / f"{stem}.partial.npy",
            folder / f"{stem}.partial.json",
            folder / f"{stem}.lock",
        )

    def _get_streamed(
        self, meta_path: Path, ident: dict[str, Any], items: LazyInputs, encoder: Any
    ) -> np.ndarray:
        array_path, progress_path, lock_path = self.partial_paths(meta_path)
        with _exclusive(lock_path) as waited:
            if waited:  # another job held the entry: it has likely finished it
                hit = self._hit(meta_path, ident, len(items))
                if hit is not None:
                    return hit
            x = self._encode_streamed(array_path, progress_path, ident, items, encoder)
            out = self._store(meta_path, ident, x)
            progress_path.unlink(missing_ok=True)  # the progress first: it names the array
            array_path.unlink(missing_ok=True)
        return out

    def _encode_streamed(
        self,
        array_path: Path,
        progress_path: Path,
        ident: dict[str, Any],
        items: LazyInputs,
        encoder: Any,
    ) -> np.ndarray:
        """Every row's embedding (in the cache dtype, in memory), encoded from where a
        previous attempt's progress stopped, checkpointing as it goes."""
        n = len(items)
        name = getattr(encoder, "name", type(encoder).__name__)
        if n == 0:
            raise ValueError(f"no items to encode for {ident['dataset']} with {name}")
        partial, done = self._resume(array_path, progress_path, ident, n)
        batch_size = int(getattr(encoder, "batch_size", STREAM_BATCH))
        log.info(
            "encoding %d items of %s with %s in batches of %d (cache: %s)%s",
            n - done,
            ident["dataset"],
            name,
            batch_size,
            self.root,
            f"; resuming after {done} of {n} rows" if done else "",
        )
        marked = done  # rows the progress file vouches for
        outputs = _encode_batches(encoder, items[done:].batches(batch_size)) if done < n else None
        try:
            for out in outputs or ():
                out = np.asarray(out)
                expected = min(batch_size, n - done)
                if out.ndim != 2 or len(out) != expected:
                    raise ValueError(
                        f"encoder {name} returned shape {out.shape} for a batch of {expected}"
                        " items; expected one row per item"
                    )
                if partial is None:
                    partial = self._start(array_path, progress_path, (n, out.shape[1]))
                elif out.shape[1] != partial.shape[1]:
                    raise ValueError(
                        f"encoder {name} returned {out.shape[1]} features, where the rows"
                        f" encoded before have {partial.shape[1]}"
                    )
                if not np.isfinite(out).all():
                    raise ValueError(f"encoder {name} returned non-finite values")
                partial[done : done + len(out)] = out
                done += len(out)
                if done - marked >= self.checkpoint_rows:
                    self._checkpoint(partial, progress_path, ident, done)
                    marked = done
        except BaseException:
            if partial is not None and done > marked:
                try:  # keep what was encoded before the failure, for the next attempt
                    self._checkpoint(partial, progress_path, ident, done)
                except Exception as e:
                    log.warning("could not save the progress of %s: %s", progress_path, e)
            raise
        finally:
            close = getattr(outputs, "close", None)
            if close is not None:
                close()  # stops the DataLoader workers now, not when collected
        if partial is None or done != n:
            raise ValueError(f"encoder {name} returned {done} rows for {n} items")
        return np.array(partial)  # in memory: the memory map closes with `partial`

    def _checkpoint(
        self, partial: np.memmap, progress_path: Path, ident: dict[str, Any], done: int
    ) -> None:
        """Record that the first `done` rows of `partial` are encoded."""
        partial.flush()  # the rows reach the file before the progress names them
        progress = {
            "format": FORMAT,
            "ident": ident,
            "file": Path(partial.filename).name,
            "shape": list(partial.shape),
            "dtype": self.dtype,
            "rows_done": done,
        }
        atomic_write(
            progress_path,
            json.dumps(progress, indent=1, sort_keys=True) + "\n",
            what="the embedding cache progress",
        )

    def _resume(
        self, array_path: Path, progress_path: Path, ident: dict[str, Any], n: int
    ) -> tuple[np.ndarray | None, int]:
        """The partial array (memory-mapped for writing) and its rows done, if a previous
        attempt left usable progress for this entry; else (None, 0), discarding any."""
        if not progress_path.exists():
            return None, 0  # an array without progress never reached a checkpoint
        try:
            partial, done = self._check_partial(array_path, progress_path, ident, n)
        except CacheCorrupt as e:
            log.warning(
                "embedding cache: the partial encoding %s is not usable (%s); discarding it"
                " and encoding from the first row",
                progress_path,
                e,
            )
            progress_path.unlink(missing_ok=True)
            array_path.unlink(missing_ok=True)
            return None, 0
        return partial, done

    def _check_partial(
        self, array_path: Path, progress_path: Path, ident: dict[str, Any], n: int
    ) -> tuple[np.ndarray, int]:
        try:
            progress = json.loads(progress_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheCorrupt(f"progress unreadable: {type(e).__name__}") from None
        if not isinstance(progress, dict) or not isinstance(progress.get("ident"), dict):
            raise CacheCorrupt("progress is not a JSON object naming an entry")
        theirs = progress["ident"]
        for field in sorted(set(ident) | set(theirs)):
            if theirs.get(field) != ident.get(field):
                raise CacheCorrupt(
                    f"it is for {field}={theirs.get(field)!r}, not {ident.get(field)!r}"
                )
        shape, done = progress.get("shape"), progress.get("rows_done")
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or shape[0] != n
            or not isinstance(shape[1], int)
            or shape[1] < 1
        ):
            raise CacheCorrupt(f"progress has shape {shape!r}, expected [{n}, features]")
        if isinstance(done, bool) or not isinstance(done, int) or not 0 < done <= n:
            raise CacheCorrupt(f"progress has rows_done={done!r}, expected 1..{n}")
        if progress.get("dtype") != self.dtype or progress.get("file") != array_path.name:
            raise CacheCorrupt(
                f"progress names {progress.get('file')!r} of dtype {progress.get('dtype')!r},"
                f" not {array_path.name!r} of {self.dtype}"
            )
        try:
            partial = np.load(array_path, mmap_mode="r+", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CacheCorrupt(f"{array_path.name} does not load: {reason}") from None
        if list(partial.shape) != shape or str(partial.dtype) != self.dtype:
            raise CacheCorrupt(
                f"{array_path.name} has shape {list(partial.shape)} and dtype {partial.dtype},"
                f" expected {shape} and {self.dtype}"
            )
        _reserve(array_path, "the partial embedding cache array")  # the rows still to write
        return partial, done

    def _start(self, array_path: Path, progress_path: Path, shape: tuple[int, int]) -> np.ndarray:
        """A new partial array of `shape`, memory-mapped for writing (no progress yet), its
        disk space reserved; raises WriteError (and leaves no array) where there is none."""
        progress_path.unlink(missing_ok=True)
        what = "the partial embedding cache array"
        try:
            array_path.parent.mkdir(parents=True, exist_ok=True)
            partial = np.lib.format.open_memmap(
                array_path, mode="w+", dtype=self.dtype, shape=shape
            )
            _reserve(array_path, what)
        except OSError as e:
            array_path.unlink(missing_ok=True)
            raise WriteError.of(what, array_path, e) from e
        return partial

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
        array_path = meta_path.parent / array_name
        atomic_write(array_path, data, what="the embedding cache array")
        meta = {**ident, "file": array_name, "shape": list(x.shape), "sha256": sha}
        try:
            atomic_write(
                meta_path,
                json.dumps(meta, indent=1, sort_keys=True) + "\n",
                what="the embedding cache description",
            )
        except OSError:
            if _names(meta_path) != array_name:  # no description names it: nothing reads it
                array_path.unlink(missing_ok=True)
            raise

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


def _names(meta_path: Path) -> str | None:
    """The array file an entry's description names, or None if it names none."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta.get("file") if isinstance(meta, dict) else None


def _reserve(path: Path, what: str) -> None:
    """Allocate the disk blocks of a memory-mapped file up front: a write through the map to
    a block a full disk cannot give is a SIGBUS that kills the process, where this raises
    WriteError naming `what`. A file system without allocation (EOPNOTSUPP, EINVAL) is
    left as it is."""
    if not hasattr(os, "posix_fallocate"):  # not POSIX
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise WriteError.of(what, path, e) from e
    finally:
        os.close(fd)


def _encode_batches(encoder: Any, batches: Any) -> Iterator[np.ndarray]:
    """`encoder.encode_batches(batches)`, or `encode` batch by batch for an encoder
    without it (any object with `encode` is accepted as an encoder)."""
    batched = getattr(encoder, "encode_batches", None)
    if callable(batched):
        return iter(batched(batches))
    return (np.asarray(encoder.encode(b.numpy() if hasattr(b, "numpy") else b)) for b in batches)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (created, and removed on leaving) for the block;
    yields whether another process held it first (this one waited). The kernel drops
    the lock of a killed process, so a stale lock file never blocks."""
    fd = _locked(path) if fcntl is not None else None
    if fd is None:
        yield False
        return
    fd, waited = fd
    try:
        yield waited
    finally:
        path.unlink(missing_ok=True)  # while still held, so no one holds a removed file
        os.close(fd)


def _locked(path: Path) -> tuple[int, bool] | None:
    """An open descriptor of `path` holding its flock, and whether it had to wait; None
    where the file system refuses locks (logged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another job encoding the same entry (%s)", path)
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:  # e.g. ENOLCK on a network mount without locking
            os.close(fd)
            log.warning("cannot lock %s (%s); encoding without a lock", path, e)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, waited
        os.close(fd)  # the holder removed the file we locked on leaving: lock the new one
