"""Co-teaching (Han et al. 2018): two networks, each trained on the items its peer finds
easiest. Networks fit clean labels before they memorise wrong ones, so the small-loss items
of a batch are mostly correctly labeled; exchanging the selections keeps one network's
mistakes from confirming themselves.

Co-teaching+ (Yu et al. 2019, "How does disagreement help generalization against label
corruption?"): after an initial period of co-teaching, the exchange is restricted to the
items of a batch on which the two networks' predictions disagree, which keeps the networks
from converging to one another (and so to the same mistakes)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import check_int, check_number
from labelbench.strategies.lightning import LabelModule, LightningStrategy
from labelbench.strategies.semi import linear_rampup


def small_loss(losses: Tensor, keep: int) -> Tensor:
    """Positions of the `keep` smallest losses (ties in batch order, for reproducibility)."""
    return torch.argsort(losses, stable=True)[:keep]


def kept(forget_rate: float, n: int) -> int:
    """How many of `n` items a step keeps: (1 - forget rate) of them, rounded up, at least 1."""
    return max(1, math.ceil((1.0 - forget_rate) * n))


def disagreement(logits: Tensor, peer_logits: Tensor) -> Tensor:
    """Positions of the rows whose arg-max classes differ between the two networks (the
    disagreement set of Co-teaching+), in batch order."""
    return torch.nonzero(logits.argmax(dim=1) != peer_logits.argmax(dim=1)).squeeze(1)


class CoTeachingModule(LabelModule):
    """`net` and `peer` (a second network of the same kind, initialised differently) each
    take a cross-entropy step on the (1 - forget rate) share of the batch with the smallest
    loss under the other network. Both are submodules, so checkpoints carry both; the
    optimizer updates both. `net` is validated and predicts."""

    def __init__(
        self, *args: Any, peer: nn.Module, forget_rate: float, ramp_steps: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.peer = peer
        self.forget_rate, self.ramp_steps = forget_rate, ramp_steps

    def trained_modules(self) -> list[nn.Module]:
        return [self.net, self.peer]

    def current_forget_rate(self) -> float:
        """0 at the first step, rising linearly to `forget_rate` over `ramp_steps` steps."""
        return self.forget_rate * linear_rampup(self.steps_done, self.ramp_steps)

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        x = self.weak(x)  # one view for both peers, as a shared DataLoader gives them
        return self.exchange(self.net(x), self.peer(x), y)

    def exchange(self, logits: Tensor, peer_logits: Tensor, y: Tensor) -> Tensor:
        """Co-teaching's loss on these rows: each network's cross-entropy on the share of
        them with the smallest loss under the other network."""
        keep = kept(self.current_forget_rate(), len(y))
        with torch.no_grad():
            mine = small_loss(F.cross_entropy(logits, y, reduction="none"), keep)
            theirs = small_loss(F.cross_entropy(peer_logits, y, reduction="none"), keep)
        # each network learns from the items the other one trusts
        return F.cross_entropy(logits[theirs], y[theirs]) + F.cross_entropy(
            peer_logits[mine], y[mine]
        )


class CoTeachingPlusModule(CoTeachingModule):
    """Co-teaching for the first `init_steps` steps; then co-teaching on the items of each
    batch whose predicted classes differ between the networks (the paper's Algorithm 1).
    A batch without any disagreement gives a zero loss, so zero gradients: the reference's
    loss.py masks such a batch's loss to zero too (it keeps the whole batch while
    epoch * batch index < 5000, a quirk not reproduced). Deviations from loss.py, as the
    paper writes the loss: the cross-entropy is taken on the logits (loss.py applies it to
    softmax outputs, a second softmax) and averaged over the kept items (loss.py divides
    that mean by their number once more); the kept share is rounded up, as in CoTeaching."""

    def __init__(self, *args: Any, init_steps: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.init_steps = init_steps

    def training_loss(self) -> Tensor:
        if self.steps_done < self.init_steps:
            return super().training_loss()
        x, y = self.next_labeled()
        x = self.weak(x)
        logits, peer_logits = self.net(x), self.peer(x)
        with torch.no_grad():
            differ = disagreement(logits, peer_logits)
        if len(differ) == 0:
            return (logits.sum() + peer_logits.sum()) * 0.0
        return self.exchange(logits[differ], peer_logits[differ], y[differ])


class TwoNetworks(LightningStrategy):
    """Base of strategies whose module trains a second network, `peer`, beside `net`. Both
    are built from the model factory, one after the other, so their initialisations differ
    and are both fixed by the seed."""

    _peer: Callable[[], nn.Module] | None = None

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None):
        # train() builds the first network, then asks module_kwargs() for the peer: the
        # peer is drawn right after it from the same seeded RNG.
        self._peer = lambda: model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
        return super().fit(pool, task, model, trainer, seed=seed, checkpoint=checkpoint)

    def module_kwargs(self) -> dict[str, Any]:
        if self._peer is None:
            raise RuntimeError("module_kwargs() before fit(): no model factory for the peer")
        return {**super().module_kwargs(), "peer": self._peer()}


class CoTeaching(TwoNetworks):
    """Co-teaching. forget_rate: share of each batch left out once the ramp is over, in
    [0, 1); set it near the expected noise rate (the paper uses the true rate).
    ramp_steps: optimizer steps over which the share rises linearly from 0 (the paper's 10
    epochs). Other arguments as LightningStrategy."""

    module_class = CoTeachingModule

    def __init__(
        self, *args: Any, forget_rate: float = 0.4, ramp_steps: int = 200, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.forget_rate = check_number("forget_rate", forget_rate, "[0, 1)")
        self.ramp_steps = check_int("ramp_steps", ramp_steps, unit="optimizer steps")

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "forget_rate": self.forget_rate,
            "ramp_steps": self.ramp_steps,
        }


class CoTeachingPlus(CoTeaching):
    """Co-teaching+. init_steps: optimizer steps of plain co-teaching before the exchange is
    restricted to the disagreement set (the reference's init_epoch: 20 epochs on CIFAR-10, 0
    on MNIST). forget_rate, ramp_steps as CoTeaching (within the disagreement set after
    init_steps). Other arguments as LightningStrategy."""

    module_class = CoTeachingPlusModule

    def __init__(
        self, *args: Any, init_steps: int = 400, forget_rate: float = 0.2, **kwargs: Any
    ) -> None:
        super().__init__(*args, forget_rate=forget_rate, **kwargs)
        self.init_steps = check_int("init_steps", init_steps, unit="optimizer steps")

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "init_steps": self.init_steps}
