"""Augmentations: shapes and purity, seeded reproducibility, what each op does to
hand-made inputs, argument and bind checks, and every conf/strategy/augment option."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from labelbench.config import ConfigError
from labelbench.data.sources import Digits, Synthetic
from labelbench.data.task import TaskView
from labelbench.models import takes_images
from labelbench.models.cnn import CNNSmall
from labelbench.models.mlp import MLP
from labelbench.strategies.augment import (
    Augment,
    ByModality,
    Identity,
    ImageAugment,
    VectorAugment,
)

AUGMENT_DIR = Path(__file__).resolve().parent.parent / "conf" / "strategy" / "augment"
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
# Every op of ImageAugment on (all 14 RandAugment ops), so shape/purity/seed checks cover
# them; PLAIN: everything off (no crop, the Identity op only, no cutout).
ALL_ON = dict(pad=1, n=3, cutout=0.5)
PLAIN = dict(pad=0, n=1, ops=["Identity"], cutout=0.0)


def task(
    shape: tuple[int, ...],
    n: int = 64,
    *,
    x: np.ndarray | None = None,
    modality: str | None = None,
    flip_invariant: bool = False,
    name: str = "toy",
) -> TaskView:
    """A small TaskView whose rows are flat, as sources store them."""
    if x is None:
        x = np.random.default_rng(0).random((n, math.prod(shape)), dtype=np.float32)
    return TaskView(
        name=name,
        x=x,
        classes=("a", "b"),
        modality=modality or ("image" if len(shape) == 3 else "vector"),
        input_shape=shape,
        pool=np.arange(len(x)),
        val=np.arange(0),
        flip_invariant=flip_invariant,
    )


@functools.cache
def digits() -> TaskView:
    return Digits().load(0).view()


@functools.cache
def synthetic() -> TaskView:
    return Synthetic(n_samples=200).load(0).view()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bound_for(shape: tuple[int, ...]) -> Augment:
    if len(shape) == 3:
        return ImageAugment(**ALL_ON, flip=True).bind(task(shape, flip_invariant=True))
    return VectorAugment(weak_mask=0.1).bind(task(shape))


def batch(shape: tuple[int, ...], n: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=gen(seed))


SHAPES = [(1, 8, 8), (3, 9, 7), (20,)]


# -- shapes, purity, seeds -------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("view", ["weak", "strong"])
@pytest.mark.parametrize("shape", SHAPES)
def test_views_keep_shape_dtype_device_and_leave_input_alone(shape, view, dtype, device):
    aug = bound_for(shape)
    x = batch(shape).to(device, dtype)
    before = x.clone()
    out = getattr(aug, view)(x, gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.equal(x, before)
    assert not torch.equal(out, x)  # it did augment


@pytest.mark.parametrize(
    "only",
    [
        {"pad": 1},
        {"pad": 0.125},
        {"ops": None},
        {"cutout": 0.5},
        {"flip": True},
    ],
    ids=lambda d: next(iter(d)),
)
def test_each_image_op_alone_leaves_the_input_alone(only):
    aug = ImageAugment(**{**PLAIN, **only}).bind(task((1, 8, 8), flip_invariant=True))
    x = batch((1, 8, 8))
    before = x.clone()
    outs = [aug.weak(x, gen()), aug.strong(x, gen())]
    assert torch.equal(x, before)
    assert any(not torch.equal(out, x) for out in outs)  # the op is on


@pytest.mark.parametrize("view", ["weak", "strong"])
@pytest.mark.parametrize("shape", SHAPES)
def test_views_are_reproducible_under_a_seed(shape, view):
    aug, x = bound_for(shape), batch(shape)
    draw = getattr(aug, view)
    assert torch.equal(draw(x, gen(3)), draw(x, gen(3)))
    assert not torch.equal(draw(x, gen(3)), draw(x, gen(4)))
    g = gen(3)
    first, second = draw(x, g), draw(x, g)
    assert not torch.equal(first, second)  # the generator advanced
    # ... and resumes exactly from a saved state
    g, state = gen(5), None
    draw(x, g)
    state = g.get_state()
    expected = draw(x, g)
    assert torch.equal(draw(x, torch.Generator().set_state(state)), expected)


def test_draws_come_only_from_the_generator():
    aug, x = bound_for((1, 8, 8)), batch((1, 8, 8))
    torch.manual_seed(0)
    a = aug.strong(x, gen(2))
    torch.manual_seed(1)  # the global RNG must not matter
    assert torch.equal(aug.strong(x, gen(2)), a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_generator_gives_the_same_views_on_gpu(shape):
    aug, x = bound_for(shape), batch(shape, n=64)
    for view in ("weak", "strong"):
        cpu = getattr(aug, view)(x, gen(7))
        gpu = getattr(aug, view)(x.cuda(), gen(7)).cpu()
        if view == "weak":  # a gather: exactly the same pixels
            assert torch.equal(gpu, cpu)
        else:  # a rounding step at an exact tie may land the other way on the GPU
            assert ((gpu - cpu).abs() > 1e-5).float().mean().item() < 1e-3


def test_identity_returns_the_batch():
    x = batch((1, 8, 8))
    assert Identity().bind(task((1, 8, 8))).weak(x, gen()) is x
    assert Identity().strong(x, gen()) is x


# -- what the image ops do --------------------------------------------------------------


def lit_pixel(n: int, shape: tuple[int, int, int], at: tuple[int, int]) -> torch.Tensor:
    x = torch.zeros(n, *shape)
    x[:, :, at[0], at[1]] = 1.0
    return x


@pytest.mark.parametrize(("pad", "side", "pixels"), [(2, 11, 2), (0.125, 8, 1), (0.125, 32, 4)])
@pytest.mark.parametrize("view", ["weak", "strong"])
def test_crop_moves_content_by_at_most_pad(view, pad, side, pixels):
    """The reflect-pad crop shifts each image by its own (dy, dx) in [-pad, pad]^2, every
    offset drawn; a fractional pad is int(side * pad) pixels (FixMatch: 4 px on 32x32)."""
    aug = ImageAugment(**{**PLAIN, "pad": pad}, flip=False).bind(task((3, side, side)))
    centre = side // 2
    x = lit_pixel(2000, (3, side, side), (centre, centre))
    out = getattr(aug, view)(x, gen())
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.full((2000,), 3.0))  # mass kept
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    pos = out[:, 0].reshape(2000, -1).argmax(dim=1)
    moves = set(zip((pos // side - centre).tolist(), (pos % side - centre).tolist(), strict=True))
    everything = {
        (dy, dx) for dy in range(-pixels, pixels + 1) for dx in range(-pixels, pixels + 1)
    }
    assert moves == everything


def test_crop_reflects_at_the_edge_instead_of_filling():
    aug = ImageAugment(**{**PLAIN, "pad": 2}, flip=False).bind(task((1, 8, 8)))
    out = aug.weak(lit_pixel(5000, (1, 8, 8), (1, 1)), gen())
    mass = out.sum(dim=(1, 2, 3))
    # Reflect padding by 2 puts the pixel at (1, 1) in padded rows and columns 1 and 3
    # (its mirror image, and itself). A window starting at 0 or 1 shows both, at 2 or 3
    # only itself, at 4 neither (the pixel moved out of view): per axis 2, 2, 1, 1, 0.
    assert set(mass.tolist()) == {0.0, 1.0, 2.0, 4.0}
    assert (mass == 4).float().mean().item() == pytest.approx(4 / 25, abs=0.015)
    assert (mass == 0).float().mean().item() == pytest.approx(9 / 25, abs=0.02)
    x = batch((1, 8, 8), n=200)
    assert set(aug.weak(x, gen()).unique().tolist()) <= set(x.unique().tolist())  # no fill


def test_cutout_fills_one_rectangle_with_usbs_colour():
    aug = ImageAugment(**{**PLAIN, "cutout": 0.5}, flip=False).bind(task((3, 16, 16)))
    out = aug.strong(torch.ones(3000, 3, 16, 16), gen())
    hole = out[:, 0] != 1
    colour = torch.tensor([125, 123, 114]) / 255
    assert torch.equal(out.permute(0, 2, 3, 1)[hole], colour.expand(int(hole.sum()), 3))
    rows, cols = hole.any(dim=2), hole.any(dim=1)
    assert torch.equal(hole, rows[:, :, None] & cols[:, None, :])  # one rectangle
    for spans in (rows, cols):  # contiguous; side < 0.5 * 16 covers at most 8 pixels
        width = spans.sum(dim=1)
        first = spans.float().argmax(dim=1)
        last = 15 - spans.flip(1).float().argmax(dim=1)
        holed = width > 0
        assert torch.equal((last - first + 1)[holed], width[holed])
        assert width.max() == 8
    assert hole.any(dim=(1, 2)).float().mean().item() > 0.99  # side 0 only when u = 0
    grey = ImageAugment(**{**PLAIN, "cutout": 0.5, "cutout_fill": 0.25}).bind(task((1, 8, 8)))
    assert set(grey.strong(torch.ones(500, 1, 8, 8), gen()).unique().tolist()) == {0.25, 1.0}


def test_strong_applies_randaugment_per_image():
    aug = ImageAugment(**ALL_ON, flip=False).bind(task((3, 16, 16)))
    x = batch((3, 16, 16), n=1).expand(64, -1, -1, -1)
    out = aug.strong(x, gen())
    assert len({tuple(row.flatten().tolist()) for row in out}) >= 60
    assert out.min() >= 0 and out.max() <= 1


def test_all_off_is_the_identity():
    aug = ImageAugment(**PLAIN, flip=None).bind(task((3, 9, 7)))
    x = batch((3, 9, 7), n=100)
    assert torch.equal(aug.weak(x, gen()), x) and torch.equal(aug.strong(x, gen()), x)


def mirrored_share(aug: Augment, view: str, x: torch.Tensor) -> float:
    out = getattr(aug, view)(x, gen())
    same = (out == x).flatten(1).all(dim=1)
    mirrored = (out == x.flip(-1)).flatten(1).all(dim=1)
    assert (same ^ mirrored).all()  # each item is itself or its mirror image
    return mirrored.float().mean().item()


@pytest.mark.parametrize("view", ["weak", "strong"])
def test_flips_only_where_the_dataset_allows_them(view):
    x = batch((1, 8, 8), n=1000)  # random images: none is its own mirror image
    assert not (x == x.flip(-1)).flatten(1).all(dim=1).any()
    digits_like = task((1, 8, 8), flip_invariant=False)
    mirror_safe = task((1, 8, 8), flip_invariant=True)
    assert mirrored_share(ImageAugment(**PLAIN).bind(digits_like), view, x) == 0
    assert mirrored_share(ImageAugment(**PLAIN, flip=False).bind(mirror_safe), view, x) == 0
    for flip in (None, True):
        share = mirrored_share(ImageAugment(**PLAIN, flip=flip).bind(mirror_safe), view, x)
        assert 0.43 < share < 0.57


def test_default_image_recipe_on_digits():
    view = digits()
    aug = ImageAugment().bind(view)
    assert aug._pad == (1, 1)  # 0.125 of 8 pixels
    x = torch.tensor(view.x[:256]).reshape(256, *view.input_shape)
    weak, strong = aug.weak(x, gen()), aug.strong(x, gen())
    # weak: a pure crop of the reflected image (values kept); strong: new values
    assert set(weak.unique().tolist()) <= set(x.unique().tolist())
    assert not set(strong.unique().tolist()) <= set(x.unique().tolist())
    assert strong.min() >= 0 and strong.max() <= 1


# -- what the vector ops do -------------------------------------------------------------


def skewed_features(n: int = 3000, d: int = 12) -> np.ndarray:
    """Features with different means and spreads; the last one constant."""
    rng = np.random.default_rng(0)
    scale = np.linspace(0.5, 20.0, d)
    scale[-1] = 0.0
    return (rng.normal(size=(n, d)) * scale + np.arange(d) * 7 - 30).astype(np.float32)


def test_vector_masking_rate_and_value():
    data = skewed_features()
    aug = VectorAugment(weak_noise=0, strong_noise=0, weak_mask=0.1, strong_mask=0.3)
    aug = aug.bind(task((12,), x=data))
    mean = torch.as_tensor(data.astype(np.float64).mean(axis=0), dtype=torch.float32)
    x = torch.as_tensor(data[:2000]).repeat(3, 1)
    for view, rate in (("weak", 0.1), ("strong", 0.3)):
        out = getattr(aug, view)(x, gen())
        changed = out != x
        assert changed[:, :-1].float().mean().item() == pytest.approx(rate, abs=0.01)
        assert torch.equal(out[changed], mean.expand_as(x)[changed])


def test_vector_noise_scales_with_each_feature_std():
    data = skewed_features()
    aug = VectorAugment(weak_noise=0.1, strong_noise=0.5, strong_mask=0).bind(task((12,), x=data))
    x = torch.as_tensor(data)
    std = torch.as_tensor(data.astype(np.float64).std(axis=0), dtype=torch.float32)
    for view, noise in (("weak", 0.1), ("strong", 0.5)):
        delta = getattr(aug, view)(x, gen()) - x
        ratio = delta[:, :-1].std(dim=0) / (noise * std[:-1])
        assert ((ratio - 1).abs() < 0.06).all(), ratio
        assert torch.equal(delta[:, -1], torch.zeros(len(x)))  # constant feature: no noise


def test_vector_augment_keeps_any_input_shape():
    view = digits()  # (1, 8, 8) images treated as 64 features
    aug = VectorAugment().bind(view)
    x = torch.tensor(view.x[:32]).reshape(32, 1, 8, 8)
    assert aug.strong(x, gen()).shape == (32, 1, 8, 8)
    assert aug.strong(x.reshape(32, 64), gen()).shape == (32, 64)


# -- checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (ImageAugment, {"pad": -1}, r"^pad=-1 must be a non-negative integer \(pixels\) or a"),
        (ImageAugment, {"pad": 1.5}, r"^pad=1.5 must be .* a number in \[0, 1\)"),
        (ImageAugment, {"pad": True}, r"^pad=True must be a non-negative integer"),
        (ImageAugment, {"n": 0}, r"^n=0 must be a positive integer \(ops per image\)$"),
        (ImageAugment, {"ops": ["Shift"]}, r"^ops=\['Shift'\] has unknown op 'Shift'; allowed: "),
        (ImageAugment, {"cutout": 1.5}, r"^cutout=1.5 is outside \[0, 1\]$"),
        (ImageAugment, {"cutout_fill": -0.5}, r"^cutout_fill=-0.5 is outside \[0, 1\]$"),
        (ImageAugment, {"flip": "auto"}, r"^flip=auto must be true, false or null \(auto\)"),
        (VectorAugment, {"weak_noise": -1}, r"^weak_noise=-1 must be a non-negative number"),
        (VectorAugment, {"strong_mask": 1.0}, r"^strong_mask=1.0 is outside \[0, 1\)"),
        (VectorAugment, {"weak_mask": -0.1}, r"^weak_mask=-0.1 is outside \[0, 1\)"),
        (ByModality, {"image": {"pad": 1}, "vector": Identity()}, r"^image=\{"),
        (ByModality, {"image": Identity(), "vector": None}, r"^vector=None must be an augm"),
    ],
)
def test_bad_arguments(factory, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        factory(**kwargs)


def test_image_augment_refuses_vectors():
    with pytest.raises(ConfigError, match=r"^input_shape=\(20,\) .*strategy/augment=vector"):
        ImageAugment().bind(task((20,)))


def test_flip_true_refused_on_digits():
    message = (
        "flip=true but dataset digits does not declare flips label-preserving"
        " (flip_invariant=false); allowed: false or null (auto)"
    )
    with pytest.raises(ConfigError) as info:
        ImageAugment(flip=True).bind(digits())
    assert str(info.value) == message


def test_image_augment_refuses_a_pad_beyond_the_image():
    ImageAugment(pad=7).bind(task((1, 8, 8)))
    message = (
        "pad=8 is too large for 8x8 images of dataset toy; reflect padding must be below the"
        " side: at most 7 px"
    )
    with pytest.raises(ConfigError) as info:
        ImageAugment(pad=8).bind(task((1, 8, 8)))
    assert str(info.value) == message
    with pytest.raises(ConfigError, match=r"^pad=12 is too large for 12x9 images"):
        ImageAugment(pad=12).bind(task((3, 12, 9)))
    ImageAugment(pad=0.9).bind(task((3, 12, 9)))  # a fraction is always below the side


@pytest.mark.parametrize("values", [(-1.0, 1.0), (0.0, 255.0), (0.0, float("nan"))])
def test_image_augment_refuses_pixels_outside_0_1(values):
    x = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    x[3, 5], x[7, 1] = values
    with pytest.raises(ConfigError, match=r"^dataset toy has pool pixel values in \[") as info:
        ImageAugment().bind(task((1, 8, 8), x=x))
    assert str(info.value).endswith(
        "; ImageAugment's ops need pixels in [0, 1] (e.g. dataset.standardize=false)"
    )
    view = task((1, 8, 8), x=x)  # only the pool counts
    pool_only = dataclasses.replace(view, pool=np.arange(10, 64))
    ImageAugment().bind(pool_only)


def test_image_augment_refuses_other_channel_counts():
    message = (
        "input_shape=(4, 8, 8) of dataset toy has 4 channels; ImageAugment takes 1 (grey) or"
        " 3 (RGB)"
    )
    with pytest.raises(ConfigError) as info:
        ImageAugment().bind(task((4, 8, 8)))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "aug", [ImageAugment(), VectorAugment(), ByModality(Identity(), Identity())]
)
def test_unbound_augmentations_say_to_bind(aug):
    x = batch((1, 8, 8))
    for view in ("weak", "strong"):
        with pytest.raises(RuntimeError, match=r"call bind\(task\) first"):
            getattr(aug, view)(x, gen())


def test_bound_augmentations_refuse_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(4, 64\)"):
        ImageAugment().bind(task((1, 8, 8))).weak(torch.zeros(4, 64), gen())
    with pytest.raises(ValueError, match="20 features"):
        VectorAugment().bind(task((20,))).weak(torch.zeros(4, 21), gen())


def test_bind_returns_a_copy():
    aug = ImageAugment()
    bound = aug.bind(task((1, 8, 8)))
    assert bound is not aug
    with pytest.raises(RuntimeError):
        aug.weak(batch((1, 8, 8)), gen())


@pytest.mark.parametrize(
    ("modality", "shape", "takes_images", "expected"),
    [
        ("image", (1, 8, 8), None, ImageAugment),
        ("image", (1, 8, 8), True, ImageAugment),
        ("image", (1, 8, 8), False, VectorAugment),  # an MLP flattens the pixels
        ("vector", (20,), None, VectorAugment),
        ("vector", (20,), True, VectorAugment),
        ("text", (20,), None, VectorAugment),
    ],
)
def test_by_modality_augments_what_the_network_sees(modality, shape, takes_images, expected):
    chosen = ByModality(ImageAugment(), VectorAugment()).bind(
        task(shape, modality=modality), takes_images
    )
    assert type(chosen) is expected


def test_models_say_whether_they_take_images():
    assert takes_images(functools.partial(CNNSmall, channels=(8, 8))) is True
    assert takes_images(functools.partial(functools.partial(MLP), hidden=[4])) is False
    assert takes_images(MLP) is False
    assert takes_images(torch.nn.Linear) is None  # says nothing: augment by the data


def test_conf_models_say_whether_they_take_images():
    models = Path(__file__).resolve().parent.parent / "conf" / "model"
    said = {p.stem: takes_images(instantiate(OmegaConf.load(p))) for p in models.glob("*.yaml")}
    assert said == {
        "cnn_small": True,
        "resnet18_cifar": True,
        "wrn28_2": True,
        "wrn28_8": True,
        "wrn37_2": True,
        "preact_resnet18": True,
        "mlp": False,
        "cnn1d": False,  # a 1-D signal: no image views
        "linear": False,
        "hf": True,  # ViTs read images as images; on text it reads token ids (augment=tokens)
    }


# -- conf/strategy/augment -------------------------------------------------------------

OPTIONS = sorted(AUGMENT_DIR.glob("*.yaml"))


def test_augment_options_exist():
    assert {p.stem for p in OPTIONS} >= {"by_modality", "image", "vector", "none"}


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: p.stem)
def test_augment_option_instantiates_and_binds(path):
    assert path.read_text().startswith("# ")  # one-line comment on top
    aug = instantiate(OmegaConf.load(path))
    assert isinstance(aug, Augment)
    if path.stem == "tokens":  # token ids only (tests/test_text_augment.py binds it on them)
        with pytest.raises(ConfigError, match="needs token ids"):
            aug.bind(digits())
        return
    views = [digits()]
    if path.stem != "image":
        views.append(synthetic())
    for view in views:
        bound = aug.bind(view)
        x = torch.tensor(view.x[:8]).reshape(8, *view.input_shape)
        for draw in (bound.weak, bound.strong):
            assert draw(x, gen()).shape == x.shape


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: p.stem)
def test_augment_option_spells_out_every_argument(path):
    def check(node):
        params = set(inspect.signature(get_class(node["_target_"])).parameters)
        assert set(node) - {"_target_"} == params, path.name
        for value in node.values():
            if isinstance(value, dict):
                check(value)

    check(OmegaConf.to_container(OmegaConf.load(path)))


def test_by_modality_matches_the_single_options():
    both = OmegaConf.load(AUGMENT_DIR / "by_modality.yaml")
    assert both.image == OmegaConf.load(AUGMENT_DIR / "image.yaml")
    assert both.vector == OmegaConf.load(AUGMENT_DIR / "vector.yaml")
    # and the yaml values are the constructors' defaults
    assert repr(instantiate(both.image)) == repr(ImageAugment())
    assert repr(instantiate(both.vector)) == repr(VectorAugment())
