"""Fit overhead: the `supervised` strategy (Lightning) against a plain PyTorch loop doing the
same work, interleaved A/B, median ratio. Target: <= 1.15x.

Same work on both sides: digits (split_seed 0), the same revealed labels, MLP 64-256-10,
Adam(lr=1e-3), batch 64 reshuffled every pass, the same number of optimizer steps, a
validation pass every `eval_every` steps with best-weights restore. Early stopping is off so
both sides run every step. Both sides include building the model and optimizer; the
Lightning side also builds its Trainer (what a user pays per run).

    .venv/bin/python scripts/bench/fit_overhead.py [--steps 1500] [--repeats 7] [--budget full]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from labelbench.data.sources import Digits
from labelbench.labels import Clean, Full, Total, reveal
from labelbench.models.mlp import MLP
from labelbench.run import quiet_lightning
from labelbench.strategies.lightning import MinibatchStream
from labelbench.strategies.supervised import Supervised


def plain_fit(pool, view, steps: int, eval_every: int, batch_size: int, seed: int) -> float:
    """The reference: a hand-written loop, as tight as we would write it ourselves."""
    torch.manual_seed(seed)
    net = MLP(view.input_shape, view.num_classes, hidden=[256], dropout=0.1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.tensor(view.x.reshape(len(view.x), *view.input_shape))
    tr_idx, tr_y = torch.tensor(pool.indices), torch.tensor(pool.labels)
    x_val, y_val = x[torch.tensor(pool.val_indices)], torch.tensor(pool.val_labels)
    batches = MinibatchStream(len(tr_y), batch_size, seed, torch.device("cpu"))
    best, best_state, done = -1.0, None, 0
    while done < steps:
        net.train()
        for _ in range(min(eval_every, steps - done)):
            pick = next(batches)
            loss = F.cross_entropy(net(x[tr_idx[pick]]), tr_y[pick])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        done += min(eval_every, steps - done)
        net.eval()
        with torch.no_grad():
            acc = (net(x_val).argmax(1) == y_val).float().mean().item()
        if acc > best:
            best, best_state = acc, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return best


def lightning_fit(pool, view, steps: int, eval_every: int, batch_size: int, seed: int) -> float:
    import functools

    import pytorch_lightning as pl

    strategy = Supervised(
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        max_steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        patience=0,
    )
    trainer = functools.partial(
        pl.Trainer,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    model = functools.partial(MLP, hidden=[256], dropout=0.1)
    predictor = strategy.fit(pool, view, model, trainer, seed=seed)
    return predictor.fit_info["best_val/acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", default="full", help="'full' or a number of labels")
    parser.add_argument("--target", type=float, default=1.15)
    args = parser.parse_args()

    quiet_lightning()
    torch.set_num_threads(torch.get_num_threads())
    task = Digits().load(split_seed=0)
    budget = Full() if args.budget == "full" else Total(int(args.budget))
    pool, _ = reveal(task, Clean(), budget, seed=0, split_seed=0)
    view = task.view()
    work = dict(steps=args.steps, eval_every=args.eval_every, batch_size=args.batch_size, seed=0)

    lightning_fit(
        pool, view, **{**work, "steps": args.eval_every}
    )  # warm-up: imports, first-call costs
    plain_fit(pool, view, **{**work, "steps": args.eval_every})
    times: dict[str, list[float]] = {"plain": [], "lightning": []}
    for r in range(args.repeats):
        order = [("plain", plain_fit), ("lightning", lightning_fit)]
        for name, fn in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
            t = time.perf_counter()
            fn(pool, view, **work)
            times[name].append(time.perf_counter() - t)
    ratios = [lt / pt for lt, pt in zip(times["lightning"], times["plain"], strict=True)]
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(ratios)
    print(
        f"fit overhead: digits, {len(pool)} labels, MLP 64-256-10, batch {args.batch_size}, "
        f"{args.steps} steps, eval every {args.eval_every}, {args.repeats} interleaved repeats, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"  plain PyTorch loop   median {med['plain']:.3f} s  ({1e3 * med['plain'] / args.steps:.3f} ms/step)"
    )
    print(
        f"  supervised (Trainer) median {med['lightning']:.3f} s  ({1e3 * med['lightning'] / args.steps:.3f} ms/step)"
    )
    print(
        f"  median ratio {ratio:.3f}x  (per-repeat: {', '.join(f'{r:.3f}' for r in ratios)})  "
        f"target <= {args.target}x: {'PASS' if ratio <= args.target else 'FAIL'}"
    )
    print(
        json.dumps(
            {
                "figure": "fit_overhead_supervised",
                "ratio": round(ratio, 4),
                "target": args.target,
                "plain_s": round(med["plain"], 4),
                "lightning_s": round(med["lightning"], 4),
                "steps": args.steps,
                "machine": platform.node(),
            }
        )
    )


if __name__ == "__main__":
    main()
