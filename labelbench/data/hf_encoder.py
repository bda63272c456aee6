"""A Hugging Face transformers encoder, frozen (`dataset/encoder=hf`): any model=hf backbone
(labelbench.models.hf: a ViT-like image encoder or a BERT-like text encoder) whose pooled
features (`HFBackbone.embed`) become each item's embedding, through the embedding cache.

Text is tokenized with the model's own tokenizer (labelbench.data.tokens.TokenEncoder) and
mean-pooled over the real tokens by default, which is what sentence-transformers'
all-MiniLM-L6-v2 computes before it normalises (its modules.json: Transformer, Pooling
with mean tokens, Normalize); the embeddings here are not normalised, and sentences are cut
at `max_length` tokens (sentence-transformers: max_seq_length 256). Token ids made
elsewhere (`dataset/encoder=tokens`) are read as they are. Images ((n, C, H, W) in [0, 1])
are resized and normalised inside the network, as model=hf fine-tunes on them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_int
from labelbench.data.encoders import Encoder, _as_items, weights_fingerprint

# Config entries that say where a config came from, not what the network computes.
_PROVENANCE = ("_name_or_path", "architectures", "transformers_version")


def _plain(config: Any) -> dict[str, Any]:
    """Config overrides as a plain dict (Hydra hands over a DictConfig)."""
    if config is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    if not isinstance(config, dict):
        raise ConfigError(f"config={config!r} must be a mapping of config.json settings")
    return {str(k): v for k, v in config.items()}


class HFEncoder(Encoder):
    """A frozen transformers encoder from a local folder, a hub name in the Hugging Face
    cache, or the packaged all-MiniLM-L6-v2 (`path: minilm`); nothing is downloaded.

    pretrained: false builds the architecture with seeded random weights (`seed`; `path`
    may then be a model type such as `vit` or `bert`, with `config` overrides): random
    transformer features, a baseline. pooling: `cls`, `mean`, or `auto` (cls for images,
    mean for text), as model=hf. image_size: images are resized to it (null: the model's).
    max_length: token ids per sentence when it tokenizes strings. The fingerprint hashes
    every file of the weights folder (pretrained) or the resolved config and seed (random
    init), with the settings that change the output, so new weights are encoded anew.

    encode() takes sentences (a text model), token ids of the model's tokenizer (an int
    (n, L) array, e.g. a task's inputs under dataset/encoder=tokens), or images (a float
    (n, C, H, W) array or a LazyInputs, read `batch_size` at a time)."""

    def __init__(
        self,
        name: str = "hf",
        path: str = "minilm",
        pretrained: bool = True,
        config: dict[str, Any] | None = None,
        pooling: str = "auto",
        image_size: int | None = None,
        max_length: int = 128,
        seed: int = 0,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        from labelbench.models.hf import POOLINGS, load_config, modality_of

        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"name={name!r} must be a short name (letters, digits, _ . -)")
        if not isinstance(pretrained, bool):
            raise ConfigError(f"pretrained={pretrained!r} must be true or false")
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        self.name, self.path, self.pretrained = name, str(path), pretrained
        self.config = _plain(config)
        self.image_size = None if image_size is None else check_int("image_size", image_size, 1)
        self.max_length = check_int("max_length", max_length, 2, unit="tokens")
        self.seed = check_int("seed", seed)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.device = str(device)
        # Reads config.json only: a missing folder or unknown model fails here, at build time.
        cfg, folder = load_config(self.path, pretrained, self.config)
        self._cfg, self._folder = cfg, folder
        self.modality = modality_of(cfg)
        self.modalities = (self.modality,)
        self.pooling = (
            pooling if pooling != "auto" else ("cls" if self.modality == "image" else "mean")
        )
        if self.modality == "text" and self.max_length > cfg.max_position_embeddings:
            raise ConfigError(
                f"max_length={max_length} exceeds the {cfg.max_position_embeddings} positions"
                f" of {cfg.model_type}"
            )
        self._tokens: Any = None  # the TokenEncoder, made when strings first arrive
        self._net: tuple[tuple, Any] | None = None  # ((fingerprint, in_shape), network)

    # -- identity ------------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        """The model folder (None: a model type with random weights)."""
        return self._folder

    def fingerprint(self) -> str:
        from labelbench.models.hf import image_stats, tokenizer_fingerprint

        settings: dict[str, Any] = {"pooling": self.pooling}
        if self.modality == "image":
            settings["image_size"] = self.image_size
            settings["image_stats"] = image_stats(self._folder)
        else:
            settings["max_length"] = self.max_length
        if self.pretrained:
            assert self._folder is not None
            settings["weights"] = weights_fingerprint(self._folder)
            settings["config"] = self.config  # overrides of the folder's config.json
        else:
            # The resolved config (overrides applied), less what names where it came from.
            resolved = {k: v for k, v in self._cfg.to_dict().items() if k not in _PROVENANCE}
            settings["random_init"] = resolved
            settings["seed"] = self.seed
            if self._folder is not None and self.modality == "text":
                settings["tokenizer"] = tokenizer_fingerprint(self._folder)
        blob = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def tokenizer(self) -> Any:
        """The model's own TokenEncoder (`max_length` ids per sentence)."""
        if self.modality != "text":
            raise ConfigError(f"encoder {self.name} ({self.path}) reads images, not text")
        if self._folder is None:
            raise ConfigError(
                f"encoder {self.name}: path={self.path} is a model type, with no tokenizer to"
                " read sentences with; give it token ids (dataset/encoder=tokens) or a model"
                " folder with tokenizer files"
            )
        if self._tokens is None:
            from labelbench.data.tokens import TokenEncoder

            self._tokens = TokenEncoder(tokenizer=self.path, max_length=self.max_length)
        return self._tokens

    def check_tokens(self, spec: Any) -> None:
        """Refuse (ConfigError) token ids (a TokenSpec) that are not of this model's
        tokenizer, or longer than its positions."""
        from labelbench.models.hf import tokenizer_fingerprint

        if self.modality != "text":
            raise ConfigError(
                f"encoder {self.name} ({self._cfg.model_type}) reads images; the task gives"
                " token ids"
            )
        pad = int(getattr(self._cfg, "pad_token_id", None) or 0)
        own = tokenizer_fingerprint(self._folder) if self._folder is not None else None
        if spec.pad_id != pad or (own is not None and own != spec.fingerprint):
            raise ConfigError(
                f"dataset.encoder.tokenizer={spec.tokenizer} is not the tokenizer of encoder"
                f" path={self.path}; tokenize with the encoder's own"
                f" (dataset.encoder.tokenizer={self.path})"
            )
        if spec.vocab_size > self._cfg.vocab_size:
            raise ConfigError(
                f"dataset.encoder.tokenizer={spec.tokenizer} has {spec.vocab_size} tokens;"
                f" encoder path={self.path} embeds {self._cfg.vocab_size}"
            )
        if spec.max_length > self._cfg.max_position_embeddings:
            raise ConfigError(
                f"dataset.encoder.max_length={spec.max_length} exceeds the"
                f" {self._cfg.max_position_embeddings} positions of encoder path={self.path}"
            )

    # -- the network -----------------------------------------------------------------------
    def network(self, in_shape: tuple[int, ...], fingerprint: str | None = None) -> Any:
        """The frozen HFBackbone for inputs of `in_shape`, in eval mode on `device`, built
        inside a forked torch RNG seeded with `seed` (random init is the same every call,
        whatever was drawn before). Kept while the weights and input shape stay the same."""
        import torch

        from labelbench.models.hf import HFBackbone

        key = (fingerprint or self.fingerprint(), tuple(int(v) for v in in_shape))
        if self._net is not None and self._net[0] == key:
            return self._net[1]
        self._net = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = HFBackbone(
                in_shape=key[1],
                num_classes=2,  # the head is not used: embeddings only
                path=self.path,
                pretrained=self.pretrained,
                config=self.config,
                image_size=self.image_size,
                pooling=self.pooling,
            )
        net = net.to(self.device).eval()
        net.requires_grad_(False)
        self._net = (key, net)
        return net

    # -- encoding --------------------------------------------------------------------------
    def encode(self, items: Sequence[Any]) -> np.ndarray:
        from labelbench.data.lazy import is_lazy

        if is_lazy(items):  # images kept on disk: read in batches, never all at once
            batches: Iterable[Any] = items.batches(self.batch_size)  # type: ignore[attr-defined]
            out = list(self.encode_batches(batches))
            if not out:
                raise ValueError("no images to encode")
            return np.concatenate(out)
        x = self._inputs(items)
        if len(x) == 0:
            raise ValueError("no items to encode")
        if x.dtype.kind in "iu":  # token ids: encode the longest first, so batches pad little
            pad = int(getattr(self._cfg, "pad_token_id", None) or 0)
            order = np.argsort(-(x != pad).sum(1), kind="stable")
            out = np.empty((len(x), int(self._cfg.hidden_size)), dtype=np.float32)
            out[order] = np.concatenate(list(self.encode_batches(self._pieces(x[order]))))
            return out
        return np.concatenate(list(self.encode_batches(self._pieces(x))))

    def _pieces(self, x: np.ndarray) -> Iterator[np.ndarray]:
        return (x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size))

    def _inputs(self, items: Any) -> np.ndarray:
        """Items as token ids (int64, (n, L)) or images (float32, (n, C, H, W)), checked
        against the model's modality; sentences are tokenized here."""
        items = _as_items(items)
        if isinstance(items, (list, tuple)) and all(isinstance(t, str) for t in items):
            return self._strings(items)
        x = np.asarray(items)
        if x.dtype.kind in "USO":
            return self._strings([str(t) for t in x.reshape(-1)])
        if x.dtype.kind in "iu" and x.ndim == 2:
            if self.modality != "text":
                raise ConfigError(
                    f"encoder {self.name} ({self._cfg.model_type}) reads images (n, channels,"
                    f" height, width); got {x.dtype} of shape {x.shape}"
                )
            return self._token_ids(x)
        if x.ndim == 4 and x.dtype.kind == "f":
            if self.modality != "image":
                raise ConfigError(
                    f"encoder {self.name} ({self._cfg.model_type}) reads text (sentences or"
                    f" token ids); got images of shape {x.shape}"
                )
            return x.astype(np.float32, copy=False)
        want = "sentences or token ids (n, length)" if self.modality == "text" else "images"
        raise ConfigError(
            f"encoder {self.name} ({self._cfg.model_type}) reads {want}; got {x.dtype} of"
            f" shape {x.shape}"
        )

    def _strings(self, texts: Sequence[str]) -> np.ndarray:
        if self.modality != "text":
            raise ConfigError(
                f"encoder {self.name} ({self._cfg.model_type}) reads images; got text"
            )
        return self.tokenizer.encode(texts)

    def _token_ids(self, x: np.ndarray) -> np.ndarray:
        ids = x.astype(np.int64, copy=False)
        if ids.size and (ids.min() < 0 or ids.max() >= self._cfg.vocab_size):
            raise ValueError(
                f"token ids must lie in 0..{self._cfg.vocab_size - 1} (the vocabulary of"
                f" {self.path}); got {ids.min()}..{ids.max()}"
            )
        return ids

    def encode_batches(self, batches: Iterable[Any]) -> Iterator[np.ndarray]:
        """Each batch (token ids or images, as `encode` takes them; numpy arrays or CPU
        tensors) through one frozen network, in pieces of at most `batch_size`."""
        import torch

        weights = self.fingerprint()  # once per pass: new weights are read at the next one
        for batch in batches:
            x = self._inputs(batch)
            net = self.network(tuple(x.shape[1:]), weights)
            out = []
            with torch.inference_mode():
                for i in range(0, len(x), self.batch_size):
                    # A copy: the task's inputs are read-only, which torch warns about.
                    piece = torch.from_numpy(np.array(x[i : i + self.batch_size]))
                    out.append(net.embed(piece.to(self.device)).float().cpu().numpy())
            yield np.concatenate(out).astype(np.float32, copy=False)
