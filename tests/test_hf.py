"""model=hf: Hugging Face backbones fine-tuned end to end (tiny random-init image and text
networks through whole runs, the packaged MiniLM on topics), layer-wise learning-rate decay,
frozen blocks, and the refusals of bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import refusal_lines
from labelbench.config import ConfigError
from labelbench.data.encoders import packaged_minilm_path
from labelbench.models.hf import HFBackbone
from labelbench.run import prepare, run
from labelbench.strategies.lightning import param_groups

# A tiny BERT (random init, MiniLM's vocabulary size) and a tiny ViT for 8x8 digits.
TINY_BERT = (
    "model.path=bert",
    "model.pretrained=false",
    "+model.config={hidden_size:16,num_hidden_layers:2,num_attention_heads:2,intermediate_size:32}",
)
TINY_VIT = (
    "model.path=vit",
    "model.pretrained=false",
    "+model.config={image_size:8,patch_size:4,num_channels:1,hidden_size:16,num_hidden_layers:2,"
    "num_attention_heads:2,intermediate_size:32}",
)
TEXT = ("dataset=topics", "dataset/encoder=tokens", "dataset.encoder.tokenizer=minilm")
SHORT = ("strategy.max_steps=6", "strategy.eval_every=3", "strategy.batch_size=8")


def tiny_vit(**kwargs) -> HFBackbone:
    config = dict(image_size=8, patch_size=4, num_channels=1, hidden_size=16)
    config |= dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    return HFBackbone((1, 8, 8), 10, path="vit", pretrained=False, config=config, **kwargs)


def test_tiny_random_text_model_through_a_whole_run(compose_fast):
    cfg, choices = compose_fast(*TEXT, "model=hf", *TINY_BERT, *SHORT, "strategy=supervised")
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["fit/steps"] == 6
    assert 0 <= record.metrics["test/acc"] <= 1


def test_tiny_random_image_model_through_a_whole_fixmatch_run(compose_fast):
    cfg, choices = compose_fast(
        "dataset=digits", "model=hf", *TINY_VIT, *SHORT, "strategy=fixmatch", "strategy.mu=2"
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.metrics["fit/steps"] == 6


def test_packaged_minilm_fine_tunes_on_topics_in_a_few_steps(compose_fast):
    cfg, choices = compose_fast(
        *TEXT[:2], "model=hf", "strategy=supervised", "budget=per_class", "budget.per_class=4",
        "strategy.max_steps=6", "strategy.eval_every=6", "strategy.batch_size=8",
        "strategy.optimizer._target_=torch.optim.AdamW", "strategy.optimizer.lr=2e-4",
        "strategy.layer_decay=0.65",
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    # MiniLM's pretrained features separate the 5 topics after 6 steps on 20 labels
    assert record.metrics["test/acc"] > 0.5


def test_layer_decay_puts_the_expected_learning_rate_on_each_layer_group():
    net = tiny_vit()
    groups = param_groups([net], no_decay_norm_bias=True, layer_decay=0.5)
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05)
    for group in optimizer.param_groups:
        group["lr"] *= group.pop("lr_scale")
    top = net.num_layer_groups - 1  # embeddings 0, blocks 1..2, the rest 3
    assert top == 3
    lr_of = {
        id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]
    }
    for name, param in net.named_parameters():
        layer = net.layer_id(name)
        lr, decay = lr_of[id(param)]
        assert lr == pytest.approx(1e-3 * 0.5 ** (top - layer)), name
        assert decay == (0.0 if param.ndim <= 1 else 0.05), name
    assert net.layer_id("encoder.embeddings.patch_embeddings.projection.weight") == 0
    assert net.layer_id("encoder.encoder.layer.1.output.dense.weight") == 2
    assert net.layer_id("head.weight") == top
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_frozen_blocks_are_left_out_of_the_optimizer():
    net = tiny_vit(freeze_blocks=1)
    trained = {id(p) for g in param_groups([net]) for p in g["params"]}
    for name, param in net.named_parameters():
        assert (id(param) in trained) == (net.layer_id(name) > 1), name


def test_image_pipeline_resizes_and_normalises_inside_the_network():
    net = tiny_vit(image_size=16)  # position embeddings interpolated from 8x8's
    x = torch.rand(3, 1, 8, 8)
    assert net(x).shape == (3, 10)
    assert net.embed(x).shape == (3, 16)


def test_text_batches_are_cut_to_their_longest_row():
    net = HFBackbone(
        (12,), 3, path="bert", pretrained=False,
        config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    ).eval()  # fmt: skip
    ids = torch.tensor([[101, 7, 8, 102] + [0] * 8, [101, 9, 102] + [0] * 9])
    longer = torch.cat([ids, torch.zeros(2, 20, dtype=torch.long)], 1)[:, :12]
    with torch.no_grad():
        assert torch.allclose(net(ids), net(longer))
        alone = net(ids[1:, :3])
        assert torch.allclose(net(ids)[1:], alone, atol=1e-6)  # padding changes nothing


# -- bad input: one line, exit 2, nothing written ----------------------------------------


def refused(compose_fast, *overrides) -> str:
    cfg, _ = compose_fast(*overrides)
    with pytest.raises(ConfigError) as info:
        prepare(cfg, "key")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_model_name_offline_is_refused_in_one_line(tmp_path):
    lines = refusal_lines(
        tmp_path, "dataset=digits", "model=hf", "model.path=nobody/no-such-model", "logger=none"
    )
    assert len(lines) == 1 and "nobody/no-such-model" in lines[0] and "cache" in lines[0]


def test_missing_weights_are_refused(compose_fast, tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    shutil.copy(packaged_minilm_path() / "config.json", folder / "config.json")
    message = refused(compose_fast, *TEXT, "model=hf", f"model.path={folder}")
    assert "weights could not be loaded" in message


def test_tokenizer_model_mismatch_is_refused(compose_fast, tmp_path):
    other = tmp_path / "other-tokenizer"
    shutil.copytree(packaged_minilm_path(), other)
    vocab = (other / "vocab.txt").read_text().splitlines()
    (other / "vocab.txt").write_text("\n".join([*vocab[:-1], "zzzz"]) + "\n")
    spec = json.loads((other / "tokenizer.json").read_text())
    spec["model"]["vocab"]["zzzz"] = spec["model"]["vocab"].pop(vocab[-1])
    (other / "tokenizer.json").write_text(json.dumps(spec))
    message = refused(
        compose_fast, "dataset=topics", "dataset/encoder=tokens",
        f"dataset.encoder.tokenizer={other}", "model=hf",
    )  # fmt: skip
    assert "is not the tokenizer of model" in message


def test_embeddings_for_a_text_model_are_refused(compose_fast):
    message = refused(compose_fast, "dataset=topics", "model=hf", *TINY_BERT)
    assert "dataset/encoder=tokens" in message


@pytest.mark.parametrize("size", [30, 2])
def test_an_image_size_the_patches_do_not_fit_is_refused(compose_fast, size):
    message = refused(
        compose_fast, "dataset=digits", "model=hf", *TINY_VIT, f"model.image_size={size}"
    )
    assert f"image_size={size}" in message and "multiple of 4" in message


@pytest.mark.parametrize("value", [0, 1.5, -0.2])
def test_layer_decay_outside_0_1_is_refused(compose_fast, value):
    message = refused(
        compose_fast, "dataset=digits", "model=hf", *TINY_VIT, f"strategy.layer_decay={value}"
    )
    assert message.startswith(f"strategy.layer_decay={value}") and "(0, 1]" in message


def test_layer_decay_on_a_network_without_layer_groups_is_refused(compose_fast):
    message = refused(compose_fast, "dataset=digits", "model=mlp", "strategy.layer_decay=0.5")
    assert "layer groups" in message


def test_freezing_more_blocks_than_the_model_has_is_refused(compose_fast):
    message = refused(
        compose_fast, "dataset=digits", "model=hf", *TINY_VIT, "model.freeze_blocks=3"
    )
    assert "freeze_blocks=3" in message


# -- the SSL strategies on token ids ------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    ["pseudo_label", "mean_teacher", "fixmatch", "flexmatch", "freematch", "softmatch", "uda",
     "mixmatch", "self_training"],
)  # fmt: skip
def test_ssl_strategies_fine_tune_a_text_model_on_token_ids(compose_fast, strategy):
    cfg, choices = compose_fast(
        *TEXT, "model=hf", *TINY_BERT, f"strategy={strategy}", "strategy.max_steps=2",
        "strategy.eval_every=2", "budget=per_class", "budget.per_class=4",
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "ok", record.error


def test_text_model_refuses_float_ids():
    """Mixed or noised ids would silently be other tokens: the network refuses them (so the
    mixmatch case above proves MixMatch mixes pooled features, not ids)."""
    net = HFBackbone(
        (12,), 3, path="bert", pretrained=False,
        config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    )  # fmt: skip
    with pytest.raises(TypeError, match="token ids must be integers"):
        net(torch.tensor([[101.0, 7.5, 102.0]]))


@pytest.mark.parametrize("strategy", ["dividemix", "label_propagation"])
def test_strategies_that_read_raw_inputs_refuse_token_ids(compose_fast, strategy):
    message = refused(compose_fast, *TEXT, "model=hf", *TINY_BERT, f"strategy={strategy}")
    assert message.startswith(f"strategy: {strategy}") and "token ids" in message
