"""Image backbones: forward + backward steps per second on CIFAR-shaped random data, and
their parameter counts.

    .venv/bin/python scripts/bench/backbones.py [--device cpu|cuda] [--models wrn28_2,...]
        [--batch-size 64] [--steps 5] [--warmup 2] [--channels-last] [--bf16] [--threads N]

Each backbone is built from its conf/model YAML for 10 classes and timed in train mode:
one step is a forward pass of a batch of random 3x32x32 images, cross-entropy on random
labels, a backward pass and zeroing the gradients (no optimizer update: the figure is the
network's). `--warmup` steps first (cuDNN autotuning, oneDNN kernel creation, caching
allocator), then `--steps` timed steps, each on its own; the table shows the median
(a shared machine is noisy). `--channels-last` also times each backbone in
torch.channels_last memory format, `--bf16` (CUDA only) also in bf16 autocast. On CUDA the
table adds the peak GPU memory of each timed configuration. No target: a record of speed.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("wrn28_2", "wrn28_8", "preact_resnet18", "resnet18_cifar")
SHAPE = (3, 32, 32)
CLASSES = 10


def backbone(name: str, channels_last: bool) -> torch.nn.Module:
    """conf/model/<name>.yaml's network for CIFAR-shaped inputs and 10 classes."""
    model = instantiate(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))
    if channels_last:
        model = functools.partial(model, channels_last=True)
    return model(in_shape=SHAPE, num_classes=CLASSES)


def time_steps(
    net: torch.nn.Module, device: torch.device, batch: int, steps: int, warmup: int, bf16: bool
) -> tuple[list[float], float | None]:
    """(seconds of each timed step, peak GPU memory in MiB or None on CPU)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *SHAPE, generator=gen).to(device)
    y = torch.randint(0, CLASSES, (batch,), generator=gen).to(device)
    net = net.to(device).train()
    cuda = device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        net.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return times, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="conf/model names, comma-separated"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--channels-last", action="store_true", help="also time channels_last")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast (CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if not (ROOT / "conf" / "model" / f"{m}.yaml").is_file()]
    if unknown or not models:
        parser.error(f"--models: {unknown or 'none given'}; choose from {', '.join(MODELS)}")
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--batch-size and --steps must be positive, --warmup non-negative")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device here")
    if args.bf16 and device.type != "cuda":
        parser.error("--bf16 is for --device cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    print(
        f"# backbones: forward + backward on random {SHAPE} images, batch {args.batch_size},"
        f" median of {args.steps} steps after {args.warmup}; {where}; torch {torch.__version__}"
    )
    cuda = device.type == "cuda"
    print("| model | parameters | memory format | precision | steps/s | images/s | ms/step |"
          + (" peak GPU MiB |" if cuda else ""))  # fmt: skip
    print("|---|---:|---|---|---:|---:|---:|" + ("---:|" if cuda else ""))
    for name in models:
        for channels_last in (False, True) if args.channels_last else (False,):
            net = backbone(name, channels_last)
            params = sum(p.numel() for p in net.parameters())
            for bf16 in (False, True) if args.bf16 else (False,):
                times, peak = time_steps(
                    net, device, args.batch_size, args.steps, args.warmup, bf16
                )
                s = statistics.median(times)
                row = (
                    f"| {name} | {params:,} | {'channels_last' if channels_last else 'NCHW'}"
                    f" | {'bf16 autocast' if bf16 else '32-bit'} | {1 / s:.2f}"
                    f" | {args.batch_size / s:.0f} | {1000 * s:.0f} |"
                )
                print(row + (f" {peak:.0f} |" if peak is not None else ""), flush=True)
            del net
            if cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
