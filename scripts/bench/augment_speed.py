"""Throughput of the strong view for one FixMatch step's unlabeled batch (448 images,
3x32x32): labelbench's `ImageAugment.strong` (conf/strategy/augment/image.yaml, batched torch
ops) on CPU, with the torch threads the machine has and with one (per core, like the
reference), and on CUDA where there is one, against the reference way of USB and TorchSSL: a
per-image PIL pipeline in DataLoader workers, here in one process on one core, so its figure
is images/s per CPU core. On a CPU that other processes keep busy, the multi-thread row
mostly measures the wait for the other threads' cores: read the one-thread row.

The reference does, per image, what USB's `transform_strong` does to a CIFAR image
(semilearn/datasets/cv_datasets/cifar.py, augmentation/randaugment.py): a uint8 PIL image,
horizontal flip with probability 0.5 and a random crop after 4 px reflect padding, RandAugment
(`random.choices` of 2 of the 14 ops, magnitudes uniform in USB's ranges), Cutout of side
uniform in [0, 0.5] x width filled with (125, 123, 114), then ToTensor: the images as one
float (B, C, H, W) batch in [0, 1], what a worker hands over.

`--step` also times one whole FixMatch step of wrn28_2 (conf/model/wrn28_2.yaml) on each
device: the views it needs (the weak view of 64 = 448 / mu labeled images, the weak and the
strong view of the 448 unlabeled ones), then one forward of the three batches together (as
USB concatenates them), cross-entropy on the labeled part, FixMatch's masked pseudo-label
loss, backward and an SGD step; it prints the views' share of the step.

Targets (CUDA only): ours >= 20x the PIL pipeline's images/s per core, and the views <= 15%
of a wrn28_2 FixMatch step. The JSON figures (--json, for scripts/bench/all.py) are
milliseconds per batch, lower is better: on CUDA with target = the PIL time per core / 20;
on CPU informational (target None); the step share in percent.

    .venv/bin/python scripts/bench/augment_speed.py [--batch 448] [--repeats 7]
        [--device cpu|cuda|all] [--step] [--json FILE]

Exits 1 only when a CUDA target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from benchlib import ROOT, figure
from labelbench.data.task import TaskView
from labelbench.strategies.semi import confidence_mask, masked_cross_entropy

YAML = ROOT / "conf" / "strategy" / "augment" / "image.yaml"
SHAPE = (3, 32, 32)
CUDA_TARGET = 20.0  # ours on CUDA >= 20x the PIL pipeline's images/s per core
STEP_SHARE = 0.15  # on CUDA the views are at most 15% of a wrn28_2 FixMatch step
MU = 7  # FixMatch's unlabeled batch is mu x the labeled one: 448 = 7 x 64
WRN_YAML = ROOT / "conf" / "model" / "wrn28_2.yaml"
WARMUP = 3


# --- the reference way: USB / TorchSSL, one PIL image at a time --------------------------
# USB semilearn/datasets/augmentation/randaugment.py: each op takes (img, v), v drawn
# uniformly in the op's (low, high).
def _affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, coeffs)


USB_OPS: list[tuple[Callable[[Image.Image, float], Image.Image], float, float]] = [
    (lambda img, v: ImageOps.autocontrast(img), 0, 1),  # AutoContrast
    (lambda img, v: ImageEnhance.Brightness(img).enhance(v), 0.05, 0.95),  # Brightness
    (lambda img, v: ImageEnhance.Color(img).enhance(v), 0.05, 0.95),  # Color
    (lambda img, v: ImageEnhance.Contrast(img).enhance(v), 0.05, 0.95),  # Contrast
    (lambda img, v: ImageOps.equalize(img), 0, 1),  # Equalize
    (lambda img, v: img, 0, 1),  # Identity
    (lambda img, v: ImageOps.posterize(img, max(1, int(v))), 4, 8),  # Posterize
    (lambda img, v: img.rotate(v), -30, 30),  # Rotate
    (lambda img, v: ImageEnhance.Sharpness(img).enhance(v), 0.05, 0.95),  # Sharpness
    (lambda img, v: _affine(img, (1, v, 0, 0, 1, 0)), -0.3, 0.3),  # ShearX
    (lambda img, v: _affine(img, (1, 0, 0, v, 1, 0)), -0.3, 0.3),  # ShearY
    (lambda img, v: ImageOps.solarize(img, v), 0, 256),  # Solarize
    (lambda img, v: _affine(img, (1, 0, v * img.size[0], 0, 1, 0)), -0.3, 0.3),  # TranslateX
    (lambda img, v: _affine(img, (1, 0, 0, 0, 1, v * img.size[1])), -0.3, 0.3),  # TranslateY
]


def usb_cutout(img: Image.Image, v: float, rng: random.Random) -> Image.Image:
    """USB's Cutout/CutoutAbs: a square of side v x width at a uniform centre, clipped to
    the image, filled with (125, 123, 114)."""
    if v <= 0:
        return img
    side = v * img.size[0]
    w, h = img.size
    x0 = int(max(0, rng.uniform(0, w) - side / 2))
    y0 = int(max(0, rng.uniform(0, h) - side / 2))
    x1, y1 = int(min(w, x0 + side)), int(min(h, y0 + side))
    img = img.copy()
    ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), (125, 123, 114))
    return img


def usb_strong(array: np.ndarray, rng: random.Random, pad: int = 4) -> Image.Image:
    """One image (H, W, 3) uint8 as USB's transform_strong sees it: PIL image, flip, reflect
    pad crop (torchvision pads a PIL image through numpy for reflect), RandAugment(n=2)
    with FixMatch's Cutout."""
    if rng.random() < 0.5:  # RandomHorizontalFlip
        array = array[:, ::-1]
    h, w = array.shape[:2]
    padded = np.pad(array, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    top, left = rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)  # RandomCrop
    img = Image.fromarray(np.ascontiguousarray(padded[top : top + h, left : left + w]))
    for op, low, high in rng.choices(USB_OPS, k=2):  # RandAugment: 2 ops, with replacement
        img = op(img, low + (high - low) * rng.random())
    return usb_cutout(img, rng.random() * 0.5, rng)


def pil_reference(images: list[np.ndarray], rng: random.Random) -> torch.Tensor:
    """The whole batch the reference way, then ToTensor (which copies the PIL image into a
    new array) and the DataLoader's collate: (B, 3, H, W) floats in [0, 1]."""
    views = [usb_strong(a, rng) for a in images]
    return torch.stack(
        [torch.from_numpy(np.array(v)).permute(2, 0, 1).float().div_(255) for v in views]
    )


# --- timing -------------------------------------------------------------------------------
def median_seconds(call: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    for _ in range(WARMUP):
        call()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bound_augment(batch: int):
    """The image view from its YAML, bound to a CIFAR-shaped task that allows flips."""
    x = np.random.default_rng(1).random((batch, math.prod(SHAPE)), dtype=np.float32)
    task = TaskView(
        name="cifar-shaped (random)",
        x=x,
        classes=("a", "b"),
        modality="image",
        input_shape=SHAPE,
        pool=np.arange(batch),
        val=np.arange(0),
        flip_invariant=True,
    )
    return instantiate(OmegaConf.load(YAML)).bind(task)


def fixmatch_step(augment, device: str, n: int, repeats: int, sync) -> tuple[float, float]:
    """(seconds of a wrn28_2 FixMatch step, seconds of its views) on `device`: medians."""
    gen, labeled = torch.Generator().manual_seed(0), max(1, n // MU)
    model = instantiate(OmegaConf.load(WRN_YAML))(in_shape=SHAPE, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True)
    xl = torch.rand((labeled, *SHAPE), generator=gen).to(device)
    xu = torch.rand((n, *SHAPE), generator=gen).to(device)
    yl = torch.randint(0, 10, (labeled,), generator=gen).to(device)

    def views():
        return augment.weak(xl, gen), augment.weak(xu, gen), augment.strong(xu, gen)

    def step():
        wl, wu, su = views()
        logits = model(torch.cat([wl, wu, su]))
        ll, lw, ls = logits[:labeled], logits[labeled : labeled + n], logits[labeled + n :]
        conf, pseudo = lw.detach().softmax(1).max(1)
        unsup = masked_cross_entropy(ls, pseudo, confidence_mask(conf, 0.95))  # fixmatch.py's
        loss = torch.nn.functional.cross_entropy(ll, yl) + unsup
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    step_s = median_seconds(step, repeats, sync)
    return step_s, median_seconds(views, repeats, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=448, help="images per batch (448)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls (median)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--step", action="store_true",
                        help="also time a whole wrn28_2 FixMatch step and the views' share")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")

    n = args.batch
    x = torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(0))
    augment = bound_augment(n)
    threads = torch.get_num_threads()

    # The reference: one process, one core (torch too, for the ToTensor/collate part).
    images = [(a.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for a in x]
    rng = random.Random(0)
    torch.set_num_threads(1)
    pil_s = median_seconds(lambda: pil_reference(images, rng), args.repeats, lambda: None)
    torch.set_num_threads(threads)
    pil_rate = n / pil_s

    # Ours: (device label, device, torch threads, seconds); on CPU with the machine's torch
    # threads and, where that is more than one, on one thread too (per core, as the PIL row).
    cases = []
    if args.device in ("cpu", "all"):
        cases += [("cpu", t) for t in dict.fromkeys((threads, 1))]
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        cases.append(("cuda", threads))
    rows = []
    for device, t in cases:
        gen = torch.Generator().manual_seed(0)  # a CPU generator, as the strategies use
        batch = x.to(device)
        if device == "cuda":
            label, sync = f"cuda, {torch.cuda.get_device_name()}", torch.cuda.synchronize
        else:
            label, sync = f"cpu, {t} torch thread{'s' * (t > 1)}", lambda: None
        torch.set_num_threads(t)
        seconds = median_seconds(lambda b=batch, g=gen: augment.strong(b, g), args.repeats, sync)
        torch.set_num_threads(threads)
        rows.append((label, device, t, seconds))

    print(f"strong view of {n} random 3x32x32 images ({YAML.relative_to(ROOT)}), median "
          f"of {args.repeats} calls after {WARMUP} warm-up; torch.get_num_threads() = "
          f"{threads}\n")  # fmt: skip
    print("| implementation | device | images/s | images/s per core "
          "| ratio ours / PIL per core |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| PIL per image, the USB/TorchSSL reference | cpu, 1 core | {pil_rate:.0f} | "
          f"{pil_rate:.0f} | — |")  # fmt: skip
    for label, device, t, seconds in rows:
        rate = n / seconds
        per_core = f"{rate:.0f}" if device == "cpu" and t == 1 else "—"
        print(f"| ours: ImageAugment.strong | {label} | {rate:.0f} | {per_core} | "
              f"{rate / pil_rate:.2f}x |")  # fmt: skip

    figures = [
        figure(f"augment: PIL reference strong view, {n} images, one core (ms/batch)",
               None, pil_s * 1e3, "ms", images_per_s_per_core=pil_rate)
    ]  # fmt: skip
    missed = False
    for label, device, t, seconds in rows:
        rate = n / seconds
        extra = {"images_per_s": rate, "ratio_to_pil_per_core": rate / pil_rate}
        if device == "cuda":
            target = pil_s * 1e3 / CUDA_TARGET  # >= 20x the images/s: <= 1/20 of the time
            met = seconds * 1e3 <= target
            missed |= not met
            print(f"\n| target | met | figures |\n|---|---|---|\n| ours on CUDA >= "
                  f"{CUDA_TARGET:g}x PIL per core | {'yes' if met else 'NO'} | {rate:.0f} vs "
                  f"{pil_rate:.0f} images/s: {rate / pil_rate:.1f}x ({label}) |")  # fmt: skip
            name = (f"augment: strong view on CUDA, {n} images (ms/batch; target: "
                    f">= {CUDA_TARGET:g}x PIL per core)")  # fmt: skip
        else:
            target, extra["torch_threads"] = None, t
            name = (f"augment: strong view on CPU, {n} images, {t} torch "
                    f"thread{'s' * (t > 1)} (ms/batch)")  # fmt: skip
        figures.append(figure(name, target, seconds * 1e3, "ms", **extra))
    if args.step:
        shares = step_shares(augment, cases, n, args.repeats)
        missed |= any(f["target"] is not None and f["measured"] > f["target"] for f in shares)
        figures += shares
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if missed:
        sys.exit(f"augment_speed: a CUDA target missed (>= {CUDA_TARGET:g}x PIL per core, "
                 f"views <= {STEP_SHARE:.0%} of a wrn28_2 FixMatch step)")  # fmt: skip


def step_shares(augment, cases, n: int, repeats: int) -> list[dict]:
    """The views' share of a wrn28_2 FixMatch step on each device (CPU with the machine's
    threads only): a printed table and one figure per device."""
    figures = []
    print(f"\nwrn28_2 FixMatch step ({max(1, n // MU)} labeled + {n} x 2 unlabeled views):\n")
    print("| device | step ms | views ms | views' share | target |")
    print("|---|---|---|---|---|")
    for device in dict.fromkeys(d for d, _ in cases):
        if device == "cuda":
            label, sync, target = torch.cuda.get_device_name(), torch.cuda.synchronize, STEP_SHARE
        else:
            label, sync, target = f"cpu, {torch.get_num_threads()} threads", lambda: None, None
        step_s, views_s = fixmatch_step(augment, device, n, max(1, repeats // 2), sync)
        share = views_s / step_s
        shown = f"<= {target:.0%}" if target else "— (CUDA only)"
        print(f"| {label} | {step_s * 1e3:.1f} | {views_s * 1e3:.1f} | {share:.1%} | {shown} |")
        figures.append(figure(f"augment: views' share of a wrn28_2 FixMatch step on {device} "
                              "(%)", None if target is None else target * 100, share * 100, "%",
                              step_ms=step_s * 1e3, views_ms=views_s * 1e3))  # fmt: skip
    return figures


if __name__ == "__main__":
    main()
