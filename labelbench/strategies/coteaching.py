"""Co-teaching (Han et al. 2018): two networks, each trained on the items its peer finds
easiest. Networks fit clean labels before they memorise wrong ones, so the small-loss items
of a batch are mostly correctly labeled; exchanging the selections keeps one network's
mistakes from confirming themselves."""

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
        logits, peer_logits = self.net(x), self.peer(x)
        keep = max(1, math.ceil((1.0 - self.current_forget_rate()) * len(y)))
        with torch.no_grad():
            mine = small_loss(F.cross_entropy(logits, y, reduction="none"), keep)
            theirs = small_loss(F.cross_entropy(peer_logits, y, reduction="none"), keep)
        # each network learns from the items the other one trusts
        return F.cross_entropy(logits[theirs], y[theirs]) + F.cross_entropy(
            peer_logits[mine], y[mine]
        )


class CoTeaching(LightningStrategy):
    """Co-teaching. forget_rate: share of each batch left out once the ramp is over, in
    [0, 1); set it near the expected noise rate (the paper uses the true rate).
    ramp_steps: optimizer steps over which the share rises linearly from 0 (the paper's 10
    epochs). Two networks are built from the model factory, one after the other, so their
    initialisations differ and are both fixed by the seed. Other arguments as
    LightningStrategy."""

    module_class = CoTeachingModule

    def __init__(
        self, *args: Any, forget_rate: float = 0.4, ramp_steps: int = 200, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.forget_rate = check_number("forget_rate", forget_rate, "[0, 1)")
        self.ramp_steps = check_int("ramp_steps", ramp_steps, unit="optimizer steps")
        self._peer: Callable[[], nn.Module] | None = None

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None):
        # train() builds the first network, then asks module_kwargs() for the peer: the
        # peer is drawn right after it from the same seeded RNG.
        self._peer = lambda: model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
        return super().fit(pool, task, model, trainer, seed=seed, checkpoint=checkpoint)

    def module_kwargs(self) -> dict[str, Any]:
        if self._peer is None:
            raise RuntimeError("module_kwargs() before fit(): no model factory for the peer")
        return {
            **super().module_kwargs(),
            "peer": self._peer(),
            "forget_rate": self.forget_rate,
            "ramp_steps": self.ramp_steps,
        }
