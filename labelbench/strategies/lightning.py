"""The shared Lightning base for strategies that train a network.

Speed matters here: every strategy spends its time in this loop. Inputs that fit live in
memory as one tensor on the training device and minibatches are index slices, with no
DataLoader or collation; inputs that stay on disk are streamed through DataLoader workers
(labelbench.strategies.feed: the same seeded batches either way). One Lightning *training step* runs a chunk of `eval_every` optimizer steps
(manual optimization) and validation follows each chunk, so the Trainer's per-step
machinery (hooks, logging, progress) is paid once per chunk rather than once per
optimizer step, while the Trainer still owns devices, precision, validation, early
stopping, checkpoints, callbacks and loggers. Callbacks therefore see one
`training_step` per chunk.

On one device without a gradient scaler each step calls the torch optimizer directly;
under DDP or 16-bit mixed precision it goes through Lightning (`manual_backward`, which
syncs gradients across processes and scales the loss, and the LightningOptimizer).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench import interrupt
from labelbench.config import ConfigError, check_flag, check_int, check_number
from labelbench.data.lazy import LazyInputs, eval_rows, is_lazy
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.models import takes_images
from labelbench.results.atomic import atomic_write
from labelbench.strategies.augment import Augment, Identity
from labelbench.strategies.base import Checkpointing, ModelFactory, Strategy, TrainerFactory
from labelbench.strategies.ema import EMA
from labelbench.strategies.feed import Feed, MinibatchStream, input_batches, share_workers
from labelbench.strategies.schedules import Constant, Schedule

# Precisions whose backward needs no gradient scaler: the plain fast path is safe for them.
SCALER_FREE_PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true")
CHECKPOINT_NAME = "last"
AUGMENT_SEED_OFFSET = 0xA06
LABELED_SAMPLING = ("epochs", "with_replacement")
SELECTIONS = ("best_val", "last")
NO_AUGMENT = Identity()  # stateless: safe to share


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the shared loop trains besides the optimizer and the length, as the papers'
    recipes set it. schedule: the learning-rate schedule (None: constant). ema_decay: keep
    an EMA of the weights and evaluate, select and predict with it (None: off).
    grad_clip: clip the gradients' global norm to this (None: off). no_decay_norm_bias: no
    weight decay on biases and normalisation weights (every 1-D parameter; USB's
    `bn_wd_skip`). labeled_sampling: `epochs` (shuffled passes over the labeled items) or
    `with_replacement` (full batches of independent draws). layer_decay: layer-wise
    learning-rate decay (LLRD; BEiT, Bao et al. 2022; USB's `layer_decay`): layer group g of
    G (the network's `layer_id`, embeddings 0 ... head G - 1) learns at lr * layer_decay **
    (G - 1 - g); 1.0: every parameter at lr."""

    schedule: Schedule | None = None
    ema_decay: float | None = None
    grad_clip: float | None = None
    no_decay_norm_bias: bool = False
    labeled_sampling: str = "epochs"
    layer_decay: float = 1.0


class LabelModule(pl.LightningModule):
    """Base LightningModule: chunked manual optimization over minibatch feeds.

    Subclasses implement `training_loss()`, drawing their batches from `next_labeled()`
    (and, for semi-supervised methods, from further feeds they add in `make_streams`),
    and may act after every optimizer step in `after_step()` (an EMA teacher ...). They
    train on `weak(x)` views of labeled batches (and `strong(x)` ones where the method says
    so): the strategy's augmentation, bound to the task, drawing from `self.generator`. `eval_net` is the network that is validated
    and predicts (the student by default). Checkpoints carry the step count, every stream's
    position, the augmentation generator and the torch RNG, so a resumed fit continues
    exactly where the interrupted one stopped.

    `data` holds x (all inputs: a tensor, or a LazyInputs streamed from disk), train_idx
    and train_y (targets: class ids, or one row of class probabilities per item for soft
    targets), val_idx, val_y, and whatever else a subclass draws from (unlabeled_idx ...).
    Passes over a whole set (validation, scoring every training item) go through
    `input_batches`, never one tensor of the set."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        data: dict[str, Tensor],
        *,
        max_steps: int,
        eval_every: int,
        batch_size: int,
        seed: int,
        monitor: str = "val/acc",
        recipe: Recipe = Recipe(),  # frozen: safe to share
        augment: Augment = NO_AUGMENT,
    ) -> None:
        super().__init__()
        self.net = net
        self.augment = augment
        self.optimizer_factory = optimizer
        self.data = data
        self.max_steps, self.eval_every, self.batch_size = max_steps, eval_every, batch_size
        self.seed, self.monitor, self.recipe = seed, monitor, recipe
        schedule = recipe.schedule
        # A schedule that never changes the learning rate costs nothing per step.
        self.schedule = (  # a copy per network: cl_filter's folds train for another length
            None if schedule is None or schedule.constant else copy.copy(schedule).bind(max_steps)
        )
        self.ema = EMA(net, recipe.ema_decay) if recipe.ema_decay is not None else None
        self.steps_done = 0
        self.resumed_from = 0
        self.streams: dict[str, Feed] = {}
        # Augmentations draw from their own stream, apart from dropout's torch RNG.
        self.generator = torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET)
        self._restored: dict[str, Any] | None = None
        self.automatic_optimization = False

    # -- data ------------------------------------------------------------------------
    def make_streams(self) -> dict[str, Feed]:
        """The minibatch feeds this module draws from, by name (subclasses add theirs)."""
        replacement = self.recipe.labeled_sampling == "with_replacement"
        return {
            "labeled": self.feed(self.data["train_idx"], self.batch_size, self.seed, replacement)
        }

    def feed(self, rows: Tensor, batch_size: int, seed: int, replacement: bool = False) -> Feed:
        """Seeded minibatches of (positions among `rows`, inputs) over the dataset rows
        `rows`, from memory or from disk (see labelbench.strategies.feed)."""
        lazy = not isinstance(self.data["x"], Tensor)  # positions stay on the CPU for workers
        stream = MinibatchStream(
            len(rows), batch_size, seed, torch.device("cpu") if lazy else self.device,
            self.global_rank, self.trainer.world_size, replacement,
        )  # fmt: skip
        return Feed(stream, rows, self.data["x"], self.device)

    def input_batches(self, rows: Tensor, size: int | None = None) -> Iterator[Tensor]:
        """The inputs of the dataset rows `rows`, in order, a batch at a time, on the
        device: for passes over a whole set."""
        return input_batches(self.data["x"], rows, self.device, *(size,) if size else ())

    def weak(self, x: Tensor) -> Tensor:
        """The weak view of a batch (the inputs themselves under strategy/augment=none)."""
        return self.augment.weak(x, self.generator)

    def strong(self, x: Tensor) -> Tensor:
        """The strong view of a batch."""
        return self.augment.strong(x, self.generator)

    def on_fit_start(self) -> None:
        # Tensors go to the device; a LazyInputs stays on disk and is streamed.
        self.data = {
            k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in self.data.items()
        }
        self.streams = self.make_streams()
        share_workers(list(self.streams.values()))
        self.labeled = self.streams["labeled"]
        if self._restored is not None:  # resuming: put every stream and the RNG back
            for name, state in self._restored["streams"].items():
                self.streams[name].load_state_dict(state)
            torch.set_rng_state(self._restored["torch_rng"])
            self.generator.set_state(self._restored["generator"])
            self.steps_done = self.resumed_from = self._restored["steps_done"]
            self._restored = None
        precision = str(self.trainer.precision)
        self._plain = self.trainer.world_size == 1 and precision in SCALER_FREE_PRECISIONS

    def on_fit_end(self) -> None:
        self.pause_feeds()

    def on_validation_start(self) -> None:
        self.pause_feeds()  # validation reads with workers of its own

    def pause_feeds(self) -> None:
        """Let the streaming feeds' workers go (the next batch starts fresh ones, from the
        last batch consumed): at most one set of workers per run is alive."""
        for feed in self.streams.values():
            feed.close()

    def next_labeled(self) -> tuple[Tensor, Tensor]:
        """The next labeled minibatch: inputs and observed labels."""
        return self.next_labeled_at()[1:]

    def next_labeled_at(self) -> tuple[Tensor, Tensor, Tensor]:
        """next_labeled, with the batch's positions among the labeled items (rows of
        train_y) first: for methods that keep a state per item (PRODEN's confidences)."""
        pick, x = next(self.labeled)
        return pick, x, self.data["train_y"][pick]

    # -- checkpoints -----------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["labelbench"] = {
            "steps_done": self.steps_done,
            "streams": {name: s.state_dict() for name, s in self.streams.items()},
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored = checkpoint.get("labelbench")  # applied in on_fit_start, once streams exist

    # -- training --------------------------------------------------------------------
    def trained_modules(self) -> list[nn.Module]:
        """The networks the optimizer updates (co-teaching: both peers)."""
        return [self.net]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self.optimizer_factory(
            param_groups(
                self.trained_modules(), self.recipe.no_decay_norm_bias, self.recipe.layer_decay
            )
        )
        for group in optimizer.param_groups:  # the schedule's base; saved with the optimizer
            group["lr"] = group["lr"] * group.pop("lr_scale", 1.0)
            group.setdefault("initial_lr", group["lr"])
        return optimizer

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @property
    def eval_net(self) -> nn.Module:
        """The network that is validated, kept at its best and used for predictions: the
        EMA of the weights when the recipe keeps one, else the network trained."""
        return self.ema.average if self.ema is not None else self.net

    def training_loss(self) -> Tensor:
        """Loss of one optimizer step; draws its own batch."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimizer step (nothing by default)."""

    def set_learning_rate(self, optimizer: torch.optim.Optimizer) -> None:
        """The schedule's learning rate for the coming optimizer step (step `steps_done`)."""
        if self.schedule is not None:
            factor = self.schedule.factor(self.steps_done)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def training_step(self, chunk: Any, chunk_idx: int) -> None:
        n = min(self.eval_every, self.max_steps - self.steps_done)
        lightning_optimizer = self.optimizers()
        optimizer = lightning_optimizer.optimizer
        clip = self.recipe.grad_clip
        total = torch.zeros((), device=self.device)
        for _ in range(n):
            self.set_learning_rate(optimizer)
            loss = self.training_loss()
            if self._plain:  # the raw torch optimizer: no per-step hooks
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip is not None:
                    params = [p for g in optimizer.param_groups for p in g["params"]]
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
            else:  # DDP gradient sync or loss scaling: Lightning's path
                lightning_optimizer.zero_grad()
                self.manual_backward(loss)
                if clip is not None:  # unscales first under a gradient scaler
                    self.clip_gradients(
                        lightning_optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm"
                    )
                lightning_optimizer.step()
            self.steps_done += 1  # ramps and schedules in training_loss read it
            if self.ema is not None:
                self.ema.update(self.net, self.steps_done)
            self.after_step()
            total += loss.detach()
        if self._plain:
            self._count_optimizer_steps(n)
        mean = total / max(n, 1)
        if not torch.isfinite(mean):
            raise FloatingPointError(
                f"training loss became {mean.item()} by step {self.steps_done}"
            )
        # Straight to the loggers, x-axis in optimizer steps: self.log would build a fresh
        # torchmetrics state per key per chunk (about 1 ms each), and nothing monitors it.
        logged = {"train/loss": mean.item()}
        if self.schedule is not None:
            logged["train/lr"] = optimizer.param_groups[0]["lr"]
        for logger in self.loggers:
            logger.log_metrics(logged, step=self.steps_done)

    def _count_optimizer_steps(self, n: int) -> None:
        """The raw optimizer bypasses LightningOptimizer.step, which is what advances
        `trainer.global_step` in manual optimization; advance it here, so checkpoints,
        loggers and callbacks count optimizer steps on both paths."""
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        for tracker in (progress.total, progress.current):
            tracker.ready += n
            tracker.completed += n

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        y = self.data["val_y"]
        # A batch at a time (the logits of the split are small; its inputs may not be).
        logits = torch.cat([self.eval_net(x) for x in self.input_batches(self.data["val_idx"])])
        scores = {
            "val/acc": (logits.argmax(1) == y).float().mean(),
            "val/loss": F.cross_entropy(logits, y),
        }
        # Only the monitored score goes through self.log (callbacks read it from there);
        # loggers get every score directly, against optimizer steps. Under DDP every
        # process scores the whole validation split, so the values already agree.
        self.log(
            self.monitor,
            scores[self.monitor],
            batch_size=len(y),
            logger=False,
            sync_dist=self.trainer.world_size > 1,
        )
        for logger in self.loggers:
            logger.log_metrics({k: v.item() for k, v in scores.items()}, step=self.steps_done)


def param_groups(
    modules: list[nn.Module], no_decay_norm_bias: bool = False, layer_decay: float = 1.0
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups for the trained parameters of `modules` (frozen
    ones, requires_grad false, are left out): one group, or, with `no_decay_norm_bias`, the
    1-D parameters (biases, normalisation weights) apart with weight_decay 0; with
    `layer_decay` below 1, one group per (layer group, decay) pair carrying `lr_scale`
    layer_decay ** (G - 1 - layer_id) (USB semilearn/nets/utils.py
    param_groups_layer_decay). Networks with layer groups say so with `layer_id(name)`
    and `num_layer_groups`."""
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer = 0
            if layer_decay != 1.0:
                layer = module.layer_id(name)
            no_decay = no_decay_norm_bias and param.ndim <= 1
            key = (layer, no_decay)
            if key not in groups:
                groups[key] = {"params": []}
                if no_decay:
                    groups[key]["weight_decay"] = 0.0
                if layer_decay != 1.0:
                    top = module.num_layer_groups - 1
                    groups[key]["lr_scale"] = layer_decay ** (top - layer)
            groups[key]["params"].append(param)
    if not groups:
        raise ValueError("no parameter is trained: every one is frozen")
    return [groups[k] for k in sorted(groups)]


class RestoreBest(pl.Callback):
    """Keeps the weights of the best validation score (in memory, and in checkpoints) and
    puts them back when fitting ends: model selection on the validation split only. With
    `restore` off (selection=last) it only tracks the best score and its step."""

    def __init__(self, monitor: str, mode: str, restore: bool = True) -> None:
        self.monitor, self.mode, self.restore = monitor, mode, restore
        self.best: float | None = None
        self.best_step = 0
        self.state: dict[str, Tensor] | None = None
        # The last weights, kept when the best ones replace them (reported as test_last/).
        self.last_state: dict[str, Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, module: LabelModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        better = self.best is None or (
            value > self.best if self.mode == "max" else value < self.best
        )
        if better:
            self.best, self.best_step = value, module.steps_done
            if self.restore:
                self.state = copy.deepcopy(module.eval_net.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, module: LabelModule) -> None:
        if self.state is not None and self.best_step != module.steps_done:
            self.last_state = copy.deepcopy(module.eval_net.state_dict())
            module.eval_net.load_state_dict(self.state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "state": self.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_step, self.state = (
            state_dict["best"],
            state_dict["best_step"],
            state_dict["state"],
        )


class NetPredictor:
    """Predicts with a trained network, in eval mode and without gradients, `batch_size`
    rows at a time (fewer for large items: labelbench.data.lazy.eval_rows)."""

    def __init__(
        self,
        net: nn.Module,
        in_shape: tuple[int, ...],
        fit_info: dict[str, float],
        batch_size: int = 4096,
    ) -> None:
        self.net = net.eval()
        self.in_shape = tuple(in_shape)  # rows of x are reshaped to what the network takes
        self.fit_info = fit_info
        self.batch_size = batch_size
        # The last weights' predictor, when selection kept other (earlier) ones.
        self.last: NetPredictor | None = None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return torch.softmax(self.logits(x), 1).double().numpy()

    def logits(self, x: np.ndarray) -> Tensor:
        """The network's logits for the rows of x, as a float32 CPU tensor."""
        return self._batched(self.net, x)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The network's penultimate features for the rows of x (networks with `embed`)."""
        embed = getattr(self.net, "embed", None)
        if embed is None:
            raise TypeError(f"{type(self.net).__name__} exposes no embed(x)")
        return self._batched(embed, x).double().numpy()

    @staticmethod
    def dropout_layers(net: nn.Module) -> list[nn.Module]:
        """The dropout layers of `net` that drop anything (p > 0): what `mc_proba` samples."""
        kinds = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
        return [m for m in net.modules() if isinstance(m, kinds) and m.p > 0]

    def mc_proba(self, x: np.ndarray, samples: int, seed: int) -> np.ndarray:
        """(len(x), samples, classes) class probabilities of `samples` stochastic forward
        passes (MC dropout, Gal & Ghahramani 2016): every dropout layer drops, the rest
        (batch-norm ...) stays in eval mode. Each pass draws one mask per layer and applies
        it to every row of x (consistent MC dropout, as BatchBALD's reference
        BlackHC/batchbald_redux consistent_mc_dropout.py), so a pass is one draw of the
        network for all rows; Dropout1d/2d/3d drop whole channels. Masks come from a
        torch.Generator seeded with `seed`, apart from the global RNG: the same seed gives
        the same array. Without dropout layers every pass is `predict_proba`."""
        generator = torch.Generator().manual_seed(seed)
        masks: dict[nn.Module, Tensor] = {}

        def drop(layer: nn.Module, inputs: Any, out: Tensor) -> Tensor:
            if layer not in masks:  # drawn at the pass's first batch, kept for its others
                shape = tuple(out.shape[1:])
                if not isinstance(layer, nn.Dropout):
                    shape = shape[:1] + (1,) * (len(shape) - 1)
                keep = torch.bernoulli(torch.full(shape, 1.0 - layer.p), generator=generator)
                masks[layer] = (keep / (1.0 - layer.p)).to(out.device, out.dtype)
            return out * masks[layer]  # the layer itself is in eval mode: out is its input

        hooks = [layer.register_forward_hook(drop) for layer in self.dropout_layers(self.net)]
        try:
            passes = []
            for _ in range(samples):
                masks.clear()
                passes.append(torch.softmax(self.logits(x), 1))
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack(passes, 1).double().numpy()

    @torch.no_grad()
    def _batched(self, fn, x: np.ndarray | LazyInputs) -> Tensor:
        """fn's outputs for the rows of x, `batch_size` rows at a time (a LazyInputs is
        read by DataLoader workers: its rows are never all decoded at once)."""
        device = next(self.net.parameters()).device
        size = eval_rows(self.in_shape, self.batch_size)
        if is_lazy(x):
            batches = (x.as_float(b.to(device)) for b in x.batches(size, raw=True))
        else:
            x = np.asarray(x).reshape(len(x), *self.in_shape)
            batches = (
                torch.as_tensor(x[i : i + size], device=device) for i in range(0, len(x), size)
            )
        return torch.cat([fn(batch).float() for batch in batches]).cpu()


class LightningStrategy(Strategy):
    """Base for strategies that train a network with the shared loop.

    optimizer: a partial taking the parameters (e.g. torch.optim.SGD with lr, momentum,
    nesterov, weight_decay). Training length: `max_steps` optimizer steps, independent of
    the budget, or `max_epochs` passes over the items trained on (the revealed ones; the
    pool for strategies that train on it), exactly one of them set. eval_every: optimizer
    steps between validations. patience: validations without improvement before stopping
    (0 disables early stopping). selection: `best_val` restores the weights of the best
    validation score; `last` keeps the final ones and needs no validation labels. The
    recipe (schedule, ema_decay, grad_clip, no_decay_norm_bias, labeled_sampling): see
    Recipe. augment: the views a network trains on (conf/strategy/augment/; none when
    None): every labeled batch is a weak view, semi-supervised methods add their own."""

    module_class: type[LabelModule] = LabelModule

    def __init__(
        self,
        optimizer: Callable[..., torch.optim.Optimizer],
        max_steps: int | None = 1500,
        batch_size: int = 64,
        eval_every: int = 100,
        patience: int = 5,
        monitor: str = "val/acc",
        mode: str = "max",
        *,
        max_epochs: int | None = None,
        schedule: Schedule | None = None,
        ema_decay: float | None = None,
        grad_clip: float | None = None,
        no_decay_norm_bias: bool = False,
        labeled_sampling: str = "epochs",
        selection: str = "best_val",
        augment: Augment | None = None,
        layer_decay: float = 1.0,
    ) -> None:
        if (max_steps is None) == (max_epochs is None):
            raise ConfigError(
                f"max_steps={max_steps} and max_epochs={max_epochs}: set exactly one training"
                " length (e.g. train.max_steps=null train.max_epochs=200)"
            )
        if max_steps is not None:
            check_int("max_steps", max_steps, least=1, unit="optimizer steps")
        if max_epochs is not None:
            check_int("max_epochs", max_epochs, least=1, unit="passes over the training items")
        check_int("batch_size", batch_size, least=1)
        check_int("eval_every", eval_every, least=1, unit="optimizer steps")
        check_int("patience", patience, unit="validations")
        if mode not in ("max", "min"):
            raise ConfigError(f"mode={mode!r} is not one of max, min")
        if monitor not in ("val/acc", "val/loss"):
            raise ConfigError(f"monitor={monitor!r} is not one of val/acc, val/loss")
        if ema_decay is not None:
            check_number("ema_decay", ema_decay, "[0, 1)")
        if grad_clip is not None:
            check_number("grad_clip", grad_clip, "(0, inf)")
        if labeled_sampling not in LABELED_SAMPLING:
            raise ConfigError(
                f"labeled_sampling={labeled_sampling!r} is not one of {', '.join(LABELED_SAMPLING)}"
            )
        if selection not in SELECTIONS:
            raise ConfigError(f"selection={selection!r} is not one of {', '.join(SELECTIONS)}")
        check_flag("no_decay_norm_bias", no_decay_norm_bias)
        check_number("layer_decay", layer_decay, "(0, 1]")
        if augment is not None and not isinstance(augment, Augment):
            raise ConfigError(
                f"augment={augment!r} must be an augmentation (strategy/augment=by_modality,"
                " image, vector or none)"
            )
        self.augment = augment if augment is not None else NO_AUGMENT
        self.optimizer = optimizer
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.batch_size, self.eval_every = batch_size, eval_every
        self.patience, self.monitor, self.mode, self.selection = patience, monitor, mode, selection
        self.recipe = Recipe(
            schedule if schedule is not None else Constant(),
            ema_decay,
            grad_clip,
            no_decay_norm_bias,
            labeled_sampling,
            float(layer_decay),
        )
        if max_steps is not None:  # a warm-up or milestones that cannot fit: refused now
            self.check_schedule(max_steps)

    def check_schedule(self, total: int) -> None:
        """Refuse a schedule that does not fit `total` optimizer steps (ConfigError naming
        `schedule.<key>`)."""
        try:
            copy.copy(self.recipe.schedule).bind(total)
        except ConfigError as e:
            raise ConfigError(f"schedule.{e}") from None

    def steps_for(self, n_items: int) -> int:
        """Optimizer steps of a fit on `n_items` training items."""
        if self.max_steps is not None:
            return self.max_steps
        return self.max_epochs * math.ceil(n_items / self.batch_size)

    def check(self, pool: LabelPool, task: TaskView) -> None:
        super().check(pool, task)
        # Image augmentations on vectors and the like: refused before training. (The model
        # is not known here: by_modality's choice for it is bound in train.)
        self.augment.bind(task)
        if len(pool.val_indices) == 0:
            if self.selection == "best_val":
                raise ConfigError(
                    "selection=best_val needs validation labels but the split has none"
                    " (dataset.val_fraction=0); use strategy.selection=last"
                )
            if self.patience:
                raise ConfigError(
                    f"patience={self.patience} (early stopping) needs validation labels but the"
                    " split has none (dataset.val_fraction=0); use strategy.patience=0"
                )
        self.check_schedule(self.steps_for(len(pool)))

    def check_model(self, model: ModelFactory) -> None:
        from labelbench.models import network_class

        if self.recipe.layer_decay != 1.0 and not callable(
            getattr(network_class(model), "layer_id", None)
        ):
            raise ConfigError(
                f"layer_decay={self.recipe.layer_decay} needs a network with layer groups"
                f" (model=hf); {network_class(model).__name__} has none: use layer_decay=1.0"
            )

    def module_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for `module_class` (subclasses add their own)."""
        return {}

    def tensors(self, pool: LabelPool, task: TaskView) -> dict[str, Tensor]:
        """The tensors the module trains on; `x` stays a LazyInputs for inputs on disk."""
        arrays = {
            "train_idx": pool.indices,
            "train_y": pool.labels,
            "val_idx": pool.val_indices,
            "val_y": pool.val_labels,
        }
        data = {k: torch.tensor(v) for k, v in arrays.items()}  # copies: the arrays are read-only
        data["x"] = (
            task.x
            if is_lazy(task.x)
            else torch.tensor(task.x.reshape(len(task.x), *task.input_shape))
        )
        return data

    def fit(
        self,
        pool,
        task,
        model: ModelFactory,
        trainer: TrainerFactory,
        *,
        seed: int,
        checkpoint: Checkpointing | None = None,
    ) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        return self.train(
            self.tensors(pool, task), task, model, trainer, seed=seed, checkpoint=checkpoint
        )

    def train(
        self,
        data: dict[str, Tensor],
        task: TaskView,
        model: ModelFactory,
        trainer: TrainerFactory,
        *,
        seed: int,
        checkpoint: Checkpointing | None = None,
        make_module: Callable[..., LabelModule] | None = None,
    ) -> NetPredictor:
        """Train a fresh network on `data` (see LabelModule) with the shared loop: early
        stopping and best weights on validation (`selection`), checkpoints under
        `checkpoint`. `make_module` (default: `module_class`; a partial may bind more
        arguments) lets a strategy that trains several networks train them differently
        (distillation's teachers and student). When the selected weights are not the last
        ones, the predictor's `last` predicts with the last (the run reports both)."""
        max_steps = self.steps_for(len(data["train_idx"]))
        pl.seed_everything(seed, workers=False, verbose=False)
        net = model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
        module = (make_module or self.module_class)(
            net,
            self.optimizer,
            data,
            max_steps=max_steps,
            eval_every=self.eval_every,
            batch_size=self.batch_size,
            seed=seed,
            monitor=self.monitor,
            recipe=self.recipe,
            augment=self.augment.bind(task, takes_images(model)),
            **self.module_kwargs(),
        )
        has_val = len(data["val_idx"]) > 0
        callbacks: list[pl.Callback] = []
        best = RestoreBest(self.monitor, self.mode, restore=self.selection == "best_val")
        if has_val:
            callbacks.append(best)
            if self.patience:
                callbacks.append(
                    pl.callbacks.EarlyStopping(
                        monitor=self.monitor,
                        mode=self.mode,
                        patience=self.patience,
                        check_on_train_epoch_end=False,
                    )
                )
        resume = None
        checkpointing = checkpoint is not None and checkpoint.every_steps > 0
        if checkpointing:
            # Epochs are chunks of eval_every steps: save after every k-th chunk's validation.
            callbacks.append(
                pl.callbacks.ModelCheckpoint(
                    dirpath=checkpoint.dir,
                    filename=CHECKPOINT_NAME,
                    every_n_epochs=max(1, round(checkpoint.every_steps / self.eval_every)),
                    save_on_train_epoch_end=True,
                    enable_version_counter=False,
                )
            )
            resume = usable_checkpoint(checkpoint.dir / f"{CHECKPOINT_NAME}.ckpt")
        stops = interrupt.current()
        if stops is not None:  # a run's stop signals: honoured where a checkpoint can be made
            path = checkpoint.dir / f"{CHECKPOINT_NAME}.ckpt" if checkpointing else None
            callbacks.append(StopOnSignal(stops, path))
        fitter = trainer(
            max_epochs=math.ceil(max_steps / self.eval_every),
            callbacks=callbacks,
            limit_val_batches=1.0 if has_val else 0,
            enable_checkpointing=checkpointing,
        )
        if checkpointing and type(fitter.strategy.checkpoint_io) is pl.plugins.TorchCheckpointIO:
            fitter.strategy.checkpoint_io = CheckpointFile()  # a user's own plugin is kept
        # One "batch" per epoch: the chunk of optimizer steps runs inside training_step.
        fitter.fit(
            module,
            train_dataloaders=[0],
            val_dataloaders=[0] if has_val else None,
            ckpt_path=str(resume) if resume else None,
        )
        info = {
            "steps": float(module.steps_done),
            "stopped_early": float(module.steps_done < max_steps),
            "resumed_from_step": float(module.resumed_from),
            "streamed": float(is_lazy(data["x"])),  # inputs read from disk by workers
        }
        if best.best is not None:
            info[f"best_{self.monitor}"] = best.best
            info["best_step"] = float(best.best_step)
        predictor = NetPredictor(module.eval_net, tuple(task.input_shape), info)
        if best.last_state is not None:
            last = copy.deepcopy(module.eval_net)
            last.load_state_dict(best.last_state)
            predictor.last = NetPredictor(last, tuple(task.input_shape), info)
        return predictor


class StopOnSignal(pl.Callback):
    """Polls for a run's stop signal (labelbench.interrupt) at the end of each chunk of
    steps, after its validation: there it saves the fit's checkpoint (what ModelCheckpoint
    saves at the same point) and stops the fit with
    RunInterrupted, so that a relaunch resumes exactly where it stopped."""

    def __init__(self, stops: interrupt.StopSignals, path: Path | None) -> None:
        self.stops, self.path = stops, path
        self.polling = False

    def _poll(self, on: bool) -> None:
        if on != self.polling:
            self.stops.polling += 1 if on else -1
            self.polling = on

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._poll(True)
        # Lightning's own SIGTERM handler, set for the fit, would stop it before the
        # checkpoint is made: take the signal back for the fit's duration.
        self.stops.catch(signal.SIGTERM)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._poll(False)

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, error) -> None:
        self._poll(False)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        signum = self.stops.pending
        if signum is None:
            return
        if self.path is not None:  # whole or not at all: CheckpointFile writes it
            trainer.save_checkpoint(self.path)
        raise interrupt.RunInterrupted(signum, self.path, int(getattr(module, "steps_done", 0)))


def sub_checkpoint(checkpoint: Checkpointing | None, name: str) -> Checkpointing | None:
    """The checkpoints of one of several networks a fit trains (a fold, a teacher ...), in
    their own folder, so a relaunch resumes the network it was training."""
    return (
        None if checkpoint is None else dataclasses.replace(checkpoint, dir=checkpoint.dir / name)
    )


class CheckpointFile(pl.plugins.TorchCheckpointIO):
    """Lightning's checkpoint file, written as labelbench writes every file
    (labelbench.results.atomic): a temp file in the checkpoint's own folder, then a rename.
    Lightning's own stages it in the system temp folder, which can be another, smaller disk
    (a node's /tmp), and copies it over the previous checkpoint, where a full disk leaves a
    truncated one instead. A write that fails raises WriteError naming the checkpoint and
    why, and leaves the previous checkpoint as it was. Remote paths go to Lightning's."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()  # serialised whole first, as Lightning does
        torch.save(checkpoint, buffer)
        atomic_write(path, buffer.getbuffer(), what="the checkpoint")


def usable_checkpoint(path) -> Any:
    """`path` if it holds a checkpoint torch can read, else None. A process killed while
    Lightning was writing can leave a truncated file: that one is deleted, and the fit
    starts over rather than failing on every relaunch."""
    if not path.is_file():
        return None
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        path.unlink(missing_ok=True)
        return None
    return path
