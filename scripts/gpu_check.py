"""GPU check: `model=resnet18_cifar` through the shared training loop on one CUDA device, in
32-bit and in bf16 mixed precision: optimizer steps per second and peak GPU memory.

    python scripts/gpu_check.py [--steps 400] [--batch-size 256]

Run on a machine with a CUDA device. The inputs are random 3x32x32 images with random
labels (CIFAR-10's shape and size: 50,000 pool + validation items), since nothing can be
downloaded there; steps per second and memory do not depend on the pixels. Each precision
is fitted twice, a short warm-up then the timed fit, so CUDA start-up and cuDNN autotuning
stay out of the figure. Prints one line per precision.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from labelbench.data.task import TaskData, stratified_split
from labelbench.labels import Clean, Full, reveal
from labelbench.strategies.supervised import Supervised

ROOT = Path(__file__).resolve().parent.parent


def cifar_shaped(n: int = 50_000, seed: int = 0) -> TaskData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    return TaskData(
        name="cifar-shaped",
        x=x,
        y=y,
        classes=tuple(str(c) for c in range(10)),
        modality="image",
        input_shape=(3, 32, 32),
        split=stratified_split(y, 0.02, 0.02, seed),
    )


def fit(task, pool, precision: str, steps: int, batch_size: int) -> tuple[float, float]:
    """(optimizer steps per second, peak GPU memory in GiB) of one fit."""
    model = instantiate(OmegaConf.load(ROOT / "conf" / "model" / "resnet18_cifar.yaml"))
    trainer = functools.partial(
        pl.Trainer, accelerator="gpu", devices=1, precision=precision, logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    strategy = Supervised(
        functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
        max_steps=steps, batch_size=batch_size, eval_every=steps, patience=0,
    )  # fmt: skip
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    predictor = strategy.fit(pool, task.view(), model, trainer, seed=0)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    assert predictor.fit_info["steps"] == steps
    return steps / seconds, torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here")
    torch.backends.cudnn.benchmark = True
    task = cifar_shaped()
    pool, _ = reveal(task, Clean(), Full(), seed=0, split_seed=0)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, pool {len(pool)}")
    for precision in ("32-true", "bf16-mixed"):
        fit(task, pool, precision, 20, args.batch_size)  # warm-up
        rate, memory = fit(task, pool, precision, args.steps, args.batch_size)
        images = rate * args.batch_size
        print(
            f"resnet18_cifar {precision}: {rate:.1f} optimizer steps/s"
            f" ({images:,.0f} images/s, batch {args.batch_size}), peak memory {memory:.2f} GiB"
        )


if __name__ == "__main__":
    main()
