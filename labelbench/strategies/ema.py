"""The one exponential moving average of a network's weights in labelbench: the evaluated
model of `strategy.ema_decay` (FixMatch, USB) and mean teacher's teacher."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """`average` holds, for every parameter, decay_t * average + (1 - decay_t) * current
    after each optimizer step, and a copy of the network's buffers (batch-norm statistics),
    as USB's EMA hook and the FixMatch reference code keep them.

    decay_t = min(decay, 1 - 1 / (t + 1)) at optimizer step t (counted from 1), the warm-up
    of mean teacher's reference code (Tarvainen & Valpola 2017): early on the average
    follows the network instead of carrying its random initial weights for thousands of
    steps. From step 1 / (1 - decay) on (1000 steps at 0.999) it is the plain average USB
    and FixMatch use from the start; before that it differs, which matters only for runs
    far shorter than theirs.

    A submodule: it is saved in checkpoints and moves to the training device with its
    owner."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.average = copy.deepcopy(net).requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, 1.0 - 1.0 / (step + 1))

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        """Fold in `net`'s weights after optimizer step `step` (1 for the first)."""
        weight = 1.0 - self.decay_at(step)
        averaged = list(self.average.parameters())
        current = [p.detach() for p in net.parameters()]
        if averaged:
            torch._foreach_lerp_(averaged, current, weight)
        for mine, theirs in zip(self.average.buffers(), net.buffers(), strict=True):
            mine.copy_(theirs)
