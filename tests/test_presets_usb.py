"""USB's pretrained-backbone presets (issue 21): usb_nlp_ag_news (BERT-base, AG News, 40
labels) and usb_cv_cifar100 (ViT-S/2, CIFAR-100, 200 labels), both FixMatch. Every run the
registry expands holds the settings of USB's configs (the tables below, from the source);
the schedule is USB's warm-up + cosine step for step; the network keys give USB's heads,
pooling and layer groups (ViT-S/2 built at full size from the header's config, random
weights); the published rows name the cells the presets run and parse through the
leaderboard's reader.

The pretrained weights are not here (nothing is downloaded): the presets' own networks are
only composed, and their refusal without weights is checked. Whole runs go through the
presets' code path on stand-ins: AG News as a small generated text dataset with a tiny random
BERT folder (the packaged MiniLM's uncased WordPiece tokenizer) as model.path, CIFAR-100 as
the generated image stand-in with a tiny random ViT folder of USB's patch size."""

from __future__ import annotations

import collections
import csv
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF_DIR
from labelbench import presets
from labelbench.config import ConfigError, choices_from
from labelbench.data.standin import (
    standin_overrides,
    write_ag_news_standin,
    write_bert_standin,
    write_vit_standin,
)
from labelbench.models.hf import HFBackbone
from labelbench.overrides import Composer, check_run
from labelbench.results.published import load_published
from labelbench.run import compose, run
from labelbench.strategies.lightning import param_groups
from labelbench.strategies.schedules import Cosine

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "published"
NLP, CV = "usb_nlp_ag_news", "usb_cv_cifar100"

# -- the source's values ---------------------------------------------------------------------
# microsoft/Semi-supervised-learning config/usb_nlp/fixmatch/fixmatch_ag_news_40_0.yaml and
# config/usb_cv/fixmatch/fixmatch_cifar100_200_0.yaml @ 69a2afc8; semilearn/core/utils/build.py
# (get_optimizer: AdamW; get_cosine_schedule_with_warmup); nets/bert/bert.py, nets/vit/vit.py.
SOURCE: dict[str, dict[str, Any]] = {
    NLP: {
        "optimizer": ("torch.optim.AdamW", 5e-5, 5e-4),  # optim, lr, weight_decay
        "layer_decay": 0.65,  # layer_decay
        "max_steps": 102400,  # num_train_iter
        "warmup": 5120,  # num_warmup_iter
        "eval_every": 2048,  # num_eval_iter
        "batch_size": 8,  # batch_size
        "budget": 40,  # num_labels (10 per class)
        "max_length": 512,  # max_length
        # bert.py: mean over the hidden states, dropout 0.1, Linear-GELU-Linear
        "model": ("google-bert/bert-base-uncased", True, None, "mean", "mlp", 0.1, 0),
        "selection": "best_val",  # evaluation.py: test the best-validation checkpoint
        "val_fraction": 1 / 12,  # a 10,000-text validation set (2,500 of 30,000 per class)
        "augment": "labelbench.strategies.text_ops.TokenAugment",  # back-translation stand-in
    },
    CV: {
        "optimizer": ("torch.optim.AdamW", 5e-4, 5e-4),
        "layer_decay": 0.5,
        "max_steps": 204800,
        "warmup": 5120,
        "eval_every": 2048,
        "batch_size": 8,
        "budget": 200,  # 2 per class
        "max_length": None,
        # vit.py vit_small_patch2_32: img_size 32, global_pool 'token', a linear head
        "model": ("./models/vit_small_patch2_32_mlp_im_1k_32", True, 32, "cls", "linear", 0.0, 0),
        "selection": "last",  # no validation split (USB: the best test evaluation)
        "val_fraction": 0,
        "augment": "labelbench.strategies.augment.ByModality",
    },
}
SHARED = {
    "mu": 1,  # uratio 1
    "threshold": 0.95,  # p_cutoff
    "unlabeled_weight": 1.0,  # ulb_loss_ratio
    "ema_decay": None,  # ema_m 0.0
    "grad_clip": None,  # clip 0.0
    "no_decay_norm_bias": True,  # param_groups_layer_decay: no decay on 1-D parameters
    "include_labeled": True,  # include_lb_to_ulb
    "labeled_sampling": "with_replacement",
    "cycles": 7 / 16,  # get_cosine_schedule_with_warmup num_cycles
    "seeds": (0, 1, 2),  # results/README.md: 3 seeds per setting
}
STRATEGY = {NLP: "fixmatch[augment=tokens,schedule=cosine]", CV: "fixmatch[schedule=cosine]"}
DATASET = {NLP: "ag_news[encoder=tokens]", CV: "cifar100"}
CLASSES = {NLP: 4, CV: 100}


def value_of(overrides: list[str], key: str) -> str:
    (value,) = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    return value


@pytest.fixture(scope="module")
def composed():
    """Every run of both presets, composed as `reproduce` composes them:
    {preset: [(overrides, cfg, choices)]}."""
    out = collections.defaultdict(list)
    with Composer([]) as composer:
        for name in (NLP, CV):
            for overrides in presets.expand(name):
                c = check_run(composer, overrides)
                out[name].append((overrides, c.cfg, {k: v for k, v in c.choices.items() if v}))
    return out


# -- the registry and the YAML -----------------------------------------------------------------
@pytest.mark.parametrize("name", [NLP, CV])
def test_the_grid_is_the_budget_and_three_seeds_and_the_header_says_so(name):
    grid = {k: v.split(",") for k, v in presets.grid_params(name).items()}
    assert grid == {"budget.total": [str(SOURCE[name]["budget"])], "seed": ["0", "1", "2"]}
    assert presets.get(name).sweeps == ((),)
    assert sorted(int(value_of(r, "seed")) for r in presets.expand(name)) == [0, 1, 2]
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    header = [line.split("labelbench-run -m ", 1)[1].split() for line in text.splitlines()
              if line.startswith("#   labelbench-run -m ")]  # fmt: skip
    assert header == [[f"experiment={name}"]]
    assert presets.published_csv(name) == PUBLISHED / f"{name}.csv"


@pytest.mark.parametrize("name", [NLP, CV])
def test_composed_runs_hold_usbs_settings(composed, name):
    want = SOURCE[name]
    runs = composed[name]
    assert len(runs) == 3
    for overrides, cfg, choices in runs:
        s, m = cfg.strategy, cfg.model
        got = {
            "names": {k: v for k, v in choices_from(cfg, choices).items() if k != "regime"},
            "optimizer": (s.optimizer._target_, s.optimizer.lr, s.optimizer.weight_decay),
            "layer_decay": s.layer_decay,
            "schedule": (
                s.schedule._target_,
                s.schedule.cycles,
                s.schedule.warmup,
                s.schedule.final,
            ),
            "steps": (s.max_steps, s.max_epochs, s.eval_every),
            "batch": (s.batch_size, s.mu, s.labeled_sampling, s.include_labeled),
            "fixmatch": (s.threshold, s.unlabeled_weight, s.warmup_steps),
            "recipe": (s.ema_decay, s.grad_clip, s.no_decay_norm_bias),
            "selection": (s.selection, s.patience, s.monitor),
            "augment": s.augment._target_,
            "model": (
                m._target_,
                m.path,
                m.pretrained,
                m.image_size,
                m.pooling,
                m.head,
                m.head_dropout,
                m.freeze_blocks,
                dict(m.config),
            ),
            "val_fraction": cfg.dataset.val_fraction,
            "budget": (
                cfg.budget._target_,
                cfg.budget.total,
                cfg.budget.balanced,
                cfg.budget.val_paid,
            ),
            "regime": cfg.regime._target_,
            "max_length": cfg.dataset.encoder.get("max_length"),
        }
        assert got == {
            "names": {
                "dataset": DATASET[name],
                "budget": "total",
                "strategy": STRATEGY[name],
                "model": "hf",
            },
            "optimizer": want["optimizer"],
            "layer_decay": want["layer_decay"],
            "schedule": (
                "labelbench.strategies.schedules.Cosine",
                SHARED["cycles"],
                want["warmup"],
                0.0,
            ),
            "steps": (want["max_steps"], None, want["eval_every"]),
            "batch": (
                want["batch_size"],
                SHARED["mu"],
                SHARED["labeled_sampling"],
                SHARED["include_labeled"],
            ),
            "fixmatch": (SHARED["threshold"], SHARED["unlabeled_weight"], 0),  # no warm-up
            "recipe": (SHARED["ema_decay"], SHARED["grad_clip"], SHARED["no_decay_norm_bias"]),
            "selection": (want["selection"], 0, "val/acc"),
            "augment": want["augment"],
            "model": ("labelbench.models.hf.HFBackbone", *want["model"], {}),
            "val_fraction": pytest.approx(want["val_fraction"]),
            "budget": ("labelbench.labels.budget.Total", want["budget"], True, False),
            "regime": "labelbench.labels.regime.Clean",
            "max_length": want["max_length"],
        }, " ".join(overrides)


def test_nlp_runs_tokenize_with_the_models_own_tokenizer_and_split_like_usb(composed):
    _, cfg, _ = composed[NLP][0]
    d = cfg.dataset
    assert (d.name, d.split, d.test_split, d.input_column, d.label_column) == (
        "fancyzhx/ag_news", "train", "test", "text", "label",
    )  # fmt: skip
    assert cfg.dataset.encoder._target_ == "labelbench.data.tokens.TokenEncoder"
    assert cfg.dataset.encoder.tokenizer == cfg.model.path  # ${oc.select:model.path,...}
    # USB: 2,500 labelled validation texts per class (10,000; results/README.md) cut from the
    # hub's 30,000 training texts per class, as labelbench's stratified split rounds them
    assert round(d.val_fraction * 30_000) == 2_500


def test_cv_runs_use_usbs_views_and_no_validation_split(composed):
    _, cfg, _ = composed[CV][0]
    d, image = cfg.dataset, cfg.strategy.augment.image
    assert (d.name, d.label_column, d.flip, d.val_fraction) == (
        "uoft-cs/cifar100",
        "fine_label",
        True,
        0,
    )
    # USB cv_datasets/cifar.py: padding int(32 x (1 - crop_ratio 0.875)) = 4 px; RandAugment(3, 5)
    assert (image.pad, image.n) == (0.125, 3) and int(32 * image.pad) == 4


@pytest.mark.parametrize("name", [NLP, CV])
def test_the_schedule_is_usbs_warmup_then_cosine(composed, name):
    """Step for step against USB's get_cosine_schedule_with_warmup (build.py), as written."""
    _, cfg, _ = composed[name][0]
    total, warmup = SOURCE[name]["max_steps"], SOURCE[name]["warmup"]

    def usb(step: int) -> float:
        if step < warmup:
            return float(step) / float(max(1, warmup))
        cos_steps = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, math.cos(math.pi * (7.0 / 16.0) * cos_steps))

    schedule = instantiate(cfg.strategy.schedule)
    assert isinstance(schedule, Cosine)
    schedule.bind(int(cfg.strategy.max_steps))
    for step in (0, 1, 2560, warmup - 1, warmup, warmup + 1, total // 2, total - 1):
        assert schedule.factor(step) == pytest.approx(usb(step), abs=1e-12), step


def test_dry_run_plans_runs_of_the_cited_length(tmp_path):
    for name in (NLP, CV):
        runs = presets.plan(name, tmp_path / "store", ["seed=0"])
        assert [r.steps for r in runs] == [SOURCE[name]["max_steps"]]
        assert not runs[0].recorded
        assert {r.names["strategy"] for r in runs} == {STRATEGY[name]}
        assert {(r.names["model"], r.names["budget"]) for r in runs} == {
            ("hf", str(SOURCE[name]["budget"]))
        }


# -- the networks ------------------------------------------------------------------------------
def test_the_presets_networks_are_refused_in_one_line_without_their_weights(
    composed, monkeypatch, tmp_path
):
    """Nothing is downloaded: BERT-base must be in the HF cache (here an empty one), USB's
    ViT-S/2 a folder the user made."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    _, nlp, _ = composed[NLP][0]
    with pytest.raises(ConfigError) as info:
        instantiate(nlp.model)(in_shape=(512,), num_classes=4)
    assert "hf download google-bert/bert-base-uncased" in str(info.value)
    assert "\n" not in str(info.value)
    _, cv, _ = composed[CV][0]
    with pytest.raises(ConfigError, match=r"vit_small_patch2_32_mlp_im_1k_32 is not a folder$"):
        instantiate(cv.model)(in_shape=(3, 32, 32), num_classes=100)


# The header's ViT-S/2 config (USB vit.py vit_small_patch2_32: embed_dim 384, depth 12,
# num_heads 6, mlp_ratio 4, qkv_bias, LayerNorm eps 1e-6).
VIT_S2 = dict(
    image_size=32, patch_size=2, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
    intermediate_size=1536, qkv_bias=True, layer_norm_eps=1e-6,
)  # fmt: skip


def usb_vit_parameters(num_classes: int, d: int = 384, depth: int = 12, patch: int = 2) -> int:
    """Parameters of USB's VisionTransformer (vit.py) for 32x32 images: PatchEmbed conv with
    bias, cls_token, pos_embed over 256 + 1 tokens, per Block norm1, qkv (bias), proj,
    norm2, Mlp fc1, fc2; the final norm; the head."""
    tokens = (32 // patch) ** 2 + 1
    block = (
        2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    )
    stem = 3 * d * patch * patch + d + d + tokens * d
    return stem + depth * block + 2 * d + d * num_classes + num_classes


def preset_model(cfg, **changes) -> HFBackbone:
    """The preset's model node with `changes` (a stand-in path, random weights ...)."""
    node = cfg.model.copy()
    for key, value in changes.items():
        node[key] = value
    return instantiate(node)


def test_vit_s2_from_the_header_config_is_usbs_network_with_its_layer_groups(composed):
    _, cfg, _ = composed[CV][0]
    torch.manual_seed(0)
    net = preset_model(cfg, path="vit", pretrained=False, config=VIT_S2)(
        in_shape=(3, 32, 32), num_classes=100
    )
    own = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("encoder.pooler."))
    assert own == usb_vit_parameters(100) == 21_436_900  # the transformers pooler goes unused
    assert net.pooling == "cls" and isinstance(net.head, torch.nn.Linear)
    assert net.head.in_features == 384 and net.dropout.p == 0.0 and net._resize is None
    # USB's groups: stem, 12 blocks, head (group_matcher); lr x 0.5^(13 - group)
    assert net.num_layer_groups == 14
    groups = param_groups([net], no_decay_norm_bias=True, layer_decay=cfg.strategy.layer_decay)
    scales = {round(math.log(g["lr_scale"], 0.5)) for g in groups}
    assert scales == set(range(14))
    assert net.layer_id("encoder.embeddings.cls_token") == 0
    assert net.layer_id("encoder.encoder.layer.11.output.dense.weight") == 12
    assert net.layer_id("head.weight") == 13
    # the stated deviation: the final LayerNorm learns at the head's rate (USB: block 12's)
    assert net.layer_id("encoder.layernorm.weight") == 13
    for g in groups:
        one_d = {p.ndim <= 1 for p in g["params"]}
        assert one_d == {g.get("weight_decay") == 0.0}
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    assert tuple(net(x).shape) == (2, 100)


def test_the_text_head_is_usbs_classification_bert_head(composed):
    _, cfg, _ = composed[NLP][0]
    torch.manual_seed(0)
    tiny = dict(hidden_size=16, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32)
    net = preset_model(cfg, path="bert", pretrained=False, config=tiny)(
        in_shape=(512,), num_classes=4
    )
    assert net.pooling == "mean" and net.dropout.p == 0.1
    linear1, gelu, linear2 = net.head
    assert (linear1.in_features, linear1.out_features) == (16, 16)
    assert isinstance(gelu, torch.nn.GELU) and (linear2.in_features, linear2.out_features) == (
        16,
        4,
    )
    # USB's groups for BERT: embeddings, 12 layers, the rest; lr x 0.65^(13 - group)
    assert net.num_layer_groups == 14
    groups = param_groups([net], no_decay_norm_bias=True, layer_decay=cfg.strategy.layer_decay)
    assert sorted({g["lr_scale"] for g in groups}) == pytest.approx(
        sorted(0.65**k for k in range(14))
    )
    assert net.layer_id("encoder.embeddings.word_embeddings.weight") == 0
    assert net.layer_id("encoder.encoder.layer.0.attention.self.query.weight") == 1
    assert net.layer_id("head.2.weight") == 13


# -- whole runs on stand-ins -------------------------------------------------------------------
SHORT = ("train.max_steps=4", "strategy.schedule.warmup=2", "strategy.eval_every=2", "logger=none")


def published_key(name: str) -> tuple[str, ...]:
    (row,) = load_published([PUBLISHED / f"{name}.csv"])
    return (row.dataset, row.model, row.regime, row.budget, row.strategy)


def test_nlp_preset_runs_end_to_end_on_a_text_standin_with_a_bert(composed, tmp_path):
    overrides = composed[NLP][0][0]
    data = write_ag_news_standin(tmp_path / "ag_news")
    bert = write_bert_standin(tmp_path / "bert")
    cfg, choices = compose(
        [
            *overrides, f"dataset.name={data}", f"model.path={bert}", *SHORT,
            f"paths.results_dir={tmp_path / 'results'}",
        ]
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["fit/steps"] == 4
    labels = record.labels
    assert (labels["budget"], labels["count"], labels["val_paid"]) == ("40", 40, False)
    assert labels["val_count"] == 4 * round(30 / 12)  # the stand-in's free validation split
    names = record.choices
    assert (names["dataset"], names["model"], names["regime"], names["budget"]) == (
        "ag_news[encoder=tokens]", "hf", "clean", "total",
    )  # fmt: skip
    got = (names["dataset"], names["model"], "clean", "40", names["strategy"])
    assert got == published_key(NLP)
    resolved = record.config
    assert resolved["dataset"]["encoder"]["tokenizer"] == str(bert)


def test_cv_preset_runs_end_to_end_on_cifar100s_standin_with_a_patch2_vit(composed, tmp_path):
    overrides = composed[CV][0][0]
    vit = write_vit_standin(tmp_path / "vit")
    cfg, choices = compose(
        [
            *standin_overrides(overrides, tmp_path / "standins", n_train=300, n_test=20),
            f"model.path={vit}", *SHORT, f"paths.results_dir={tmp_path / 'results'}",
        ]
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["fit/steps"] == 4
    labels = record.labels
    assert (labels["budget"], labels["count"], labels["val_count"]) == ("200", 200, 0)
    names = record.choices
    got = (names["dataset"], names["model"], "clean", "200", names["strategy"])
    assert got == published_key(CV)


# -- the published rows ----------------------------------------------------------------------
@pytest.mark.parametrize("name", [NLP, CV])
def test_the_published_row_is_the_cell_the_preset_runs(composed, name):
    path = PUBLISHED / f"{name}.csv"
    with path.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [
            "dataset", "model", "regime", "budget", "strategy", "metric",
            "value", "spread", "seeds", "reported", "source",
        ]  # fmt: skip
        (row,) = list(reader)
    _, cfg, choices = composed[name][0]
    names = choices_from(cfg, choices)
    cell = (names["dataset"], names["model"], instantiate(cfg.regime).label(),
            instantiate(cfg.budget).label(), names["strategy"])  # fmt: skip
    assert tuple(row[k] for k in ("dataset", "model", "regime", "budget", "strategy")) == cell
    assert row["metric"] == "test/acc" and row["seeds"] == str(len(SHARED["seeds"]))
    assert "44995033c13f1831e572d2c4d470addc84e1aa3a" in row["source"]
    error, sd = row["reported"].split(" ", 1)[0].split("±")
    assert row["reported"].endswith("(best error rate %)")
    assert Decimal(row["value"]) == 1 - Decimal(error) / 100
    assert Decimal(row["spread"]) == Decimal(sd) / 100
    (published,) = load_published([path])  # the leaderboard's own reader takes it
    assert published.value == float(row["value"]) and published.spread == float(row["spread"])


def test_the_published_values_are_usbs_fixmatch_cells():
    """USB results/usb_nlp.csv (ag_news_40) and usb_cv.csv (cifar100_200) @ 44995033, row
    fixmatch: 30.17±1.87 and 29.6±0.9 (error %)."""
    rows = {name: load_published([PUBLISHED / f"{name}.csv"])[0] for name in (NLP, CV)}
    assert rows[NLP].reported.startswith("30.17±1.87") and rows[NLP].value == 0.6983
    assert rows[CV].reported.startswith("29.6±0.9") and rows[CV].value == 0.704
