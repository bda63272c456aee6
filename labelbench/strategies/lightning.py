"""The shared Lightning base for strategies that train a network.

Speed matters here: every strategy spends its time in this loop. Data lives in memory as
tensors on the training device and minibatches are index slices, with no DataLoader or
collation. One Lightning *training step* runs a chunk of `eval_every` optimizer steps
(manual optimization) and validation follows each chunk, so the Trainer's per-step
machinery (hooks, logging, progress) is paid once per chunk rather than once per
optimizer step, while the Trainer still owns devices, precision, validation, early
stopping, callbacks and loggers. Callbacks therefore see one `training_step` per chunk.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.strategies.base import ModelFactory, Strategy, TrainerFactory

# Precisions the chunked loop supports: it calls backward itself, so no gradient scaler.
SUPPORTED_PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16-true")


def check_trainer(trainer: pl.Trainer) -> None:
    """Refuse trainer settings the chunked loop cannot honour, before any training."""
    if str(trainer.precision) not in SUPPORTED_PRECISIONS:
        raise ConfigError(
            f"precision={trainer.precision} is not supported; allowed: {', '.join(SUPPORTED_PRECISIONS)}"
        )
    if trainer.world_size != 1:
        raise ConfigError(
            f"devices={trainer.num_devices} x num_nodes={trainer.num_nodes} asks for"
            f" {trainer.world_size} processes; the training loop runs on exactly one device"
        )


class MinibatchStream:
    """Endless seeded minibatches of indices into `n` items: a fresh permutation every pass,
    cut into `batch_size` pieces (the last one may be smaller), like a shuffling DataLoader
    but as index tensors already on the training device."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device) -> None:
        if n < 1:
            raise ValueError("cannot draw minibatches from an empty set")
        self.n, self.batch_size, self.device = n, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self._batches: Iterator[Tensor] = iter(())

    def __iter__(self) -> MinibatchStream:
        return self

    def __next__(self) -> Tensor:
        batch = next(self._batches, None)
        if batch is None:
            perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            self._batches = iter(perm.split(self.batch_size))
            batch = next(self._batches)
        return batch


class LabelModule(pl.LightningModule):
    """Base LightningModule: chunked manual optimization over in-memory tensors.

    Subclasses implement `training_loss()`, drawing their batches from `next_labeled()`
    (and, for semi-supervised methods, from their own streams)."""

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
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.data = data  # x (all inputs), train_idx, train_y, val_idx, val_y
        self.max_steps, self.eval_every, self.batch_size = max_steps, eval_every, batch_size
        self.seed, self.monitor = seed, monitor
        self.steps_done = 0
        self.automatic_optimization = False

    # -- data ------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.data = {k: v.to(self.device) for k, v in self.data.items()}
        self.labeled = MinibatchStream(
            len(self.data["train_y"]), self.batch_size, self.seed, self.device
        )

    def next_labeled(self) -> tuple[Tensor, Tensor]:
        """The next labeled minibatch: inputs and observed labels."""
        pick = next(self.labeled)
        return self.data["x"][self.data["train_idx"][pick]], self.data["train_y"][pick]

    # -- training --------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_loss(self) -> Tensor:
        """Loss of one optimizer step; draws its own batch."""
        raise NotImplementedError

    def training_step(self, chunk: Any, chunk_idx: int) -> None:
        n = min(self.eval_every, self.max_steps - self.steps_done)
        optimizer = self.optimizers().optimizer  # the raw torch optimizer: no per-step hooks
        total = torch.zeros((), device=self.device)
        for _ in range(n):
            loss = self.training_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        self.steps_done += n
        mean = total / max(n, 1)
        if not torch.isfinite(mean):
            raise FloatingPointError(
                f"training loss became {mean.item()} by step {self.steps_done}"
            )
        # Straight to the loggers, x-axis in optimizer steps: self.log would build a fresh
        # torchmetrics state per key per chunk (about 1 ms each), and nothing monitors it.
        for logger in self.loggers:
            logger.log_metrics({"train/loss": mean.item()}, step=self.steps_done)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = self.data["x"][self.data["val_idx"]], self.data["val_y"]
        logits = self.net(x)
        scores = {
            "val/acc": (logits.argmax(1) == y).float().mean(),
            "val/loss": F.cross_entropy(logits, y),
        }
        # Only the monitored score goes through self.log (callbacks read it from there);
        # loggers get every score directly, against optimizer steps.
        self.log(self.monitor, scores[self.monitor], batch_size=len(y), logger=False)
        for logger in self.loggers:
            logger.log_metrics({k: v.item() for k, v in scores.items()}, step=self.steps_done)


class RestoreBest(pl.Callback):
    """Keeps the weights of the best validation score (in memory) and puts them back when
    fitting ends: model selection on the validation split only."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_step = 0
        self.state: dict[str, Tensor] | None = None

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
            self.state = copy.deepcopy(module.net.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, module: LabelModule) -> None:
        if self.state is not None:
            module.net.load_state_dict(self.state)


class NetPredictor:
    """Predicts with a trained network, in eval mode and without gradients."""

    def __init__(self, net: nn.Module, fit_info: dict[str, float], batch_size: int = 4096) -> None:
        self.net = net.eval()
        self.fit_info = fit_info
        self.batch_size = batch_size

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        device = next(self.net.parameters()).device
        out = [
            torch.softmax(
                self.net(torch.as_tensor(x[i : i + self.batch_size], device=device)).float(), 1
            )
            for i in range(0, len(x), self.batch_size)
        ]
        return torch.cat(out).cpu().double().numpy()


class LightningStrategy(Strategy):
    """Base for strategies that train a network with the shared loop.

    optimizer: a partial taking the parameters (e.g. torch.optim.AdamW with lr).
    max_steps: optimizer steps, independent of the budget, so the budget does not change
    the amount of training. eval_every: optimizer steps between validations. patience:
    validations without improvement before stopping (0 disables early stopping); the best
    validation weights are restored either way."""

    module_class: type[LabelModule] = LabelModule

    def __init__(
        self,
        optimizer: Callable[..., torch.optim.Optimizer],
        max_steps: int = 1500,
        batch_size: int = 64,
        eval_every: int = 100,
        patience: int = 5,
        monitor: str = "val/acc",
        mode: str = "max",
    ) -> None:
        for key, value in (
            ("max_steps", max_steps),
            ("batch_size", batch_size),
            ("eval_every", eval_every),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}={value} must be a positive integer")
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"patience={patience} must be a non-negative integer")
        if mode not in ("max", "min"):
            raise ConfigError(f"mode={mode!r} is not one of max, min")
        if monitor not in ("val/acc", "val/loss"):
            raise ConfigError(f"monitor={monitor!r} is not one of val/acc, val/loss")
        self.optimizer = optimizer
        self.max_steps, self.batch_size, self.eval_every = max_steps, batch_size, eval_every
        self.patience, self.monitor, self.mode = patience, monitor, mode

    def module_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for `module_class` (subclasses add their own)."""
        return {}

    def tensors(self, pool: LabelPool, task: TaskView) -> dict[str, Tensor]:
        """The in-memory tensors the module trains on."""
        arrays = {
            "x": task.x.reshape(len(task.x), *task.input_shape),
            "train_idx": pool.indices,
            "train_y": pool.labels,
            "val_idx": pool.val_indices,
            "val_y": pool.val_labels,
        }
        return {k: torch.tensor(v) for k, v in arrays.items()}  # copies: the arrays are read-only

    def fit(
        self, pool, task, model: ModelFactory, trainer: TrainerFactory, *, seed: int
    ) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        pl.seed_everything(seed, workers=False, verbose=False)
        net = model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
        module = self.module_class(
            net,
            self.optimizer,
            self.tensors(pool, task),
            max_steps=self.max_steps,
            eval_every=self.eval_every,
            batch_size=self.batch_size,
            seed=seed,
            monitor=self.monitor,
            **self.module_kwargs(),
        )
        has_val = len(pool.val_indices) > 0
        callbacks: list[pl.Callback] = []
        best = RestoreBest(self.monitor, self.mode)
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
        fitter = trainer(
            max_epochs=math.ceil(self.max_steps / self.eval_every),
            callbacks=callbacks,
            limit_val_batches=1.0 if has_val else 0,
        )
        check_trainer(fitter)
        # One "batch" per epoch: the chunk of optimizer steps runs inside training_step.
        fitter.fit(module, train_dataloaders=[0], val_dataloaders=[0] if has_val else None)
        info = {
            "steps": float(module.steps_done),
            "stopped_early": float(module.steps_done < self.max_steps),
        }
        if best.best is not None:
            info[f"best_{self.monitor}"] = best.best
            info["best_step"] = float(best.best_step)
        return NetPredictor(module.net, info)
