"""Frozen encoders and the embedding cache on items kept on disk (a LazyInputs): keyed
without decoding, encoded in batches, resumed after an interruption or a real SIGKILL."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from labelbench.data.cache import EmbeddingCache, items_digest
from labelbench.data.encoders import BackboneEncoder, Encoder, HashingEncoder
from labelbench.data.lazy import ItemReader, LazyInputs, Streaming, UnreadableItem
from labelbench.models.resnet import ResNet18Cifar

ROOT = Path(__file__).resolve().parent.parent
N, SHAPE, BATCH = 300, (3, 16, 16), 64
TINY = functools.partial(ResNet18Cifar, width=0.125)  # 64 features, with batch norm


class NpyReader(ItemReader):
    """uint8 images, one .npy file each, in name order. `stall_from`: reading a row at or
    after it hangs (a disk that stops answering), so a job can be killed mid-encode."""

    dtype = np.uint8

    def __init__(self, folder: str | os.PathLike, stall_from: int | None = None) -> None:
        self.paths = np.array(sorted(str(p) for p in Path(folder).glob("*.npy")))
        self.item_shape = SHAPE
        self.stall_from = stall_from
        self.reads = 0  # counted in this process (not in DataLoader workers)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        self.reads += 1
        if self.stall_from is not None and i >= self.stall_from:
            time.sleep(3600)
        try:
            a = np.load(self.paths[i], allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UnreadableItem(f"{self.paths[i]}: cannot be read ({e})") from None
        if a.shape != SHAPE or a.dtype != np.uint8:
            raise UnreadableItem(f"{self.paths[i]}: {a.dtype} {a.shape}, expected uint8 {SHAPE}")
        return a

    def where(self, i: int) -> str:
        return str(self.paths[i])

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for p in self.paths:
            st = os.stat(p)
            digest.update(f"{Path(p).name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()


class Backbone(BackboneEncoder):
    """The real backbone encoder, counting calls and rows; `fail_after` batches it raises
    (an interrupted job). Same name and fingerprint as a plain BackboneEncoder."""

    def __init__(self, *args, fail_after: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_after, self.calls, self.rows = fail_after, 0, 0

    def encode_batches(self, batches):
        self.calls += 1
        for i, out in enumerate(super().encode_batches(batches)):
            if i == self.fail_after:
                raise RuntimeError("interrupted")
            self.rows += len(out)
            yield out


class ChannelMeans(Encoder):
    """A cheap image encoder with only `encode` (the default `encode_batches`)."""

    name = "means"
    modalities = ("image",)
    batch_size = 50

    def __init__(self) -> None:
        self.calls = 0

    def fingerprint(self) -> str:
        return "channel-means"

    def encode(self, items):
        self.calls += 1
        return np.asarray(items, dtype=np.float32).mean(axis=(2, 3))


@pytest.fixture
def images(tmp_path):
    """N random uint8 images written one per file; (folder, the same images as an array)."""
    folder = tmp_path / "items"
    folder.mkdir()
    data = np.random.default_rng(0).integers(0, 256, (N, *SHAPE), dtype=np.uint8)
    for i, a in enumerate(data):
        np.save(folder / f"{i:04d}.npy", a)
    return folder, data


def lazy(folder, workers: int = 0) -> LazyInputs:
    return LazyInputs(NpyReader(folder), streaming=Streaming(workers=workers))


def as_float(data: np.ndarray) -> np.ndarray:
    return data.astype(np.float32) / np.float32(255)


def uninterrupted(folder, tmp_path, dtype: str = "float32") -> np.ndarray:
    cache = EmbeddingCache(tmp_path / "reference", dtype)
    return np.array(
        cache.get("imgs", lazy(folder), BackboneEncoder(TINY, batch_size=BATCH), "image")
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*") if ".partial." in p.name or p.suffix == ".lock")


def progress_of(cache_dir: Path) -> dict:
    (path,) = cache_dir.glob("*.partial.json")
    return json.loads(path.read_text())


# -- streamed equals in memory; hits ------------------------------------------------------


def test_lazy_embeddings_equal_the_arrays_and_hit_after(images, tmp_path):
    folder, data = images
    cache = EmbeddingCache(tmp_path / "cache", checkpoint_rows=BATCH)
    enc = Backbone(TINY, batch_size=BATCH)
    x = cache.get("imgs", lazy(folder, workers=2), enc, view="image")
    expected = BackboneEncoder(TINY, batch_size=BATCH).encode(as_float(data))
    assert x.shape == (N, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    assert enc.calls == 1 and enc.rows == N
    assert leftovers(tmp_path / "cache") == []  # progress files gone with the entry written

    again = Backbone(TINY, batch_size=BATCH)
    reader = NpyReader(folder)
    hit = cache.get("imgs", LazyInputs(reader, streaming=Streaming(workers=0)), again, "image")
    assert again.calls == 0 and reader.reads == 0  # a hit decodes nothing
    np.testing.assert_array_equal(hit, x)

    # a view of some rows, in another order: another entry, the same rows' embeddings
    rows = np.random.default_rng(1).permutation(N)[:100]
    part = cache.get("imgs", lazy(folder)[rows], again, "image")
    np.testing.assert_allclose(part, expected[rows], rtol=1e-5, atol=1e-5)
    # the images as an array: today's path and key, the same embeddings
    whole = cache.get("imgs", as_float(data), again, "image")
    np.testing.assert_allclose(whole, x, rtol=1e-6, atol=1e-6)
    assert again.rows == 100 + N and len(list((tmp_path / "cache").glob("*.json"))) == 3


def test_encoder_with_only_encode_streams_batch_by_batch(images, tmp_path):
    folder, data = images
    enc = ChannelMeans()
    x = EmbeddingCache(tmp_path / "cache").get("imgs", lazy(folder), enc, "image")
    assert enc.calls == 6  # 300 rows, batch_size 50
    np.testing.assert_allclose(x, ChannelMeans().encode(as_float(data)), rtol=1e-6)


def test_text_encoders_keep_their_batches():
    texts = ["a b", "c d e", "a c", "e"]
    enc = HashingEncoder()
    parts = list(enc.encode_batches([texts[:3], texts[3:]]))
    assert [len(p) for p in parts] == [3, 1]
    np.testing.assert_array_equal(np.concatenate(parts), enc.encode(texts))


def test_backbone_is_the_same_network_whatever_the_random_state(images):
    folder, data = images
    enc = BackboneEncoder(TINY, batch_size=BATCH)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = enc.encode(as_float(data[:70]))
    assert torch.equal(torch.get_rng_state(), state)  # encoding draws nothing from it
    torch.manual_seed(999)
    np.testing.assert_array_equal(enc.encode(as_float(data[:70])), first)
    # resuming at row 64 builds the same network: its rows are the uninterrupted ones
    tail = np.concatenate(list(enc.encode_batches([as_float(data[64:70])])))
    np.testing.assert_array_equal(tail, first[64:70])
    # a LazyInputs given to encode is read in batches, with the same result
    np.testing.assert_array_equal(enc.encode(lazy(folder)[:70]), first)
    with pytest.raises(ValueError, match=r"must be \(n, channels, height, width\)"):
        list(enc.encode_batches([as_float(data[0])]))


# -- keys ---------------------------------------------------------------------------------


def test_digest_decodes_nothing_and_follows_files_and_rows(images):
    folder, _ = images
    items = lazy(folder)
    digest = items_digest(items)
    assert items.reader.reads == 0
    assert items_digest(lazy(folder)) == digest
    assert items_digest(items[:-1]) != digest
    assert items_digest(items[np.arange(N)[::-1]]) != digest  # order counts
    np.save(folder / "0007.npy", np.zeros(SHAPE, dtype=np.uint8))  # a changed file
    os.utime(folder / "0007.npy", ns=(1, 1))
    assert items_digest(lazy(folder)) != digest


def test_keys_of_texts_and_arrays_are_unchanged():
    # values from the cache before LazyInputs existed: their entries stay valid
    assert items_digest(["a b", "c d"]) == (
        "c938098fc4f0ddcbd613c494316e9f77f496997d321cf8d75e16d73f2b1d8a6f"
    )
    assert items_digest(np.arange(6, dtype=np.float32).reshape(2, 3)) == (
        "c4bf29bc35b235dfa7104503a00698ed8ac3e601c4f1db1f95d3ffd4108ba84d"
    )


# -- resuming -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "checkpoint_rows"), [("float32", BATCH), ("float32", 8192), ("float16", 100)]
)
def test_interrupted_encode_resumes_with_the_remaining_rows(
    images, tmp_path, dtype, checkpoint_rows
):
    folder, _ = images
    cache = EmbeddingCache(tmp_path / "cache", dtype, checkpoint_rows=checkpoint_rows)
    failing = Backbone(TINY, batch_size=BATCH, fail_after=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        cache.get("imgs", lazy(folder, workers=2), failing, "image")
    progress = progress_of(tmp_path / "cache")
    assert progress["rows_done"] == 2 * BATCH and progress["shape"] == [N, 64]
    assert not list((tmp_path / "cache").glob("*-????????????????????.json"))  # no entry yet

    resumed = Backbone(TINY, batch_size=BATCH)
    x = cache.get("imgs", lazy(folder, workers=2), resumed, "image")
    assert resumed.rows == N - 2 * BATCH  # only the rows not done before
    np.testing.assert_array_equal(x, uninterrupted(folder, tmp_path, dtype))
    assert leftovers(tmp_path / "cache") == []
    again = Backbone(TINY, batch_size=BATCH)
    cache.get("imgs", lazy(folder), again, "image")
    assert again.calls == 0


def test_unreadable_file_keeps_the_rows_before_it(images, tmp_path):
    folder, _ = images
    (folder / "0200.npy").write_bytes(b"not an array")
    cache = EmbeddingCache(tmp_path / "cache")
    enc = Backbone(TINY, batch_size=BATCH)
    # no workers: torch takes 5 s per worker to shut a DataLoader down after a worker's error
    with pytest.raises(UnreadableItem, match=r"0200\.npy: cannot be read"):
        cache.get("imgs", lazy(folder), enc, "image")
    assert progress_of(tmp_path / "cache")["rows_done"] == 3 * BATCH  # rows 0..191


def move_partial(cache: EmbeddingCache, source: dict, target: dict) -> None:
    """Put the partial files of entry `source` where those of `target` belong."""
    folder = cache.root
    for suffix in (".partial.npy", ".partial.json"):
        (folder / f"{cache.stem(source)}{suffix}").rename(folder / f"{cache.stem(target)}{suffix}")


@pytest.mark.parametrize(
    "damage", ["other_ident", "garbage_json", "other_shape", "no_array", "rows_beyond"]
)
def test_unusable_partial_is_discarded(images, tmp_path, damage, caplog):
    folder, _ = images
    cache = EmbeddingCache(tmp_path / "cache", checkpoint_rows=BATCH)
    items = lazy(folder)
    digest = items_digest(items)
    seed = 1 if damage == "other_ident" else 0  # another encoder's weights: another entry
    with pytest.raises(RuntimeError):
        cache.get("imgs", items, Backbone(TINY, seed=seed, batch_size=BATCH, fail_after=2), "image")
    ours = cache.describe("imgs", digest, BackboneEncoder(TINY), "image")
    array = cache.root / f"{cache.stem(ours)}.partial.npy"
    progress = cache.root / f"{cache.stem(ours)}.partial.json"
    if damage == "other_ident":
        theirs = cache.describe("imgs", digest, BackboneEncoder(TINY, seed=1), "image")
        move_partial(cache, theirs, ours)
    elif damage == "garbage_json":
        progress.write_text('{"rows_done": 1')
    elif damage == "other_shape":
        np.save(array, np.zeros((N, 32), dtype=np.float32))
    elif damage == "no_array":
        array.unlink()
    else:
        meta = json.loads(progress.read_text())
        progress.write_text(json.dumps({**meta, "rows_done": N + 1}))
    enc = Backbone(TINY, batch_size=BATCH)
    with caplog.at_level(logging.WARNING, logger="labelbench"):
        x = cache.get("imgs", items, enc, "image")
    assert "discarding it" in caplog.text
    if damage == "other_ident":
        assert "encoder_fingerprint=" in caplog.text
    assert enc.rows == N  # encoded from the first row
    np.testing.assert_array_equal(x, uninterrupted(folder, tmp_path))
    assert leftovers(cache.root) == []


KILLED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from test_cache_stream import BATCH, TINY, NpyReader
    from labelbench.data.cache import EmbeddingCache
    from labelbench.data.encoders import BackboneEncoder
    from labelbench.data.lazy import LazyInputs, Streaming

    items = LazyInputs(NpyReader(sys.argv[2], stall_from=200), streaming=Streaming(workers=2))
    cache = EmbeddingCache(sys.argv[3], checkpoint_rows=BATCH)
    cache.get("imgs", items, BackboneEncoder(TINY, batch_size=BATCH), "image")
    """
)


def test_sigkilled_encode_resumes(images, tmp_path):
    """A job killed (SIGKILL, with its DataLoader workers) while it holds the entry: a job
    waiting for it takes over once it is gone and encodes only the remaining rows."""
    folder, _ = images
    cache_dir = tmp_path / "cache"
    job = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(ROOT / "tests"), str(folder), str(cache_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the job and its workers
    )
    resumed = Backbone(TINY, batch_size=BATCH)
    result: dict = {}
    waiter = threading.Thread(
        target=lambda: result.update(
            x=EmbeddingCache(cache_dir).get("imgs", lazy(folder), resumed, "image")
        )
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline and job.poll() is None:
            progress = list(cache_dir.glob("*.partial.json"))
            if progress and json.loads(progress[0].read_text())["rows_done"] == 3 * BATCH:
                break
            time.sleep(0.05)
        assert job.poll() is None, job.communicate()[0]
        assert progress, "the job never checkpointed"
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and resumed.calls == 0, "did not wait for the job's lock"
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.communicate(timeout=30)
    assert job.returncode == -signal.SIGKILL
    waiter.join(timeout=90)
    assert not waiter.is_alive()
    assert resumed.rows == N - 3 * BATCH  # rows 192.. only
    expected = uninterrupted(folder, tmp_path)
    np.testing.assert_allclose(result["x"], expected, rtol=1e-6, atol=1e-6)
    assert leftovers(cache_dir) == []
