"""Text data through frozen encoders: the shipped topics dataset, the embedding cache (hits,
concurrent writers, corruption), the linear head and the one-line refusals."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ROOT, run_here
from labelbench.config import ConfigError
from labelbench.data.cache import ENV_VAR, EmbeddingCache, cache_root
from labelbench.data.encoders import HashingEncoder, NoEncoder, SentenceEncoder
from labelbench.data.text import Topics
from labelbench.models.linear import Linear
from labelbench.run import run

TOPICS = ("food", "health", "sport", "technology", "weather")


class Counting(HashingEncoder):
    """A real (hashing) encoder that counts its calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def encode(self, items):
        self.calls += 1
        return super().encode(items)


def entry_files(folder):
    (meta,) = folder.glob("*.json")
    return meta, folder / json.loads(meta.read_text())["file"]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private cache for the test (via the environment, as users set it)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENV_VAR, str(folder))
    return folder


@pytest.fixture(scope="module")
def minilm_cache(tmp_path_factory):
    """The real MiniLM embeddings of topics, encoded once for the module."""
    folder = tmp_path_factory.mktemp("minilm-cache")
    task = Topics(SentenceEncoder(), cache_dir=folder).load(0)
    return folder, task


# -- the dataset ------------------------------------------------------------------------


def test_topics_sentences():
    texts, y, classes = Topics(HashingEncoder()).texts()
    assert classes == TOPICS
    assert len(texts) == 400 and len(set(texts)) == 400  # no duplicates
    assert np.bincount(y).tolist() == [80] * 5
    assert all(3 <= len(t.split()) <= 25 for t in texts)


def test_topics_with_minilm(minilm_cache):
    _, task = minilm_cache
    assert task.name == "topics" and task.modality == "text"
    assert task.x.shape == (400, 384) and task.x.dtype == np.float32
    assert task.input_shape == (384,)
    assert task.classes == TOPICS
    np.testing.assert_allclose(np.linalg.norm(task.x, axis=1), 1.0, atol=1e-4)
    assert sum(map(len, (task.split.pool, task.split.val, task.split.test))) == 400
    assert not task.x.flags.writeable


def test_minilm_cache_hit_does_not_encode(minilm_cache, monkeypatch):
    folder, first = minilm_cache

    def refuse(self, items):
        raise AssertionError("the encoder ran on a cache hit")

    monkeypatch.setattr(SentenceEncoder, "encode", refuse)
    again = Topics(SentenceEncoder(), cache_dir=folder).load(1)
    np.testing.assert_array_equal(again.x, first.x)
    assert again.y.tolist() == first.y.tolist()


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert cache_root() == cache_root(None).expanduser()
    assert str(cache_root()).endswith(".cache/labelbench/embeddings")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"


# -- the cache --------------------------------------------------------------------------


def test_cache_hit_identical_without_encoding(cache_dir):
    enc = Counting()
    a = Topics(enc).load(0)
    assert enc.calls == 1
    b = Topics(enc).load(3)
    assert enc.calls == 1  # served from the cache
    np.testing.assert_array_equal(a.x, b.x)
    assert a.x.shape == (400, 256) and a.input_shape == (256,)
    meta, array = entry_files(cache_dir)
    assert json.loads(meta.read_text())["shape"] == [400, 256]
    assert isinstance(np.load(array, mmap_mode="r"), np.memmap)


def test_cache_key_parts_miss(cache_dir):
    enc = Counting()
    cache = EmbeddingCache()
    cache.get("toy", ["a b", "c d"], enc)
    cache.get("toy", ["a b", "c d"], enc)
    assert enc.calls == 1
    cache.get("toy", ["c d", "a b"], enc)  # other items (order counts)
    cache.get("other", ["a b", "c d"], enc)  # other dataset
    cache.get("toy", ["a b", "c d"], enc, view="title")  # other view
    assert enc.calls == 4
    bigger = Counting(n_features=32)  # other weights / settings: another fingerprint
    assert cache.get("toy", ["a b", "c d"], bigger).shape == (2, 32)
    assert bigger.calls == 1
    assert len(list(cache_dir.glob("*.json"))) == 5


def test_float16_storage_is_the_same_every_run(cache_dir):
    enc = Counting()
    first = Topics(enc, cache_dtype="float16").load(0).x
    again = Topics(enc, cache_dtype="float16").load(0).x
    assert enc.calls == 1 and first.dtype == again.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, first.astype(np.float16).astype(np.float32))
    _, array = entry_files(cache_dir)
    assert np.load(array).dtype == np.float16


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage_json", "wrong_shape", "no_array"])
def test_corrupt_cache_is_rebuilt(cache_dir, damage, caplog):
    enc = Counting()
    good = Topics(enc).load(0).x.copy()
    meta, array = entry_files(cache_dir)
    if damage == "truncate":
        array.write_bytes(array.read_bytes()[: array.stat().st_size // 2])
    elif damage == "flip":  # same size, one byte changed: only the checksum tells
        data = bytearray(array.read_bytes())
        data[-7] ^= 0xFF
        array.write_bytes(bytes(data))
    elif damage == "garbage_json":
        meta.write_text('{"shape": [400')
    elif damage == "wrong_shape":
        np.save(array, np.zeros((399, 256), dtype=np.float32))
    else:
        array.unlink()
    with caplog.at_level(logging.WARNING, logger="labelbench"):
        rebuilt = Topics(enc).load(0).x
    assert enc.calls == 2, "a damaged entry was trusted"
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(rebuilt, good)
    Topics(enc).load(0)
    assert enc.calls == 2  # the rebuilt entry is good again


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from labelbench.data.encoders import HashingEncoder
    from labelbench.data.text import Topics

    me, other, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

    class Barrier(HashingEncoder):
        def encode(self, items):  # both processes encode, then both write at once
            me.touch()
            deadline = time.time() + 60
            while not other.exists() and time.time() < deadline:
                time.sleep(0.01)
            x = super().encode(items)
            return x + np.float32(float(sys.argv[4]))  # writers' bytes may differ a little

    task = Topics(Barrier()).load(0)
    np.save(out, np.asarray(task.x))
    """
)


def test_concurrent_writers_leave_a_valid_cache(cache_dir, tmp_path):
    a, b = tmp_path / "a.ready", tmp_path / "b.ready"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(me), str(other), str(tmp_path / f"{i}.npy"), eps],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, (me, other, eps) in enumerate([(a, b, "0"), (b, a, "1e-7")])
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    assert not list(cache_dir.glob(".*.tmp")), "a temp file was left behind"
    enc = Counting()
    x = Topics(enc).load(0).x
    assert enc.calls == 0, "the entry the writers left was not valid"
    # the entry is one of the two writers' results, each whole
    seen = [np.load(tmp_path / f"{i}.npy") for i in range(2)]
    assert any(np.array_equal(x, s) for s in seen)
    np.testing.assert_allclose(x, seen[0], atol=1e-6)


# -- refusals and the linear head -------------------------------------------------------


def test_text_with_encoder_none_is_refused():
    with pytest.raises(ConfigError, match=r"^encoder=none cannot read text: nothing can train"):
        Topics(NoEncoder())


def test_text_with_encoder_none_is_refused_by_the_run(compose_fast, cache_dir):
    cfg, choices = compose_fast("dataset=topics", "dataset/encoder=none", "logger=none")
    with pytest.raises(ConfigError, match=r"^dataset\.encoder=none cannot read text") as e:
        run(cfg, choices)
    assert "\n" not in str(e.value)


def test_bad_cache_dtype_is_refused():
    with pytest.raises(
        ConfigError, match=r"^cache_dtype='float64' is not one of float32, float16$"
    ):
        Topics(HashingEncoder(), cache_dtype="float64")


def test_linear_head():
    head = Linear((384,), 5)
    x = torch.randn(7, 384)
    assert head(x).shape == (7, 5)
    assert torch.equal(head.embed(x), x)
    assert Linear((384,), 5, in_features=384)(x).shape == (7, 5)
    assert sum(p.numel() for p in head.parameters()) == 384 * 5 + 5
    with pytest.raises(ConfigError, match=r"^in_features=512 does not match the input size 384"):
        Linear((384,), 5, in_features=512)
    with pytest.raises(ConfigError, match=r"^in_features=0 must be a positive integer"):
        Linear((384,), 5, in_features=0)


def test_head_size_mismatch_refused_by_the_cli(tmp_path, minilm_cache):
    folder, _ = minilm_cache
    proc = run_here(
        "labelbench-run",
        "dataset=topics",
        f"dataset.cache_dir={folder}",
        "model=linear",
        "model.in_features=512",
        "logger=none",
        f"paths.results_dir={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert lines == [
        "labelbench-run: error: model.in_features=512 does not match the input size 384 (the"
        " dataset's encoder output, shape (384,)); set model.in_features=384 or null"
    ], proc.stderr
    assert not (tmp_path / "results" / "runs").exists()


# -- end to end -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["supervised", "fixmatch"])
def test_topics_minilm_linear_end_to_end(compose_fast, minilm_cache, strategy):
    folder, _ = minilm_cache
    cfg, choices = compose_fast(
        "dataset=topics",
        f"dataset.cache_dir={folder}",
        "model=linear",
        "budget=per_class",
        "budget.per_class=10",
        f"strategy={strategy}",
        "strategy.max_steps=60",
        "strategy.eval_every=20",
        "strategy.optimizer.lr=0.01",
        "logger=none",
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices["dataset"] == "topics" and record.choices["model"] == "linear"
    assert record.labels["count"] == 50
    assert record.metrics["test/acc"] > 0.5  # chance is 0.2
    assert record.config["dataset"]["encoder"]["name"] == "minilm"
