"""A PNG grid of the image views (conf/strategy/augment/image.yaml): one row per image, columns
original, weak, strong and strong again (a second draw). Rows: digits from the Digits source
(1x8x8, no flips: a mirrored digit is another symbol) and generated CIFAR-shaped colour
images (3x32x32 gradients, shapes and stripes; there is no CIFAR here), on a task that
declares flips label-preserving. Small images are upscaled (nearest) to be visible.

    .venv/bin/python scripts/augment_grid.py [--out docs/augment_views.png] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from labelbench.data.sources import Digits
from labelbench.data.task import TaskView

ROOT = Path(__file__).resolve().parents[1]
YAML = ROOT / "conf" / "strategy" / "augment" / "image.yaml"
CELL, GAP, HEADER_H, TITLE_H = 96, 4, 18, 32
COLUMNS = ("original", "weak", "strong", "strong (2nd draw)")
N_DIGITS = 4
INK, PAPER = (20, 20, 20), (255, 255, 255)


def generated_images() -> tuple[list[str], np.ndarray]:
    """Four synthetic 3x32x32 colour images in [0, 1], asymmetric so flips show."""
    s = 32
    yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
    names, images = [], []

    # 1. a colour gradient with a bright bar near the left edge
    g = np.stack([xx, yy, 1 - xx * yy])
    g[:, 6:26, 3:7] = 1.0
    names.append("gradient + bar")
    images.append(g)

    # 2. shapes: a red disc, a yellow triangle pointing right, on blue
    img = Image.new("RGB", (s, s), (40, 60, 160))
    d = ImageDraw.Draw(img)
    d.ellipse((3, 3, 15, 15), fill=(220, 40, 40))
    d.polygon([(14, 18), (14, 30), (29, 24)], fill=(240, 220, 40))
    names.append("disc + triangle")
    images.append(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255)

    # 3. diagonal colour stripes
    phase = ((xx + 0.5 * yy) * 6) % 1
    names.append("stripes")
    images.append(np.stack([phase, 0.5 + 0.5 * (phase < 0.5), 1 - phase]) * 0.9)

    # 4. a checkerboard with a green "L" (asymmetric both ways)
    board = ((np.arange(s)[:, None] // 4 + np.arange(s)[None] // 4) % 2) * 0.6 + 0.2
    c = np.stack([board, board, board])
    c[:, 6:26, 8:12] = np.array([0.1, 0.8, 0.2])[:, None, None]
    c[:, 22:26, 8:24] = np.array([0.1, 0.8, 0.2])[:, None, None]
    names.append("checks + L")
    images.append(c)
    return names, np.clip(np.stack(images), 0, 1).astype(np.float32)


def cifar_shaped_task(images: np.ndarray) -> TaskView:
    return TaskView(
        name="generated 3x32x32",
        x=images.reshape(len(images), -1),
        classes=("a", "b"),
        modality="image",
        input_shape=images.shape[1:],
        pool=np.arange(len(images)),
        val=np.arange(0),
        flip_invariant=True,  # these generated images may be mirrored
    )


def views(task: TaskView, x: np.ndarray, seed: int) -> list[np.ndarray]:
    """original, weak, strong, strong: each (B, C, H, W) in [0, 1]."""
    augment = instantiate(OmegaConf.load(YAML)).bind(task)
    batch = torch.as_tensor(x, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    out = [batch, augment.weak(batch, gen), augment.strong(batch, gen), augment.strong(batch, gen)]
    return [v.clamp(0, 1).numpy() for v in out]


def to_cell(image: np.ndarray) -> Image.Image:
    """(C, H, W) in [0, 1] -> an RGB PIL image upscaled (nearest) to fit a CELL square."""
    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    pil = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))
    scale = max(1, CELL // max(pil.size))
    return pil.convert("RGB").resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def grid(rows: list[tuple[str, list[np.ndarray]]], title: list[str]) -> Image.Image:
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = int(max(measure.textlength(label) for label, _ in rows)) + 10
    text_w = int(max(measure.textlength(line) for line in title)) + 8
    width = max(label_w + len(COLUMNS) * (CELL + GAP), text_w)
    height = TITLE_H + HEADER_H + len(rows) * (CELL + GAP)
    canvas = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(title):
        draw.text((4, 2 + 14 * i), line, fill=INK)
    for j, name in enumerate(COLUMNS):
        draw.text((label_w + j * (CELL + GAP) + 2, TITLE_H + 3), name, fill=INK)
    for i, (label, cells) in enumerate(rows):
        top = TITLE_H + HEADER_H + i * (CELL + GAP)
        draw.text((4, top + CELL // 2 - 6), label, fill=INK)
        for j, cell in enumerate(cells):
            tile = to_cell(cell)
            left = label_w + j * (CELL + GAP)
            canvas.paste(tile, (left + (CELL - tile.width) // 2, top + (CELL - tile.height) // 2))
    return canvas


def save_atomically(image: Image.Image, out: Path) -> None:
    """Write to a temporary file in the same folder, then rename it over `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", optimize=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "augment_views.png"))
    parser.add_argument("--seed", type=int, default=0, help="the augmentation generator's seed")
    args = parser.parse_args()

    digits = Digits().load(0).view()
    picks = np.asarray(digits.pool)[:: max(1, len(digits.pool) // N_DIGITS)][:N_DIGITS]
    x_digits = np.asarray(digits.x)[picks].reshape(len(picks), *digits.input_shape)
    names, x_gen = generated_images()

    rows = []
    for labels, task, x in (
        ([f"digit #{i}" for i in picks], digits, x_digits),
        ([f"{n} (gen.)" for n in names], cifar_shaped_task(x_gen), x_gen),
    ):
        per_view = views(task, x, args.seed)
        rows += [(label, [v[k] for v in per_view]) for k, label in enumerate(labels)]

    title = [
        f"ImageAugment views ({YAML.relative_to(ROOT)}), seed {args.seed}.",
        "Rows 1-4: Digits 8x8 (no flips). Rows 5-8: generated 3x32x32 images, not CIFAR.",
    ]
    out = Path(args.out)
    save_atomically(grid(rows, title), out)
    print(
        f"wrote {out}: {len(rows)} rows x {len(COLUMNS)} views, {out.stat().st_size / 1024:.0f} KB"
    )


if __name__ == "__main__":
    main()
