"""Text datasets: sentences with labels, embedded once by a frozen encoder
(conf/dataset/encoder/) through the embedding cache, so that every model and strategy
trains on vectors. The task keeps modality "text" (augmentations then pick feature-vector
views; see labelbench.data.encoders on SSL with embeddings)."""

from __future__ import annotations

import csv
import io
import os
from importlib import resources

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.cache import EmbeddingCache
from labelbench.data.encoders import Encoder
from labelbench.data.sources import Source


class TextSource(Source):
    """Base for text sources: `texts()` gives the sentences, labels and class names;
    `arrays()` embeds the sentences with `encoder` (cached under `cache_dir`, see
    labelbench.data.cache), so the inputs are (n, d) float32 with input shape (d,)."""

    modality = "text"
    view = "text"  # which rendering of the items is encoded: the sentences as they are

    def __init__(
        self,
        encoder: Encoder,
        cache_dir: str | os.PathLike | None = None,
        cache_dtype: str = "float32",
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
    ) -> None:
        super().__init__(val_fraction, test_fraction)
        if not isinstance(encoder, Encoder):
            raise ConfigError(
                f"encoder={encoder!r} must be an encoder (a node with a _target_ from"
                " labelbench.data.encoders)"
            )
        if not encoder.accepts(self.modality):
            raise ConfigError(
                f"encoder={encoder.name} cannot read {self.modality}: nothing can train on raw"
                " strings; choose a text encoder (dataset/encoder=minilm)"
            )
        self.encoder = encoder
        self.cache = EmbeddingCache(cache_dir, cache_dtype)

    def texts(self) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
        """Sentences, labels (0..K-1) and class names."""
        raise NotImplementedError

    def arrays(self):
        texts, y, classes = self.texts()
        x = encode_texts(self.name, texts, self.encoder, self.cache, self.view)
        return x, y, classes, (int(x.shape[1]),)

    def tokens(self):
        return token_spec(self.encoder)


def encode_texts(dataset: str, texts, encoder: Encoder, cache: EmbeddingCache, view: str = "text"):
    """The sentences as the encoder renders them: token ids (dataset/encoder=tokens,
    computed each load: tokenizing is cheap), or embeddings through the embedding cache."""
    from labelbench.data.tokens import TokenEncoder

    if isinstance(encoder, TokenEncoder):
        return encoder.encode(texts)
    return cache.get(dataset, texts, encoder, view)


def token_spec(encoder):
    """The TokenSpec of a tokenizing encoder, else None."""
    from labelbench.data.tokens import TokenEncoder

    return encoder.spec() if isinstance(encoder, TokenEncoder) else None


def read_labelled_csv(text: str, origin: str) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Rows of a `text,label` CSV -> sentences, label ids (classes sorted by name), classes."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"text", "label"} <= set(rows[0]):
        raise ConfigError(f"{origin} must be a CSV with columns text,label and at least one row")
    sentences = [r["text"].strip() for r in rows]
    if any(not s for s in sentences):
        raise ConfigError(f"{origin} has an empty sentence")
    values, y = np.unique(np.array([r["label"].strip() for r in rows]), return_inverse=True)
    return sentences, y.astype(np.int64), tuple(str(v) for v in values)


class Topics(TextSource):
    """400 short English sentences, 80 for each of 5 topics (food, health, sport,
    technology, weather), written for labelbench and shipped with it
    (labelbench/data/files/topics.csv). Small and offline: a text task for tests, demos and
    quick comparisons of label-efficient methods on sentence embeddings."""

    name = "topics"
    FILE = "files/topics.csv"

    def texts(self):
        text = resources.files("labelbench.data").joinpath(self.FILE).read_text("utf-8")
        return read_labelled_csv(text, f"labelbench/data/{self.FILE}")
