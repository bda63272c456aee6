"""The papers' image backbones (model=wrn28_2, wrn28_8, preact_resnet18): parameter counts
against the published ones, the references' layout and init, channels_last, refusals, and
runs on digits and CIFAR-shaped data."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from conftest import CONF_DIR
from labelbench.config import ConfigError
from labelbench.models import embeds, takes_images
from labelbench.models.preact_resnet import PreActResNet18
from labelbench.models.resnet import ResNet18Cifar
from labelbench.models.wrn import WideBasicBlock, WideResNet
from labelbench.run import run

BACKBONES = ("wrn28_2", "wrn28_8", "preact_resnet18")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small convolutions: on a shared 2-core machine, two OpenMP threads that wait for
    each other made these tests several times slower than one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def factory(name: str) -> functools.partial:
    """The model factory conf/model/<name>.yaml gives."""
    return instantiate(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("name", "exact", "published"),
    [
        ("wrn28_2", 1_469_450, 1.47),  # published: about 1.47M (FixMatch's text: 1.5M)
        ("wrn28_8", 23_362_154, 23.36),  # published: 23.4M
        ("preact_resnet18", 11_171_274, 11.17),  # published: 11.17M
    ],
)
def test_parameter_counts_match_the_published_ones(name, exact, published):
    count = n_params(factory(name)(in_shape=(3, 32, 32), num_classes=10))
    assert round(count / 1e6, 2) == published
    assert count == exact  # what the YAML comments and docstrings say
    if name == "wrn28_8":
        assert round(count / 1e6, 1) == 23.4


@pytest.mark.parametrize("name", BACKBONES)
def test_configs_are_image_networks_with_embeddings(name):
    model = factory(name)
    assert takes_images(model) is True and embeds(model)
    assert OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml").channels_last is False


@pytest.mark.parametrize(("name", "features"), [("wrn28_2", 128), ("preact_resnet18", 512)])
def test_forward_backward_on_cifar_shaped_data(name, features):
    torch.manual_seed(0)
    net = factory(name)(in_shape=(3, 32, 32), num_classes=10)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    F.cross_entropy(net(x), y).backward()
    # every parameter is used (DDP needs no find_unused_parameters) and learns
    for key, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
    assert sum(p.grad.abs().sum() for p in net.parameters()) > 0
    net.eval()
    with torch.no_grad():
        h = net.embed(x)
        assert h.shape == (8, features)
        assert torch.allclose(net[-1](h), net(x), atol=1e-5)


@pytest.mark.parametrize("name", ["wrn28_2", "preact_resnet18"])
def test_digit_sized_images(name):
    net = factory(name)(in_shape=(1, 8, 8), num_classes=10).eval()
    with torch.no_grad():
        assert net(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_wrn_follows_the_reference_settings_and_init():
    net = WideResNet((3, 32, 32), 10)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.momentum, m.eps) for m in bns} == {(0.001, 0.001)}
    assert all((m.weight == 1).all() and (m.bias == 0).all() for m in bns)
    assert {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())  # dropout 0
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 4 * 2 + 3  # stem, two per block, three projections
    assert all(m.bias is not None for m in convs)
    # kaiming normal, fan_out, gain sqrt(2): std sqrt(2 / (k*k*c_out)); a wide conv is a
    # large enough sample to check the spread
    wide = net.block3[1].conv1.weight
    assert wide.std().item() == pytest.approx((2 / (9 * 128)) ** 0.5, rel=0.02)
    assert (net.fc.bias == 0).all()
    assert net.fc.weight.std().item() == pytest.approx((2 / (128 + 10)) ** 0.5, rel=0.1)
    widths = [blocks[0].conv1.out_channels for blocks in (net.block1, net.block2, net.block3)]
    assert widths == [32, 64, 128] and len(net.block1) == len(net.block3) == 4
    strides = [blocks[0].conv1.stride for blocks in (net.block1, net.block2, net.block3)]
    assert strides == [(1, 1), (2, 2), (2, 2)]


def _block_by_hand(block: WideBasicBlock, x, conv_reads, shortcut_reads):
    """What a WideBasicBlock must compute, written out: conv_reads / shortcut_reads pick
    'raw' or 'activated' input for the 3x3 conv and the shortcut."""
    act = (lambda t: F.leaky_relu(block.bn1(t), 0.1)) if hasattr(block, "bn1") else None
    inputs = {"raw": x, "activated": act(x) if act else None}
    h = F.leaky_relu(block.bn2(block.conv1(inputs[conv_reads])), 0.1)
    return block.conv2(h) + block.shortcut(inputs[shortcut_reads])


def test_wrn_blocks_read_what_the_references_read():
    """The first block activates before the residual: its conv and its projection both read
    the activated input. The first block of groups 2 and 3 (the PyTorch ports): both read the
    raw input, and it has no first BN; tf_residual: the conv reads the activated input, the
    projection the raw one. Other blocks: activated conv input, identity shortcut."""
    torch.manual_seed(0)
    ports = WideResNet((3, 16, 16), 10).eval()
    tf = WideResNet((3, 16, 16), 10, tf_residual=True).eval()
    x16, x32 = torch.randn(2, 16, 16, 16), torch.randn(2, 32, 16, 16)
    with torch.no_grad():
        for net in (ports, tf):
            b = net.block1[0]
            assert torch.allclose(b(x16), _block_by_hand(b, x16, "activated", "activated"))
            b = net.block1[1]
            assert torch.allclose(b(x32), _block_by_hand(b, x32, "activated", "raw"))
        b = ports.block2[0]
        assert not hasattr(b, "bn1")
        assert torch.allclose(b(x32), _block_by_hand(b, x32, "raw", "raw"))
        b = tf.block2[0]
        assert torch.allclose(b(x32), _block_by_hand(b, x32, "activated", "raw"))
    assert n_params(tf) - n_params(ports) == 2 * (32 + 64)  # the two first BNs (k=2)


def test_wrn_dropout_sits_in_the_blocks():
    net = WideResNet((3, 8, 8), 10, dropout=0.3)
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 12 and {m.p for m in drops} == {0.3}


@pytest.mark.parametrize(
    "make",
    [
        lambda cl: WideResNet((3, 8, 8), 10, channels_last=cl),
        lambda cl: PreActResNet18((3, 8, 8), 10, channels_last=cl),
        lambda cl: ResNet18Cifar((3, 8, 8), 10, width=0.25, channels_last=cl),
    ],
    ids=["wrn28_2", "preact_resnet18", "resnet18_cifar"],
)
def test_channels_last_gives_the_same_outputs(make):
    torch.manual_seed(0)
    plain, nhwc = make(False), make(True)
    nhwc.load_state_dict(plain.state_dict())
    stem = next(m for m in nhwc.modules() if isinstance(m, nn.Conv2d)).weight
    assert stem.is_contiguous(memory_format=torch.channels_last)
    assert not stem.is_contiguous()
    x = torch.randn(4, 3, 8, 8)  # digit-sized: cheap, and every layer still runs
    for train in (True, False):  # batch statistics, then running statistics
        plain.train(train), nhwc.train(train)
        assert torch.allclose(nhwc(x), plain(x), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert torch.allclose(nhwc.embed(x), plain.embed(x), atol=1e-5, rtol=1e-4)
    nhwc.train()
    F.cross_entropy(nhwc(x), torch.arange(4)).backward()
    assert all(p.grad is not None for p in nhwc.parameters())
    # the same values in either layout: state dicts travel between them (checkpoints, EMA)
    before = plain.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in make(True).state_dict().items()) is False
    nhwc.load_state_dict(before)
    assert all(torch.equal(v, before[k]) for k, v in nhwc.state_dict().items())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: WideResNet((40,), 10), r"^in_shape=\(40,\): model wrn28_2 needs image inputs"),
        (
            lambda: WideResNet((1, 40), 10, widen_factor=8),
            r"^in_shape=\(1, 40\): model wrn28_8 needs image inputs \(channels, height, width\);"
            r" use model=cnn1d for 1-D signals",
        ),
        (
            lambda: PreActResNet18((1, 40), 10),
            r"^in_shape=\(1, 40\): model preact_resnet18 needs image inputs",
        ),
        (lambda: WideResNet((3, 32, 32), 10, depth=27), r"^depth=27 must be 6n \+ 4"),
        (lambda: WideResNet((3, 32, 32), 10, depth=4), r"^depth=4 must be an integer >= 10"),
        (lambda: WideResNet((3, 32, 32), 10, widen_factor=0), r"^widen_factor=0 must be a pos"),
        (lambda: WideResNet((3, 32, 32), 10, widen_factor=-2), r"^widen_factor=-2 must be a pos"),
        (lambda: WideResNet((3, 32, 32), 10, widen_factor=2.5), r"^widen_factor=2.5 must be a"),
        (lambda: WideResNet((3, 32, 32), 10, bn_momentum=0), r"^bn_momentum=0 is outside \(0, 1]"),
        (lambda: WideResNet((3, 32, 32), 10, dropout=1), r"^dropout=1 is outside \[0, 1\)"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("dataset", "shape"),
    [
        ("dataset=synthetic", r"\(20,\)"),
        ("dataset=mnist1d", r"\(1, 40\)"),
    ],
)
def test_a_2d_backbone_on_vectors_or_signals_is_a_config_error(dataset, shape, compose_fast):
    cfg, choices = compose_fast(dataset, "model=wrn28_2")
    with pytest.raises(
        ConfigError,
        match=rf"^model\.in_shape={shape}: model wrn28_2 needs image inputs \(channels, height,"
        r" width\); use model=cnn1d for 1-D signals \(channels, length\) or model=mlp for vectors$",
    ):
        run(cfg, choices)
    assert not list(Path(cfg.paths.results_dir).glob("runs/*.json"))


@pytest.mark.parametrize("name", ["wrn28_2", "preact_resnet18"])
def test_runs_end_to_end_on_digits(name, compose_fast):
    cfg, choices = compose_fast(
        "dataset=digits",
        f"model={name}",
        "strategy.max_steps=4",
        "strategy.eval_every=2",
        "budget.total=20",
        "logger=none",
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices["model"] == name
    assert 0.0 <= record.metrics["test/acc"] <= 1.0


def test_the_benchmark_script_prints_a_table():
    """scripts/bench/backbones.py, as small as it goes: one step of a batch of 2."""
    import subprocess
    import sys

    from conftest import ROOT, run_script_here

    script = str(ROOT / "scripts" / "bench" / "backbones.py")
    args = ["--models", "wrn28_2", "--batch-size", "2", "--steps", "1", "--warmup", "0"]
    proc = subprocess.run(
        [sys.executable, script, *args, "--threads", "1", "--channels-last"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| wrn28_2 | 1,469,450 |")]
    assert [r.split(" | ")[2] for r in rows] == ["NCHW", "channels_last"]
    bad = run_script_here(Path(script), "--models", "nope")  # refused before any work
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--models: ['nope']; choose from wrn28_2" in bad.stderr
