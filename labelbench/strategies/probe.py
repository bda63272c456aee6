"""A probe on frozen embeddings (`strategy=probe`): the task's inputs are embedded once by a
frozen encoder (through the embedding cache) and a vector strategy, logistic regression by
default, is fitted on the embeddings of the revealed items.

This is LabelBench's cheap proxy (Zhang et al. 2024, "LabelBench: A Comprehensive Framework
for Benchmarking Adaptive Label-Efficient Learning"; EfficientTraining/LabelBench,
LabelBench/trainer/trainer_impl/sklearn_passive_trainer.py: scikit-learn LogisticRegression
on a pretrained model's embeddings), used there to pick active-learning queries at a
fraction of the cost of fine-tuning (`strategy=active +strategy@strategy.proxy=probe`).
Deviations: the encoder is any model=hf backbone (LabelBench: CLIP, CoCa, DINOv2 image
towers), its pooled features are not normalised, and the head is any labelbench strategy
on vectors (LabelBench also trains linear and shallow heads with Adam).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.cache import EmbeddingCache
from labelbench.data.encoders import check_encoder
from labelbench.data.lazy import is_lazy
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.strategies.base import Predictor, Strategy


def _identity(encoder: Any) -> bool:
    """Whether `encoder` is dataset/encoder=none: the inputs as they are."""
    return getattr(encoder, "name", None) == "none"


def _reads(task: TaskView) -> str:
    """What the task's inputs are, as an encoder's modality: token ids are `text`, a text
    task's embeddings (a dataset encoder ran already) and feature vectors `vector`."""
    if task.tokens is not None:
        return "text"
    return "image" if task.modality == "image" else "vector"


class Embeddings:
    """The frozen embeddings of every row of one task's inputs (`x`), and the map from
    other arrays back to those rows, so the pool is embedded once whatever the round."""

    def __init__(
        self,
        name: str,
        x: Any,
        encoder: Any,
        cache: EmbeddingCache,
        view: str,
        item_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.name, self.x, self.encoder, self.cache, self.view = name, x, encoder, cache, view
        self.item_shape = item_shape  # images: rows stored flat are encoded in this shape
        self.table = self.encode(x)
        self._rows: dict[bytes, int] | None = None  # row digest -> row, made when first asked

    def encode(self, x: Any) -> np.ndarray:
        """Embeddings of `x` (float32, one row each): the inputs flattened for the identity
        encoder, else the encoder's output through the embedding cache."""
        if _identity(self.encoder):
            return np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if self.item_shape is not None and not is_lazy(x):
            x = np.asarray(x)
            x = x.reshape(len(x), *self.item_shape)  # digits' 64 pixels as (1, 8, 8)
        return self.cache.get(self.name, x, self.encoder, view=self.view)

    def __call__(self, x: Any) -> np.ndarray:
        """Embeddings of `x`: looked up where its rows are rows of the task's inputs (any
        subset, any order), else encoded (through the cache)."""
        rows = self.positions(x)
        if rows is not None:
            return self.table[rows]
        return self.encode(x)

    def positions(self, x: Any) -> np.ndarray | None:
        """Rows of the task's inputs that `x` consists of, or None where any row is not one."""
        if x is self.x:
            return np.arange(len(self.x))
        if is_lazy(x) or is_lazy(self.x):
            if not (is_lazy(x) and is_lazy(self.x) and x.reader is self.x.reader):
                return None
            where = np.full(len(self.x.reader), -1, dtype=np.int64)
            where[self.x.rows] = np.arange(len(self.x.rows))
            found = where[x.rows]
            return found if (found >= 0).all() else None
        x = np.asarray(x)
        if x.dtype != self.x.dtype or x.shape[1:] != self.x.shape[1:]:
            return None
        if self._rows is None:
            self._rows = {}
            for i, key in enumerate(_digests(self.x)):
                self._rows.setdefault(key, i)
        found = [self._rows.get(key) for key in _digests(x)]
        if any(i is None for i in found):
            return None
        return np.asarray(found, dtype=np.int64)


def _digests(x: np.ndarray) -> list[bytes]:
    """One 16-byte hash per row."""
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]


class ProbePredictor:
    """The head's predictor behind the frozen encoder: `predict_proba(x)` and `embed(x)`
    take rows of the task's inputs (token ids, images or vectors)."""

    def __init__(self, head: Predictor, embeddings: Embeddings, fit_info: dict[str, float]):
        self.head, self.embeddings, self.fit_info = head, embeddings, fit_info
        last = getattr(head, "last", None)  # a network head's final weights, where it kept them
        if last is not None:
            self.last = ProbePredictor(last, embeddings, fit_info)

    def embed(self, x: Any) -> np.ndarray:
        """The frozen embeddings of `x` (float32, (len(x), d))."""
        return np.asarray(self.embeddings(x), dtype=np.float32)

    def predict_proba(self, x: Any) -> np.ndarray:
        return self.head.predict_proba(self.embed(x))


class FrozenProbe(Strategy):
    """`head` (a strategy on feature vectors: logreg, knn, supervised with an mlp ...) fitted
    on `encoder`'s frozen embeddings of the task's inputs.

    encoder: an Encoder node (conf/dataset/encoder/): `hf` for token ids (dataset/encoder=
    tokens, with the encoder's own tokenizer) or images, `none` for a task whose inputs are
    already vectors (a text dataset's embeddings, tabular features, digits' pixels). The
    embeddings of every input are computed once per process (and kept in the embedding
    cache, under `cache_dir` / `cache_dtype` as a dataset's) and reused every round of
    active learning. The head sees the revealed labels of the pool only, as it would on
    the inputs themselves."""

    view = "probe"  # the embedding cache entry's view name
    uses_model = False  # unless the head trains the run's model (trains_network)
    gives_embeddings = True  # its predictor's `embed` gives the frozen embeddings

    @classmethod
    def trains_network(cls, config: Mapping[str, Any]) -> bool:
        """Whether the head trains the run's `model`."""
        from hydra.utils import get_class

        head = config.get("head")
        return bool(head) and bool(get_class(head["_target_"]).trains_network(head))

    def __init__(
        self,
        head: Strategy,
        encoder: Any,
        cache_dir: str | None = None,
        cache_dtype: str = "float32",
    ) -> None:
        if not isinstance(head, Strategy):
            raise ConfigError(f"head={head!r} must be a strategy (a node with a _target_)")
        if getattr(head, "runs_rounds", False):
            raise ConfigError("head is active learning; choose a strategy that fits once (logreg)")
        check_encoder(encoder)
        if encoder is None:
            raise ConfigError("encoder=null: give an encoder node (dataset/encoder: hf, none ...)")
        self.head, self.encoder = head, encoder
        self.accepts = head.accepts
        self.cache = EmbeddingCache(cache_dir, cache_dtype)
        self._embeddings: Embeddings | None = None

    # -- embeddings --------------------------------------------------------------------------
    def check_encoder(self, task: TaskView) -> None:
        """Refuse (ConfigError) an encoder that cannot read the task's inputs."""
        reads = _reads(task)
        name = getattr(self.encoder, "name", type(self.encoder).__name__)
        if _identity(self.encoder):
            if task.tokens is not None:
                raise ConfigError(
                    f"encoder={name}: dataset {task.name} gives token ids, and a probe on"
                    " token ids as numbers learns nothing; give the probe a text encoder"
                    " (its encoder: hf, with the dataset's tokenizer)"
                )
            return
        accepts = getattr(self.encoder, "accepts", None)
        if callable(accepts) and not accepts(reads):
            what = {
                "text": "token ids",
                "image": "images",
                "vector": "feature vectors (already embedded)",
            }[reads]
            raise ConfigError(
                f"encoder={name} cannot read the {what} of dataset {task.name}; use encoder"
                f" none for vectors, hf with a text model for token ids, hf with an image"
                " model for images"
            )
        check_tokens = getattr(self.encoder, "check_tokens", None)
        if task.tokens is not None and callable(check_tokens):
            check_tokens(task.tokens)

    def embeddings(self, task: TaskView) -> Embeddings:
        """The frozen embeddings of the task's inputs: computed on the first call for these
        inputs (the same `task.x` object), then the same ones."""
        if self._embeddings is None or self._embeddings.x is not task.x:
            self.check_encoder(task)
            shape = tuple(task.input_shape) if task.modality == "image" else None
            self._embeddings = Embeddings(
                task.name, task.x, self.encoder, self.cache, self.view, shape
            )
        return self._embeddings

    def embedded(self, task: TaskView) -> TaskView:
        """The task as the head sees it: the embeddings as inputs (vectors, no tokens)."""
        table = self.embeddings(task).table
        return dataclasses.replace(
            task,
            x=table,
            modality="vector",
            input_shape=(int(table.shape[1]),),
            flip_invariant=False,
            tokens=None,
        )

    # -- the strategy ------------------------------------------------------------------------
    def check(self, pool: LabelPool, task: TaskView) -> None:
        """The encoder against the inputs, then the head against the embeddings (which are
        computed here, once, so a head that takes statistics of its inputs sees them)."""
        super().check(pool, task)
        self.check_encoder(task)
        self.head.check(pool, self.embedded(task))

    def check_model(self, model: Any) -> None:
        self.head.check_model(model)

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> ProbePredictor:
        embeddings = self.embeddings(task)
        head = self.head.fit(
            pool, self.embedded(task), model, trainer, seed=seed, checkpoint=checkpoint
        )
        info = {**head.fit_info, "embedding_dim": float(embeddings.table.shape[1])}
        return ProbePredictor(head, embeddings, info)
