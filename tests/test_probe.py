"""strategy=probe: a vector strategy on a frozen encoder's embeddings, alone and as the
active-learning proxy, on real data (digits, topics with the packaged MiniLM)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from labelbench.config import ConfigError, run_key
from labelbench.data.cache import EmbeddingCache
from labelbench.data.encoders import NoEncoder
from labelbench.run import compose, prepare, run
from labelbench.strategies.logreg import LogReg
from labelbench.strategies.probe import Embeddings, FrozenProbe

TINY_VIT = (
    "{image_size: 8, patch_size: 4, hidden_size: 16, num_hidden_layers: 1,"
    " num_attention_heads: 2, intermediate_size: 32}"
)
# topics as token ids of MiniLM's tokenizer (its sentences are short: 64 ids are plenty).
TOPICS = ["dataset=topics", "dataset/encoder=tokens", "dataset.encoder.max_length=64"]


def composed(tmp_path, *overrides: str):
    return compose([*overrides, "logger=none", f"paths.results_dir={tmp_path / 'results'}"])


@pytest.fixture(scope="module")
def topics_cache(tmp_path_factory):
    """One embedding cache for the topics tests that do not count encodings."""
    return tmp_path_factory.mktemp("cache")


def test_probe_on_topics_token_ids_with_minilm(tmp_path, topics_cache):
    cfg, choices = composed(
        tmp_path,
        *TOPICS,
        "strategy=probe",
        "budget=per_class",
        "budget.per_class=10",
        f"dataset.cache_dir={topics_cache}",
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["test/acc"] > 0.8
    assert record.metrics["fit/embedding_dim"] == 384
    assert record.choices["strategy"] == "probe" and record.choices["model"] == "–"
    assert len(list(topics_cache.glob("topics-hf-probe-*.json"))) == 1  # the dataset's cache


def test_predictions_map_rows_back_to_the_embeddings(tmp_path, topics_cache):
    """Rows of the task's inputs (any subset, any order) are looked up, not re-encoded;
    other rows are encoded through the cache; a second fit reuses the same embeddings."""
    cfg, _ = composed(
        tmp_path, *TOPICS, "strategy=probe", "budget.total=30", f"dataset.cache_dir={topics_cache}"
    )
    prepared = prepare(cfg, run_key(cfg))
    probe, task = prepared.parts.strategy, prepared.task
    view = task.view()
    first = probe.fit(prepared.pool, view, None, None, seed=0)
    second = probe.fit(prepared.pool, task.view(), None, None, seed=0)
    assert second.embeddings is first.embeddings  # computed once (in check), then reused
    table = first.embeddings.table
    test = task.split.test
    rows = np.concatenate([test[::-1], prepared.pool.indices[:3]])
    np.testing.assert_array_equal(first.embeddings.positions(task.x[rows]), rows)
    np.testing.assert_array_equal(first.embed(task.x[rows]), table[rows])
    proba = first.predict_proba(task.x[test])
    np.testing.assert_allclose(proba, first.head.predict_proba(table[test]))
    other = task.x[:2].copy()
    other[:, 1] = other[::-1, 1]  # first tokens swapped: rows that are not in the task
    assert first.embeddings.positions(other) is None
    encoded = first.embed(other)
    np.testing.assert_allclose(encoded, probe.encoder.encode(other), atol=1e-5)
    assert len(list(topics_cache.glob("topics-hf-probe-*.json"))) == 2


def test_active_learning_with_the_probe_embeds_the_pool_once(tmp_path, caplog):
    cfg, choices = composed(
        tmp_path,
        *TOPICS,
        "strategy=active",
        "+strategy@strategy.proxy=probe",
        "strategy@strategy.inner=probe",
        "strategy.initial=20",
        "strategy.query_size=10",
        "budget.total=40",
        f"dataset.cache_dir={tmp_path / 'cache'}",
    )
    with caplog.at_level(logging.INFO, logger="labelbench"):
        record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert [p["labels"] for p in record.curve] == [20, 30, 40]
    assert record.metrics["test/acc"] > 0.8
    # Check, three inner fits, two proxy fits and every prediction: one encoding in all.
    assert caplog.text.count("encoding 400 items of topics") == 1


def test_probe_without_an_encoder_is_the_head_on_the_inputs(tmp_path):
    """encoder none on digits: logistic regression on the pixels, exactly strategy=logreg."""
    common = ("dataset=digits", "budget=per_class", "budget.per_class=10")
    cfg, choices = composed(
        tmp_path, *common, "strategy=probe", "dataset/encoder@strategy.encoder=none"
    )
    probe = run(cfg, choices)
    cfg, choices = composed(tmp_path, *common, "strategy=logreg")
    logreg = run(cfg, choices)
    assert probe.status == logreg.status == "ok"
    assert probe.metrics["test/acc"] == logreg.metrics["test/acc"] > 0.8
    assert probe.metrics["fit/embedding_dim"] == 64


def test_probe_on_images_with_a_random_vit(tmp_path):
    """Digits (stored flat, input shape (1, 8, 8)) through a tiny random-init ViT: random
    transformer features, still far above chance (0.1)."""
    cfg, choices = composed(
        tmp_path,
        "dataset=digits",
        "strategy=probe",
        "strategy.encoder.path=vit",
        "strategy.encoder.pretrained=false",
        f"+strategy.encoder.config={TINY_VIT}",
        "strategy.encoder.pooling=mean",
        "budget=per_class",
        "budget.per_class=10",
        f"strategy.cache_dir={tmp_path / 'cache'}",
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["test/acc"] > 0.3
    assert record.metrics["fit/embedding_dim"] == 16
    assert len(list((tmp_path / "cache").glob("digits-hf-probe-*.npy"))) == 1


def test_rows_of_images_are_found_in_any_order(tmp_path):
    x = np.random.default_rng(0).random((20, 3, 4, 4), dtype=np.float32)
    table = Embeddings("toy", x, NoEncoder(), EmbeddingCache(tmp_path), "probe")
    np.testing.assert_array_equal(table.table, x.reshape(20, -1))
    rows = np.array([7, 3, 3, 19])
    np.testing.assert_array_equal(table.positions(x[rows]), rows)
    changed = x[rows].copy()
    changed[1, 0, 0, 0] += 1e-3
    assert table.positions(changed) is None
    assert table.positions(x[rows].astype(np.float64)) is None  # another dtype: encoded
    np.testing.assert_allclose(table(changed), changed.reshape(4, -1))


def test_refusals(tmp_path):
    def prepared(*overrides):
        cfg, _ = composed(tmp_path, *overrides, f"strategy.cache_dir={tmp_path / 'cache'}")
        return prepare(cfg, run_key(cfg))

    with pytest.raises(ConfigError, match="gives token ids, and a probe on token ids"):
        prepared(*TOPICS, "strategy=probe", "dataset/encoder@strategy.encoder=none")
    with pytest.raises(ConfigError, match="encoder=hf cannot read the images of dataset digits"):
        prepared("dataset=digits", "strategy=probe")
    with pytest.raises(ConfigError, match="cannot read the feature vectors"):
        prepared("dataset=synthetic", "dataset.n_samples=200", "strategy=probe")
    with pytest.raises(ConfigError, match="must be a strategy"):
        FrozenProbe(head="logreg", encoder=NoEncoder())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be an encoder"):
        FrozenProbe(head=LogReg(), encoder="hf")


def test_trains_the_run_model_only_when_the_head_does():
    logreg = {"head": {"_target_": "labelbench.strategies.logreg.LogReg"}}
    supervised = {"head": {"_target_": "labelbench.strategies.supervised.Supervised"}}
    assert FrozenProbe.trains_network(logreg) is False
    assert FrozenProbe.trains_network(supervised) is True
