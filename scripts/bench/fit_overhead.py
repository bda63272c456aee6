"""Fit overhead: every strategy that trains a network, as `labelbench-run` fits it
(Lightning), against a plain PyTorch loop doing the same work; interleaved A/B runs, median
ratio. Targets: <= 1.15x for supervised, <= 1.3x for the others.

The same work on both sides: each strategy is built from its own YAML (defaults and all)
with the run's trainer, logger (csv unless --logger says otherwise) and checkpointing, and
`strategy.fit` runs in full on both sides: the strategy's own data preparation,
aggregation, folds, rounds and queries. Only the training loop differs. On the plain side
`LightningStrategy.train` is swapped for `plain_train`: a hand-written loop (model, torch
optimizer, the same seeded minibatches and augmentation draws, a validation pass every
`eval_every` steps, the same early stopping and best-weights restore) whose loss for each
kind of module is written out here afresh, not taken from the module (the ramp schedules
are the package's own). Because every random draw matches, both sides end at the same step
with the same best validation score: the table shows it, and a mismatch is flagged (the
work was then not the same). Only `strategy.fit` is timed, as a record's fit_s is.

    .venv/bin/python scripts/bench/fit_overhead.py [--strategies supervised,fixmatch,...]
        [--repeats 5] [--logger csv|none] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from benchlib import figure
from labelbench.labels.reveal import Labeler, shape
from labelbench.models import takes_images
from labelbench.run import build, compose, placed, run_key
from labelbench.strategies.augment import Augment
from labelbench.strategies.base import Checkpointing
from labelbench.strategies.lightning import (
    AUGMENT_SEED_OFFSET,
    LightningStrategy,
    MinibatchStream,
    NetPredictor,
    param_groups,
)
from labelbench.strategies.mean_teacher import RAMPS
from labelbench.strategies.partial import TINY, complementary_loss
from labelbench.strategies.schedules import steps_of
from labelbench.strategies.semi import UNLABELED_SEED_OFFSET, linear_rampup

CPU = torch.device("cpu")
CIFAR_SHAPED = "{cifar_shaped}"  # stands for a folder of random 3x32x32 images, made on use
RECIPE = ("strategy.optimizer._target_=torch.optim.SGD", "strategy.optimizer.lr=0.03",
          "+strategy.optimizer.momentum=0.9", "+strategy.optimizer.nesterov=true",
          "strategy.optimizer.weight_decay=5e-4", "strategy.no_decay_norm_bias=true",
          "strategy/schedule=cosine", "strategy.ema_decay=0.999",
          "strategy.labeled_sampling=with_replacement", "strategy.grad_clip=5.0")  # fmt: skip
HF_TEXT = ("dataset=topics", "dataset/encoder=tokens", "model=hf",
           "strategy.optimizer._target_=torch.optim.AdamW", "strategy.optimizer.lr=2e-4",
           "strategy.optimizer.weight_decay=5e-4", "strategy.no_decay_norm_bias=true",
           "strategy.layer_decay=0.65", "strategy/schedule=cosine",
           "strategy.schedule.warmup=0.05")  # fmt: skip
NOISY = ("regime=symmetric", "regime.rate=0.4", "budget=full")
FEW = ("regime=clean", "budget=total", "budget.total=100")
# strategy -> the overrides of its setting: the regime it is built for, a budget that
# leaves an unlabeled pool for the semi-supervised ones. Everything else is the YAML's.
SETTINGS: dict[str, tuple[str, ...]] = {
    "supervised": NOISY,
    "supervised[loss=gce]": (*NOISY, "strategy/loss=gce"),
    "label_smoothing": NOISY,
    "coteaching": NOISY,
    "elr": NOISY,
    "cl_filter": NOISY,
    "distill": NOISY,
    "pseudo_label": FEW,
    "mean_teacher": FEW,
    "fixmatch": FEW,
    "flexmatch": FEW,
    "self_training": FEW,
    "label_propagation": FEW,
    "majority_vote": ("regime=crowd", "budget=total", "budget.total=1500"),
    "soft_crowd": ("regime=crowd", "budget=total", "budget.total=1500"),
    "label_model": ("regime=weak", "budget=full"),
    "proden": ("regime=partial", "budget=full"),
    "complementary": ("regime=complementary", "budget=full"),
    "active": ("regime=clean", "budget=total", "budget.total=40", "budget.balanced=false",
               "strategy.initial=10", "strategy.query_size=10"),
    # FixMatch's published loop (FixMatch Sec. 4, USB classic_cv): SGD with Nesterov
    # momentum, weight decay off biases and norm weights, the 7/16 cosine, an EMA of the
    # weights evaluated, full labeled batches drawn with replacement, clipping.
    "fixmatch[recipe]": (*FEW, *RECIPE),
    # ... on WRN-28-2 and CIFAR-shaped random images, a few steps (small batches: 2 cores).
    "fixmatch[wrn28_2]": ("dataset=cifar10", f"dataset.name={CIFAR_SHAPED}", "model=wrn28_2",
                          "budget=total", "budget.total=40", *RECIPE, "strategy.batch_size=8",
                          "strategy.max_steps=6", "strategy.eval_every=3"),
    # Fine-tuning a pretrained transformer as USB does (issue 21): the packaged
    # all-MiniLM-L6-v2 on topics' token ids, AdamW with layer-wise lr decay, warm-up + cosine.
    "supervised[hf-text]": (*HF_TEXT, "budget=per_class", "budget.per_class=10",
                            "strategy/augment=none", "strategy.batch_size=16",
                            "strategy.max_steps=40", "strategy.eval_every=20"),
    # ... and FixMatch on it, with the token-level strong views.
    "fixmatch[hf-text]": (*HF_TEXT, "budget=per_class", "budget.per_class=10",
                          "strategy.batch_size=8", "strategy.mu=1", "strategy.max_steps=20",
                          "strategy.eval_every=10"),
}  # fmt: skip
TARGETS = {"supervised": 1.15, "supervised[hf-text]": 1.1}
DEFAULT_TARGET = 1.3


# -- the plain side ----------------------------------------------------------------------
class Plain:
    """What a hand-written loop keeps: the networks, the data, the seeded minibatch
    streams and augmentation generator (drawn exactly as the Lightning module draws them),
    the optimizer's parameters, and the step count."""

    def __init__(
        self, strategy, net, data: dict[str, Tensor], seed: int, kw: dict, augment: Augment
    ) -> None:
        self.net, self.data, self.kw, self.steps_done = net, data, kw, 0
        self.augment = augment
        self.max_steps = strategy.steps_for(len(data["train_idx"]))
        self.params = list(net.parameters())
        # The recipe's EMA of the weights (mean teacher's teacher): validated and predicts.
        self.ema_decay = strategy.recipe.ema_decay
        self.ema = None if self.ema_decay is None else copy.deepcopy(net).requires_grad_(False)
        self.eval_net = net if self.ema is None else self.ema
        self.modules = [net] if self.ema is None else [net, self.ema]  # train() / eval()
        self.generator = torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET)
        replacement = strategy.recipe.labeled_sampling == "with_replacement"
        self.labeled = MinibatchStream(
            len(data["train_y"]), strategy.batch_size, seed, CPU, replacement=replacement
        )
        unlabeled = data.get("unlabeled_idx")
        self.unlabeled = (
            MinibatchStream(len(unlabeled), kw["mu"] * strategy.batch_size,
                            seed + UNLABELED_SEED_OFFSET, CPU)
            if unlabeled is not None and len(unlabeled) else None
        )  # fmt: skip

    def labeled_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        pick = next(self.labeled)
        return pick, self.data["x"][self.data["train_idx"][pick]], self.data["train_y"][pick]

    def unlabeled_batch(self) -> tuple[Tensor, Tensor] | None:
        if self.unlabeled is None:
            return None
        pick = next(self.unlabeled)
        return pick, self.data["x"][self.data["unlabeled_idx"][pick]]

    def weak(self, x: Tensor) -> Tensor:
        return self.augment.weak(x, self.generator)

    def strong(self, x: Tensor) -> Tensor:
        return self.augment.strong(x, self.generator)


Step = Callable[[], Tensor]  # one optimizer step's loss


def supervised_step(p: Plain) -> Step:
    loss = p.kw.get("loss") or F.cross_entropy  # the vote strategies set no loss: CE

    def step() -> Tensor:
        _, x, y = p.labeled_batch()
        return loss(p.net(p.weak(x)), y)

    return step


def soft_target_step(p: Plain) -> Step:
    def step() -> Tensor:
        pick, x, target = p.labeled_batch()
        w = p.data["train_w"][pick]
        return (F.cross_entropy(p.net(p.weak(x)), target, reduction="none") * w).sum() / w.sum()

    return step


def distill_step(p: Plain) -> Step:
    t, alpha, loss = p.kw["temperature"], p.kw["alpha"], p.kw["loss"]

    def step() -> Tensor:
        pick, x, soft = p.labeled_batch()
        logits = p.net(p.weak(x))
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="none").sum(dim=1)
        hard = p.data["train_hard"][pick]
        hard_part = (hard >= 0).float() * loss.per_item(logits, hard.clamp_min(0))
        return (alpha * t * t * kl + (1 - alpha) * hard_part).mean()

    return step


def coteaching_step(p: Plain) -> Step:
    peer = p.kw["peer"]
    p.modules.append(peer)
    p.params += list(peer.parameters())

    def step() -> Tensor:
        _, x, y = p.labeled_batch()
        x = p.weak(x)
        a, b = p.net(x), peer(x)
        rate = p.kw["forget_rate"] * linear_rampup(p.steps_done, p.kw["ramp_steps"])
        keep = max(1, math.ceil((1.0 - rate) * len(y)))
        with torch.no_grad():
            by_a = torch.argsort(F.cross_entropy(a, y, reduction="none"), stable=True)[:keep]
            by_b = torch.argsort(F.cross_entropy(b, y, reduction="none"), stable=True)[:keep]
        return F.cross_entropy(a[by_b], y[by_b]) + F.cross_entropy(b[by_a], y[by_a])

    return step


def elr_step(p: Plain) -> Step:
    beta, lam = p.kw["beta"], p.kw["lam"]
    target = torch.zeros(len(p.data["train_y"]), p.kw["num_classes"])

    def step() -> Tensor:
        pick, x, y = p.labeled_batch()
        logits = p.net(p.weak(x))
        probs = logits.softmax(dim=1).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            q = probs.detach()
            target[pick] = beta * target[pick] + (1 - beta) * q / q.sum(dim=1, keepdim=True)
        penalty = torch.log(1 - (probs * target[pick]).sum(dim=1)).mean()
        return F.cross_entropy(logits, y) + lam * penalty

    return step


def proden_step(p: Plain) -> Step:
    candidates = p.data["train_y"]
    weights = candidates / candidates.sum(dim=1, keepdim=True)

    def step() -> Tensor:
        pick, x, cand = p.labeled_batch()
        log_p = F.log_softmax(p.net(p.weak(x)), dim=1)
        loss = -(weights[pick] * log_p).sum(dim=1).mean()
        w = (log_p.detach().exp() + TINY) * cand
        weights[pick] = w / w.sum(dim=1, keepdim=True)
        return loss

    return step


def complementary_step(p: Plain) -> Step:
    def step() -> Tensor:
        _, x, cand = p.labeled_batch()
        return complementary_loss(p.net(p.weak(x)), cand)

    return step


def pseudo_label_step(p: Plain) -> Step:
    kw = p.kw

    def step() -> Tensor:
        _, x, y = p.labeled_batch()
        u = p.unlabeled_batch()
        t = p.steps_done - kw["warmup_steps"]
        ramp = linear_rampup(t, kw["rampup_steps"])
        w = kw["unlabeled_weight"] * ramp if t >= 0 else 0.0
        if u is None or w == 0:
            return F.cross_entropy(p.net(p.weak(x)), y)
        xw, uw = p.weak(x), p.weak(u[1])
        logits_x, logits_u = p.net(torch.cat([xw, uw])).split([len(xw), len(uw)])
        conf, pseudo = logits_u.detach().softmax(dim=1).max(dim=1)
        mask = (conf >= kw["threshold"]).float()
        unsup = (F.cross_entropy(logits_u, pseudo, reduction="none") * mask).mean()
        return F.cross_entropy(logits_x, y) + w * unsup

    return step


def fixmatch_step(p: Plain, flex: bool = False) -> Step:
    kw = p.kw
    selected = torch.full((len(p.data.get("unlabeled_idx", ())),), -1, dtype=torch.long)

    def thresholds(pseudo: Tensor) -> float | Tensor:
        if not flex:
            return kw["threshold"]
        counts = torch.bincount(selected[selected >= 0], minlength=kw["num_classes"]).double()
        top = counts.max()
        if kw["threshold_warmup"]:
            top = torch.maximum(top, (selected < 0).sum().double())
        beta = counts / top if top > 0 else torch.zeros_like(counts)
        return (kw["threshold"] * beta / (2 - beta)).float()[pseudo]

    def step() -> Tensor:
        _, x, y = p.labeled_batch()
        u = None if p.steps_done < kw["warmup_steps"] else p.unlabeled_batch()
        if u is None or kw["unlabeled_weight"] == 0:
            return F.cross_entropy(p.net(p.weak(x)), y)
        pick, xu = u
        views = [p.weak(x), p.weak(xu), p.strong(xu)]
        logits_x, logits_w, logits_s = p.net(torch.cat(views)).split([len(v) for v in views])
        with torch.no_grad():
            conf, pseudo = logits_w.softmax(dim=1).max(dim=1)
            mask = (conf >= thresholds(pseudo)).float()
            if flex:
                sure = conf >= kw["threshold"]
                selected[pick[sure]] = pseudo[sure]
        unsup = (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
        return F.cross_entropy(logits_x, y) + kw["unlabeled_weight"] * unsup

    return step


def mean_teacher_step(p: Plain) -> Step:
    kw = p.kw
    rampup = steps_of("rampup_steps", kw["rampup_steps"], p.max_steps)
    teacher = p.ema  # the loop's EMA of the student (plain_train updates it)

    def step() -> Tensor:
        _, x, y = p.labeled_batch()
        u = p.unlabeled_batch()
        ramp = RAMPS[kw["ramp"]](p.steps_done, rampup)
        w = kw["unlabeled_weight"] * ramp
        if u is None or w == 0:
            return F.cross_entropy(p.net(p.weak(x)), y)
        xw, uw = p.weak(x), p.weak(u[1])
        logits_x, logits_u = p.net(torch.cat([xw, uw])).split([len(xw), len(uw)])
        with torch.no_grad():
            target = teacher(p.weak(u[1])).softmax(dim=1)
        return F.cross_entropy(logits_x, y) + w * F.mse_loss(logits_u.softmax(dim=1), target)

    return step


# LabelModule class name -> the plain loop's loss for it.
STEPS: dict[str, Callable[[Plain], Step]] = {
    "SupervisedModule": supervised_step,
    "SoftTargetModule": soft_target_step,
    "DistillModule": distill_step,
    "CoTeachingModule": coteaching_step,
    "ELRModule": elr_step,
    "ProdenModule": proden_step,
    "ComplementaryModule": complementary_step,
    "PseudoLabelModule": pseudo_label_step,
    "FixMatchModule": fixmatch_step,
    "FlexMatchModule": functools.partial(fixmatch_step, flex=True),
    "MeanTeacherModule": mean_teacher_step,
}


def plain_train(self: LightningStrategy, data, task, model, trainer, *, seed: int,
                checkpoint=None, make_module=None) -> NetPredictor:  # fmt: skip
    """LightningStrategy.train as a plain PyTorch loop (no Trainer, callbacks, loggers or
    checkpoints); the same random draws in the same order, so the same result on CPU."""
    made = make_module or self.module_class
    cls = getattr(made, "func", made)
    if cls.__name__ not in STEPS:
        raise SystemExit(f"fit_overhead: no plain loop for {cls.__name__}; add one to STEPS")
    pl.seed_everything(seed, workers=False, verbose=False)  # as LightningStrategy.train
    net = model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
    kw = {**self.module_kwargs(), **getattr(made, "keywords", {})}
    p = Plain(self, net, data, seed, kw, self.augment.bind(task, takes_images(model)))
    step = STEPS[cls.__name__](p)
    optimizer = plain_optimizer(self, p)
    schedule = self.recipe.schedule
    schedule = (
        None if schedule is None or schedule.constant else copy.copy(schedule).bind(p.max_steps)
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    clip = self.recipe.grad_clip
    x_val, y_val = data["x"][data["val_idx"]], data["val_y"]
    best, best_step, state, waited = None, 0, None, 0
    while p.steps_done < p.max_steps:
        for m in p.modules:
            m.train()
        for _ in range(min(self.eval_every, p.max_steps - p.steps_done)):
            if schedule is not None:
                factor = schedule.factor(p.steps_done)
                for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = lr * factor
            loss = step()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(p.params, clip)
            optimizer.step()
            p.steps_done += 1
            if p.ema is not None:
                ema_update(p.ema, p.net, min(p.ema_decay, 1 - 1 / (p.steps_done + 1)))
        if not len(y_val):
            continue
        for m in p.modules:
            m.eval()
        with torch.no_grad():
            acc = (p.eval_net(x_val).argmax(1) == y_val).float().mean().item()
        if best is None or acc > best:
            best, best_step, waited = acc, p.steps_done, 0
            state = copy.deepcopy(p.eval_net.state_dict())
        else:
            waited += 1
            if self.patience and waited >= self.patience:
                break
    if state is not None:
        p.eval_net.load_state_dict(state)
    info = {"steps": float(p.steps_done), "best_val/acc": best if best is not None else math.nan,
            "best_step": float(best_step)}  # fmt: skip
    return NetPredictor(p.eval_net, tuple(task.input_shape), info)


def plain_optimizer(self: LightningStrategy, p: Plain) -> torch.optim.Optimizer:
    """The strategy's torch optimizer; with no_decay_norm_bias, the 1-D parameters (biases,
    norm weights) in a group without weight decay; with layer_decay, the groups and
    learning rates of the package's param_groups (set-up, not the loop being timed)."""
    if self.recipe.layer_decay != 1.0:
        optimizer = self.optimizer(
            param_groups([p.net], self.recipe.no_decay_norm_bias, self.recipe.layer_decay)
        )
        for group in optimizer.param_groups:
            group["lr"] *= group.pop("lr_scale")
        return optimizer
    if not self.recipe.no_decay_norm_bias:
        return self.optimizer(p.params)
    return self.optimizer([{"params": [q for q in p.params if q.ndim > 1]},
                           {"params": [q for q in p.params if q.ndim <= 1], "weight_decay": 0.0}])  # fmt: skip


@torch.no_grad()
def ema_update(average: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * net, parameter by parameter; buffers
    (batch-norm statistics) copied."""
    torch._foreach_lerp_(list(average.parameters()), [w.detach() for w in net.parameters()],
                         1 - decay)  # fmt: skip
    for a, b in zip(average.buffers(), net.buffers(), strict=True):
        a.copy_(b)


@contextlib.contextmanager
def plain_loops() -> Iterator[None]:
    """Every LightningStrategy trains with plain_train inside (folds, rounds, teachers...)."""
    saved = LightningStrategy.train
    LightningStrategy.train = plain_train
    try:
        yield
    finally:
        LightningStrategy.train = saved


# -- the benchmark -----------------------------------------------------------------------
def training_key(name: str) -> str:
    """The config node holding a strategy's training settings (max_steps, eval_every)."""
    return "strategy.inner" if name.startswith("active") else "strategy"


def cifar_shaped(folder: Path, n_train: int = 600, n_test: int = 100) -> Path:
    """A `save_to_disk` dataset of random 32x32 RGB images in 10 classes (CIFAR-10's shape
    and columns: `img`, `label`), under `folder`, made once; what `dataset=cifar10
    dataset.name=<it>` reads as it would read the real one."""
    path = folder / "cifar_shaped"
    if path.exists():
        return path
    import datasets
    import numpy as np
    from PIL import Image

    datasets.disable_progress_bars()
    rng = np.random.default_rng(0)
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)}
    )

    def split(n: int) -> datasets.Dataset:
        pixels = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        images = [Image.fromarray(p) for p in pixels]
        return datasets.Dataset.from_dict(
            {"img": images, "label": (np.arange(n) % 10).tolist()}, features=features
        )

    datasets.DatasetDict(train=split(n_train), test=split(n_test)).save_to_disk(str(path))
    return path


class Case:
    """One strategy in its setting, built as labelbench-run builds it; fit() runs it once
    (Lightning, or plain) and returns the best validation score and steps of its last
    network."""

    def __init__(
        self, name: str, logger: str, steps: int | None, scratch: Path, extra: tuple[str, ...] = ()
    ) -> None:
        base = name.split("[")[0]
        setting = list(SETTINGS[name])
        if any(CIFAR_SHAPED in o for o in setting):
            folder = str(cifar_shaped(scratch.parent))
            setting = [o.replace(CIFAR_SHAPED, folder) for o in setting]
        chosen = {o.split("=")[0] for o in setting}
        defaults = [o for o in ("dataset=digits", "model=mlp") if o.split("=")[0] not in chosen]
        overrides = [f"strategy={base}", *defaults, f"logger={logger}",
                     f"paths.results_dir={scratch}", *setting]  # fmt: skip
        if steps:
            overrides.append(f"{training_key(name)}.max_steps={steps}")
        overrides += extra
        self.cfg, _ = compose(overrides)
        self.name, self.parts = name, build(self.cfg, run_key(self.cfg))
        task = placed(self.parts.source.load(0), self.cfg)  # in memory, as a run puts it
        task = shape(task, self.parts.regime, 0, 0)
        self.labeler_args = (task, self.parts.regime, self.parts.budget, 0, 0)
        self.view = task.view()
        labeler = Labeler(*self.labeler_args)
        self.pool = labeler.buy_first(labeler.capacity)  # what a fixed budget reveals
        self.parts.strategy.check(self.pool, self.view)
        self.seconds = math.nan
        self.checkpoint = Checkpointing(
            scratch / "checkpoints", int(self.cfg.checkpoint.every_steps)
        )

    def fit(self, plain: bool) -> dict[str, float]:
        """One fit's fit_info; `seconds` then holds the time of the strategy's fit alone
        (what a record's fit_s times: not the labels bought before it)."""
        strategy = copy.deepcopy(self.parts.strategy)  # fit may keep state on the strategy
        common = dict(model=self.parts.model, trainer=self.parts.trainer, seed=0,
                      checkpoint=None if plain else self.checkpoint)  # fmt: skip
        rounds = getattr(strategy, "runs_rounds", False)
        labeler = Labeler(*self.labeler_args) if rounds else None  # it buys as rounds go
        with plain_loops() if plain else contextlib.nullcontext():
            t = time.perf_counter()
            if rounds:
                predictor = strategy.fit_rounds(
                    labeler, self.view, report=lambda *_: None, **common
                )
            else:
                predictor = strategy.fit(self.pool, self.view, **common)
            self.seconds = time.perf_counter() - t
        # The run deletes a successful run's checkpoints: so does each repeat here.
        shutil.rmtree(self.checkpoint.dir, ignore_errors=True)
        return predictor.fit_info


def measure(case: Case, repeats: int) -> dict:
    case.fit(plain=False)  # warm-up: first-call costs on both sides
    case.fit(plain=True)
    times: dict[str, list[float]] = {"plain": [], "lightning": []}
    info: dict[str, dict] = {}
    for r in range(repeats):
        order = ("plain", "lightning") if r % 2 == 0 else ("lightning", "plain")
        for side in order:
            info[side] = case.fit(plain=side == "plain")
            times[side].append(case.seconds)
    ratios = [lt / pt for lt, pt in zip(times["lightning"], times["plain"], strict=True)]
    same = all(
        math.isclose(info["plain"].get(k, math.nan), info["lightning"].get(k, math.nan),
                     rel_tol=1e-6, abs_tol=1e-6)
        for k in ("steps", "best_val/acc")
    )  # fmt: skip
    return {
        "strategy": case.name,
        "plain_s": statistics.median(times["plain"]),
        "lightning_s": statistics.median(times["lightning"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "steps": info["lightning"].get("steps"),
        "val_acc": (info["plain"].get("best_val/acc"), info["lightning"].get("best_val/acc")),
        "same_result": same,
        "target": TARGETS.get(case.name, DEFAULT_TARGET),
    }


@contextlib.contextmanager
def stopwatch(parts: dict[str, float]) -> Iterator[None]:
    """Adds the wall time spent in the pieces of a Lightning fit to `parts`: the Trainer's
    construction, the chunks of optimizer steps (training_step), the validation loop,
    checkpoint writes and logging. Nested pieces count in the innermost only."""
    from pytorch_lightning.loops.evaluation_loop import _EvaluationLoop

    from labelbench.strategies.lightning import LabelModule

    targets = {
        "Trainer()": (pl.Trainer, "__init__"),
        "optimizer steps": (LabelModule, "training_step"),
        "validation loop": (_EvaluationLoop, "run"),
        "checkpoint writes": (pl.Trainer, "save_checkpoint"),
        "self.log": (pl.LightningModule, "log"),
    }
    saved = {name: getattr(owner, attr) for name, (owner, attr) in targets.items()}
    stack: list[float] = []  # time spent in nested pieces, per open piece

    def timed(name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            stack.append(0.0)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t
                nested = stack.pop()
                parts[name] = parts.get(name, 0.0) + spent - nested
                if stack:
                    stack[-1] += spent

        return wrapper

    for name, (owner, attr) in targets.items():
        setattr(owner, attr, timed(name, saved[name]))
    try:
        yield
    finally:
        for name, (owner, attr) in targets.items():
            setattr(owner, attr, saved[name])


def breakdown(case: Case, repeats: int) -> str:
    """Where a Lightning fit's time goes (medians per fit, ms) next to the plain loop."""
    case.fit(plain=False)
    runs, plain = [], []
    for _ in range(repeats):
        case.fit(plain=True)
        plain.append(case.seconds)
        parts: dict[str, float] = {}
        with stopwatch(parts):
            case.fit(plain=False)
        parts["fit, all"] = case.seconds
        runs.append(parts)
    names = sorted({k for r in runs for k in r} - {"fit, all"})
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) * 1e3 for k in names}
    total = statistics.median(r["fit, all"] for r in runs) * 1e3
    lines = [f"{case.name}: plain loop {statistics.median(plain) * 1e3:.0f} ms; Lightning "
             f"fit {total:.0f} ms, of which:"]  # fmt: skip
    lines += [f"  {k:<18} {v:7.1f} ms" for k, v in med.items()]
    lines.append(
        f"  {'the rest':<18} {total - sum(med.values()):7.1f} ms (Trainer.fit set-up, hooks, callbacks)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default=",".join(SETTINGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--logger", default="csv", help="the run's logger (default: csv, as labelbench-run)"
    )
    parser.add_argument("--steps", type=int, default=None, help="max_steps (default: the YAML's)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument(
        "--breakdown", action="store_true", help="where each Lightning fit's time goes, instead"
    )
    args = parser.parse_args()
    names = [n for n in args.strategies.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"--strategies: {', '.join(unknown)} not in: {', '.join(SETTINGS)}")

    if args.breakdown:
        with tempfile.TemporaryDirectory(prefix="lb-fit-overhead-") as scratch:
            for name in names:
                folder = Path(scratch) / "".join(c if c.isalnum() else "_" for c in name)
                print(breakdown(Case(name, args.logger, args.steps, folder), args.repeats))
        return
    rows = []
    print(f"fit overhead on digits with the MLP (unless a case says), torch threads "
          f"{torch.get_num_threads()}, "
          f"logger={args.logger}, {args.repeats} interleaved repeats (median):\n")  # fmt: skip
    print("| strategy | plain s | Lightning s | ratio | target | met | steps | same result |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lb-fit-overhead-") as scratch:
        for name in names:
            folder = Path(scratch) / "".join(c if c.isalnum() else "_" for c in name)
            row = measure(Case(name, args.logger, args.steps, folder), args.repeats)
            rows.append(row)
            met = row["ratio"] <= row["target"]
            print(f"| {name} | {row['plain_s']:.3f} | {row['lightning_s']:.3f} | "
                  f"{row['ratio']:.3f}x | {row['target']}x | {'yes' if met else 'NO'} | "
                  f"{row['steps']:.0f} | {'yes' if row['same_result'] else 'NO ' + str(row['val_acc'])} |",
                  flush=True)  # fmt: skip
    figures = [
        figure(
            f"fit overhead: {r['strategy']} (Lightning / plain loop)",
            r["target"],
            r["ratio"],
            "x",
            **{k: v for k, v in r.items() if k not in ("target", "ratio")},
        )
        for r in rows
    ]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if not all(r["same_result"] for r in rows):
        sys.exit("fit_overhead: plain and Lightning disagree for some strategy (see 'same result')")


if __name__ == "__main__":
    main()
