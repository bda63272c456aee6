"""Text as token ids, for networks that fine-tune on text (`dataset/encoder=tokens`,
model=hf): each sentence becomes one row of `max_length` int64 ids of a Hugging Face
tokenizer ([CLS] tokens [SEP], then padding; longer sentences are cut), and the task
carries the tokenizer's TokenSpec, so a network checks that the ids are its own and text
augmentations know which positions they may edit.

Tokenizing is fast (tens of thousands of sentences a second), so the ids are not cached;
the embedding cache is for encoders that run a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_int
from labelbench.data.encoders import Encoder
from labelbench.data.task import TokenSpec


class TokenEncoder(Encoder):
    """A tokenizer from a model folder: `minilm` (the packaged all-MiniLM-L6-v2), a folder
    with tokenizer files, or a hub name in the Hugging Face cache. The config default is
    the fine-tuned model's own (`${oc.select:model.path,minilm}`), so the ids match the
    network without saying so twice. max_length: ids per sentence (USB's text configs use
    512; short-sentence sets need far fewer, and each batch is cut to its longest row)."""

    name = "tokens"
    modalities = ("text",)

    def __init__(self, tokenizer: str = "minilm", max_length: int = 128) -> None:
        self.tokenizer = str(tokenizer)
        self.max_length = check_int("max_length", max_length, 2, unit="tokens")
        self._tok: Any = None
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            from labelbench.models.hf import model_folder, tokenizer_fingerprint

            try:
                folder = model_folder(self.tokenizer)
            except ConfigError as e:  # "path=X is ..." -> "tokenizer=X is ..."
                raise ConfigError(f"tokenizer={str(e).removeprefix('path=')}") from None
            if tokenizer_fingerprint(folder) is None:
                raise ConfigError(
                    f"tokenizer={self.tokenizer}: {folder} holds no tokenizer files"
                    " (tokenizer.json, vocab.txt ...)"
                )
            self._folder = folder
        return self._folder

    def _load(self) -> Any:
        if self._tok is None:
            from labelbench.models.hf import _quiet_transformers

            _quiet_transformers()
            from transformers import AutoTokenizer

            folder = self.folder  # refuses a missing tokenizer in its own words
            try:
                self._tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            except (OSError, ValueError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ConfigError(
                    f"tokenizer={self.tokenizer} could not be loaded: {first}"
                ) from None
            self._tok.padding_side = "right"  # the network cuts each batch after its longest row
            if self._tok.pad_token_id is None:
                raise ConfigError(f"tokenizer={self.tokenizer} has no padding token")
        return self._tok

    def fingerprint(self) -> str:
        return f"{self.spec().fingerprint}|max_length={self.max_length}"

    def spec(self) -> TokenSpec:
        """What the ids are (see TokenSpec)."""
        from labelbench.models.hf import tokenizer_fingerprint

        tok = self._load()
        return TokenSpec(
            tokenizer=self.tokenizer,
            fingerprint=str(tokenizer_fingerprint(self.folder)),
            vocab_size=len(tok),
            pad_id=int(tok.pad_token_id),
            special_ids=tuple(sorted({int(i) for i in tok.all_special_ids})),
            max_length=self.max_length,
            mask_id=None if tok.mask_token_id is None else int(tok.mask_token_id),
        )

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        tok = self._load()
        out = tok(
            [str(t) for t in items],
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return np.asarray(out["input_ids"], dtype=np.int64)
