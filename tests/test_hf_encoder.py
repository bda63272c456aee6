"""dataset/encoder=hf: a frozen transformers encoder, on the packaged MiniLM (text) and a tiny
ViT saved to disk (images), through the embedding cache."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from labelbench.config import ConfigError
from labelbench.data.cache import EmbeddingCache
from labelbench.data.hf_encoder import HFEncoder
from labelbench.data.task import TokenSpec

SENTENCES = [
    "The striker scored twice in the second half.",
    "Heavy rain and strong winds are expected tomorrow.",
    "A balanced diet keeps your heart healthy.",
    "The new phone has a faster chip and a brighter screen.",
    "hello",
]
TINY_VIT = dict(
    image_size=8,
    patch_size=4,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
)


@pytest.fixture(scope="module")
def minilm():
    return HFEncoder()  # path: minilm, the packaged all-MiniLM-L6-v2


def save_vit(folder, seed: int = 0):
    """A tiny random ViT in save_pretrained layout under `folder`; returns the model."""
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    model = ViTModel(ViTConfig(**TINY_VIT), add_pooling_layer=False)
    model.save_pretrained(folder)
    return model


@pytest.fixture
def vit_folder(tmp_path):
    folder = tmp_path / "vit"
    save_vit(folder)
    return folder


def images(n: int = 6, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)


def direct_vit(folder, x: np.ndarray) -> np.ndarray:
    """ViT's CLS features of `x`, computed with transformers alone (ViT's 0.5/0.5 scaling)."""
    import torch
    from transformers import ViTModel

    model = ViTModel.from_pretrained(folder, add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = model(pixel_values=(torch.from_numpy(x) - 0.5) / 0.5).last_hidden_state
    return hidden[:, 0].numpy()


# --- text ----------------------------------------------------------------------------------


def test_minilm_is_sentence_transformers_mean_pooling(minilm):
    """The same vectors as sentence-transformers' all-MiniLM-L6-v2 without its Normalize
    module (Transformer + mean Pooling): what the model computes before normalising."""
    from sentence_transformers import SentenceTransformer

    full = SentenceTransformer(str(minilm.folder), device="cpu", local_files_only=True)
    pooled = SentenceTransformer(modules=[full[0], full[1]], device="cpu")
    want = pooled.encode(SENTENCES, convert_to_numpy=True, show_progress_bar=False)
    got = minilm.encode(SENTENCES)
    assert got.shape == (5, 384) and got.dtype == np.float32
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() > 0.99
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)  # not normalised


def test_token_ids_give_the_vectors_of_the_strings(minilm):
    from labelbench.data.tokens import TokenEncoder

    from_strings = minilm.encode(SENTENCES)
    ids = minilm.tokenizer.encode(SENTENCES)
    assert ids.dtype == np.int64 and ids.shape == (5, 128)
    np.testing.assert_array_equal(minilm.encode(ids), from_strings)
    short = TokenEncoder("minilm", max_length=24).encode(SENTENCES)  # less padding, same text
    np.testing.assert_allclose(minilm.encode(short), from_strings, atol=1e-5)
    np.testing.assert_allclose(minilm.encode(ids[[4, 0]]), from_strings[[4, 0]], atol=1e-5)


def test_modalities_and_token_spec_checks(minilm):
    assert minilm.accepts("text") and not minilm.accepts("image")
    assert minilm.modality == "text" and minilm.pooling == "mean"
    own = minilm.tokenizer.spec()
    minilm.check_tokens(own)  # its own tokenizer's ids
    other = TokenSpec(**{**own.__dict__, "fingerprint": "another-vocabulary"})
    with pytest.raises(ConfigError, match="not the tokenizer of encoder path=minilm"):
        minilm.check_tokens(other)
    with pytest.raises(ConfigError, match="max_length=600 exceeds the 512 positions"):
        minilm.check_tokens(TokenSpec(**{**own.__dict__, "max_length": 600}))


# --- images --------------------------------------------------------------------------------


def test_image_encoder_from_a_folder_is_vits_cls_features(vit_folder):
    enc = HFEncoder(path=str(vit_folder), batch_size=4)
    assert enc.accepts("image") and not enc.accepts("text") and enc.pooling == "cls"
    x = images(6)
    got = enc.encode(x)
    assert got.shape == (6, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, direct_vit(vit_folder, x), atol=1e-5)
    # Larger images are resized to the model's 8x8 inside; grey ones repeated to 3 channels.
    assert enc.encode(images(3, size=16)).shape == (3, 16)
    grey = images(2)[:, :1]
    np.testing.assert_allclose(enc.encode(grey), enc.encode(np.repeat(grey, 3, 1)), atol=1e-6)


def test_random_init_is_seeded_and_keyed_by_config_and_seed(vit_folder):
    x = images(4)
    a = HFEncoder(path=str(vit_folder), pretrained=False, seed=1)
    b = HFEncoder(path="vit", pretrained=False, config=TINY_VIT, seed=1)  # a model type
    c = HFEncoder(path="vit", pretrained=False, config=TINY_VIT, seed=2)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))  # same architecture and seed
    shutil.copytree(vit_folder, vit_folder.parent / "moved")
    moved = HFEncoder(path=str(vit_folder.parent / "moved"), pretrained=False, seed=1)
    assert moved.fingerprint() == a.fingerprint()  # where the config lies is not part of it
    assert c.fingerprint() != b.fingerprint()
    assert not np.allclose(c.encode(x), b.encode(x))
    pretrained = HFEncoder(path=str(vit_folder))
    assert pretrained.fingerprint() != a.fingerprint()
    assert not np.allclose(pretrained.encode(x), a.encode(x))
    assert HFEncoder(path=str(vit_folder), pooling="mean").fingerprint() != (
        pretrained.fingerprint()
    )


def test_cache_is_keyed_by_the_weights(vit_folder, tmp_path, caplog):
    """Same weights: the entry is read back. New weights in the folder: encoded anew."""
    cache = EmbeddingCache(tmp_path / "cache")
    enc = HFEncoder(path=str(vit_folder))
    x = images(5)
    with caplog.at_level(logging.INFO, logger="labelbench"):
        first = cache.get("toy", x, enc, view="image")
        again = cache.get("toy", x, HFEncoder(path=str(vit_folder)), view="image")
    assert caplog.text.count("encoding 5 items of toy") == 1
    np.testing.assert_array_equal(first, again)
    before = enc.fingerprint()
    save_vit(vit_folder, seed=1)  # other weights, same architecture, same file names
    assert enc.fingerprint() != before
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="labelbench"):
        changed = cache.get("toy", x, enc, view="image")
    assert caplog.text.count("encoding 5 items of toy") == 1
    assert not np.allclose(changed, first)
    np.testing.assert_allclose(changed, direct_vit(vit_folder, x), atol=1e-5)
    assert len(list((tmp_path / "cache").glob("toy-hf-image-*.json"))) == 2


def test_folder_of_images_is_embedded_by_an_image_model(tmp_path, vit_folder):
    """dataset=folder dataset/encoder=hf: streamed from disk, 16x16 files resized to 8x8."""
    from labelbench.data.folder import Folder
    from labelbench.data.standin import write_image_folder

    root, _, _ = write_image_folder(tmp_path / "data", classes=3, per_class=4)
    enc = HFEncoder(path=str(vit_folder), batch_size=5)
    task = Folder(root=str(root), encoder=enc, cache_dir=str(tmp_path / "cache")).load(0)
    assert task.x.shape == (12, 16) and task.modality == "vector" and task.input_shape == (16,)
    raw = Folder(root=str(root)).load(0).x
    np.testing.assert_allclose(task.x, enc.encode(np.asarray(raw)), atol=1e-5)
    with pytest.raises(ConfigError, match="cannot read images"):
        Folder(root=str(root), encoder=HFEncoder())


def test_topics_with_the_hf_encoder_runs_end_to_end(tmp_path):
    """dataset=topics dataset/encoder=hf strategy=logreg, as labelbench-run composes it."""
    from labelbench.run import compose, run

    cfg, choices = compose(
        [
            "dataset=topics",
            "dataset/encoder=hf",
            "strategy=logreg",
            "budget=per_class",
            "budget.per_class=10",
            "logger=none",
            f"dataset.cache_dir={tmp_path / 'cache'}",
            f"paths.results_dir={tmp_path / 'results'}",
        ]
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["test/acc"] > 0.8
    assert record.choices["dataset"] == "topics[encoder=hf]"
    assert len(list((tmp_path / "cache").glob("topics-hf-text-*.npy"))) == 1


# --- refusals ------------------------------------------------------------------------------


def test_refusals(tmp_path, vit_folder, minilm):
    with pytest.raises(ConfigError, match="is not a folder"):
        HFEncoder(path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"without config\.json"):
        HFEncoder(path=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="pooling='max' is not one of"):
        HFEncoder(pooling="max")
    with pytest.raises(ConfigError, match="max_length=1000 exceeds the 512 positions"):
        HFEncoder(max_length=1000)
    with pytest.raises(ConfigError, match=r"reads text .*got images"):
        minilm.encode(images(2))
    vit = HFEncoder(path=str(vit_folder))
    with pytest.raises(ConfigError, match="reads images; got text"):
        vit.encode(["a sentence"])
    with pytest.raises(ConfigError, match="reads images"):
        vit.encode(np.zeros((2, 16), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token ids must lie in 0\.\.30521"):
        minilm.encode(np.full((1, 4), 40000, dtype=np.int64))
    text_model_on_images = HFEncoder(path="bert", pretrained=False, config={"num_hidden_layers": 1})
    assert not text_model_on_images.accepts("image")
    with pytest.raises(ConfigError, match="path=bert is a model type, with no tokenizer"):
        text_model_on_images.encode(["no tokenizer for a bare model type"])
