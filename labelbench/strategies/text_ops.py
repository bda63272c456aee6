"""Seeded views of tokenized text: batched token ops on (B, L) int64 id tensors laid out as
a tokenizer writes them ([CLS] t1 ... tk [SEP] [PAD] ... [PAD]), and TokenAugment, the
text augmentation of conf/strategy/augment/tokens.yaml.

Each op takes a boolean `editable` mask (True at a sentence's tokens: not special, not
padding) and touches only those positions; special and padding ids stay where they are,
except that deletions shift the row's later ids (its [SEP] included) left and refill the
row's end with `pad_id`. No op leaves a row with fewer than one editable token. As in
labelbench.strategies.augment, every random draw comes from the caller's `torch.Generator`
(on its device, usually the CPU) and is then moved to the batch's device, so views depend
only on the generator's state; the ops are vectorised over the batch and never modify
their input.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from labelbench.config import ConfigError, check_number
from labelbench.data.task import TaskView
from labelbench.strategies.augment import UNBOUND, Augment


def _wide(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """Uniform [0, 1) draws from `generator`, on `device` (float64 where it has them)."""
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return u.to(device, _wide(device))


def _below(u: Tensor, k: Tensor) -> Tensor:
    """floor(u * k), an integer uniform in 0..k-1 for u uniform in [0, 1) (0 where k <= 0)."""
    return torch.minimum(torch.floor(u * k), k - 1).clamp(min=0).long()


def editable_mask(x: Tensor, special_ids: Tensor | Sequence[int]) -> Tensor:
    """True where `x` holds a sentence's token: an id that is not one of `special_ids`
    (which must include the padding id)."""
    specials = torch.as_tensor(special_ids, dtype=x.dtype, device=x.device)
    return ~torch.isin(x, specials)


def delete_tokens(x: Tensor, delete: Tensor, pad_id: int) -> Tensor:
    """`x` without the positions where `delete` is True: each row's other ids shifted left
    in order, and `pad_id` filling the row's end."""
    order = torch.argsort(delete.to(torch.uint8), dim=1, stable=True)  # kept ids first
    out = x.gather(1, order)
    kept = (~delete).sum(dim=1, keepdim=True)
    end = torch.arange(x.shape[1], device=x.device) >= kept
    return out.masked_fill(end, pad_id)


def _spare_one(delete: Tensor, editable: Tensor, u: Tensor) -> Tensor:
    """`delete` with one editable token spared in each row that would lose all of them:
    the one with the largest `u` (uniform among them, as EDA's random_deletion returns a
    random word when every word was deleted)."""
    every = editable.any(dim=1) & ~(editable & ~delete).any(dim=1)
    pick = torch.where(editable, u, -1.0).argmax(dim=1, keepdim=True)
    spare = torch.zeros_like(delete).scatter_(1, pick, every[:, None])
    return delete & ~spare


def token_dropout(
    x: Tensor, editable: Tensor, p: float, pad_id: int, generator: torch.Generator
) -> Tensor:
    """Word dropout at token level: each editable token deleted with probability `p`, the
    rest shifted left, the row's end padded (EDA's random deletion, Wei & Zou 2019,
    jasonwei20/eda_nlp code/eda.py `random_deletion`, on tokens rather than words). A row
    keeps at least one editable token. `x` itself when `p` is 0 (no draws)."""
    if p <= 0:
        return x
    u = _rand(tuple(x.shape), generator, x.device)
    delete = _spare_one(editable & (u < p), editable, u)
    return delete_tokens(x, delete, pad_id)


def token_replace(
    x: Tensor, editable: Tensor, p: float, candidates: Tensor, generator: torch.Generator
) -> Tensor:
    """Each editable token replaced with probability `p` by an id drawn uniformly from
    `candidates` (the vocabulary without special ids): UDA's uniform word replacement
    (`unif-p`, google-research/uda text/augmentation/word_level_augment.py UnifRep), on
    tokens rather than words. The draw may return the token's own id, as UnifRep's can.
    `x` itself when `p` is 0 (no draws)."""
    if p <= 0:
        return x
    u = _rand(tuple(x.shape), generator, x.device)
    pick = torch.randint(
        0, len(candidates), tuple(x.shape), generator=generator, device=generator.device
    )
    new = candidates.to(x.device, x.dtype)[pick.to(x.device)]
    return torch.where(editable & (u < p), new, x)


def span_delete(
    x: Tensor, editable: Tensor, fraction: float, pad_id: int, generator: torch.Generator
) -> Tensor:
    """One contiguous span of editable tokens deleted per row, the rest shifted left and the
    row's end padded. A row of n editable tokens loses a span of length uniform in
    1..floor(fraction * n) (none when that is 0), at most n - 1 of them, starting uniformly
    where it fits; special ids inside a span's reach (a pair's middle [SEP]) stay. `x`
    itself when `fraction` is 0 (no draws)."""
    if fraction <= 0:
        return x
    u = _rand((len(x), 2), generator, x.device)
    n = editable.sum(dim=1).to(u.dtype)
    longest = torch.minimum(torch.floor(n * fraction), n - 1).clamp(min=0)
    length = torch.where(longest > 0, 1 + _below(u[:, 0], longest), 0)
    start = _below(u[:, 1], n - length + 1)
    rank = editable.cumsum(dim=1) - 1  # position among the row's editable tokens
    delete = editable & (rank >= start[:, None]) & (rank < (start + length)[:, None])
    return delete_tokens(x, delete, pad_id)


class TokenAugment(Augment):
    """Views of token-id rows (tasks with a `TokenSpec`, dataset/encoder=tokens) for
    consistency methods (FixMatch, UDA, ...).

    The papers' text views are not available offline: USB (microsoft/Semi-supervised-
    learning semilearn/datasets/nlp_datasets/datasetbase.py, BasicDataset.__getitem__) and
    UDA (Xie et al. 2020) take the weak view to be the sentence itself and the strong view
    a back-translation through a translation model, computed ahead of training. This
    is a named stand-in built from token edits: `strong` composes `token_dropout` (each
    editable token deleted with probability `strong_dropout`), `span_delete` (one span of up
    to `strong_span` x the row's editable tokens) and `token_replace` (each remaining token
    replaced with probability `strong_replace` by a uniform random non-special id), in that
    order. `weak` uses the `weak_*` settings, all 0 by default: USB's weak view, the
    sentence unchanged (the batch returned as is, no draws).

    Defaults: 0.1 for deletion and replacement is EDA's (Wei & Zou 2019; eda_nlp
    code/eda.py: alpha_sr = p_rd = 0.1, its Table 3 recommends alpha 0.1 from 5,000
    training sentences, 0.05 below). Deviations: EDA applies one operation per augmented
    sentence and replaces with WordNet synonyms; UDA's word replacement draws from the
    corpus' words (uniformly, `unif-p`, or by TF-IDF, `tf_idf-p`, which is not built here);
    here the ops are composed and act on sub-word tokens, drawing from the tokenizer's
    whole vocabulary without its special ids. The span length (0.1) is ours. Tokens the
    tokenizer marks special ([UNK] included) are never edited."""

    def __init__(
        self,
        weak_dropout: float = 0.0,
        weak_replace: float = 0.0,
        weak_span: float = 0.0,
        strong_dropout: float = 0.1,
        strong_replace: float = 0.1,
        strong_span: float = 0.1,
    ) -> None:
        self.weak_dropout = check_number("weak_dropout", weak_dropout, "[0, 1)")
        self.weak_replace = check_number("weak_replace", weak_replace, "[0, 1)")
        self.weak_span = check_number("weak_span", weak_span, "[0, 1)")
        self.strong_dropout = check_number("strong_dropout", strong_dropout, "[0, 1)")
        self.strong_replace = check_number("strong_replace", strong_replace, "[0, 1)")
        self.strong_span = check_number("strong_span", strong_span, "[0, 1)")
        self._pad_id: int | None = None
        self._specials: Tensor | None = None
        self._candidates: Tensor | None = None
        self._on: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def bind(self, task: TaskView, takes_images: bool | None = None) -> TokenAugment:
        spec = task.tokens
        if spec is None:
            raise ConfigError(
                f"dataset {task.name} has no token ids; strategy/augment=tokens needs token"
                " ids: dataset/encoder=tokens"
            )
        special = {int(i) for i in spec.special_ids} | {int(spec.pad_id)}
        if spec.mask_id is not None:
            special.add(int(spec.mask_id))
        allowed = np.ones(spec.vocab_size, dtype=bool)
        allowed[[i for i in special if 0 <= i < spec.vocab_size]] = False
        if not allowed.any():
            raise ConfigError(
                f"tokenizer {spec.tokenizer} of dataset {task.name} has only special ids in its"
                f" vocabulary (vocab_size={spec.vocab_size}): no token to replace with"
            )
        bound = copy.copy(self)
        bound._pad_id = int(spec.pad_id)
        bound._specials = torch.tensor(sorted(special), dtype=torch.int64)
        bound._candidates = torch.as_tensor(np.flatnonzero(allowed), dtype=torch.int64)
        bound._on = {}
        return bound

    def _tensors(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self._specials is None or self._candidates is None:
            raise RuntimeError(UNBOUND.format(name="TokenAugment", what="token ids"))
        if x.ndim != 2 or x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise ValueError(
                f"expected a batch of token ids shaped (B, L) of an integer dtype, got"
                f" {tuple(x.shape)} {x.dtype}"
            )
        if x.device not in self._on:  # move the id tables once per device, not every step
            self._on[x.device] = (self._specials.to(x.device), self._candidates.to(x.device))
        return self._on[x.device]

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._view(x, self.weak_dropout, self.weak_span, self.weak_replace, generator)

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._view(x, self.strong_dropout, self.strong_span, self.strong_replace, generator)

    def _view(
        self, x: Tensor, dropout: float, span: float, replace: float, generator: torch.Generator
    ) -> Tensor:
        specials, candidates = self._tensors(x)
        assert self._pad_id is not None
        out = x
        if dropout > 0:
            out = token_dropout(out, editable_mask(out, specials), dropout, self._pad_id, generator)
        if span > 0:
            out = span_delete(out, editable_mask(out, specials), span, self._pad_id, generator)
        if replace > 0:
            out = token_replace(out, editable_mask(out, specials), replace, candidates, generator)
        return out
