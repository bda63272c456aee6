"""JoCoR (Wei et al. 2020, "Combating noisy labels by agreement: a joint training method
with co-regularization"): two networks trained together on one joint loss per item,
(1 - lambda) (CE_1 + CE_2) + lambda (KL(p_1 || p_2) + KL(p_2 || p_1)). The small-loss share
of each batch under the joint loss updates both networks: the co-regularization pulls them
towards agreement, so the selection rests on what both find easy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import check_number
from labelbench.strategies.coteaching import CoTeaching, CoTeachingModule, kept, small_loss


def symmetric_kl(logits: Tensor, peer_logits: Tensor) -> Tensor:
    """KL(p_2 || p_1) + KL(p_1 || p_2) per row, p = softmax(logits); gradients flow through
    both (as kl_loss_compute in the reference's algorithm/loss.py)."""
    log_p, log_q = F.log_softmax(logits, dim=1), F.log_softmax(peer_logits, dim=1)
    return ((log_q.exp() - log_p.exp()) * (log_q - log_p)).sum(dim=1)


def jocor_loss(logits: Tensor, peer_logits: Tensor, y: Tensor, co_lambda: float) -> Tensor:
    """Per row: (1 - co_lambda) (CE(logits, y) + CE(peer_logits, y)) + co_lambda * the
    symmetric KL divergence between the two networks' predictions."""
    ce = F.cross_entropy(logits, y, reduction="none") + F.cross_entropy(
        peer_logits, y, reduction="none"
    )
    return (1.0 - co_lambda) * ce + co_lambda * symmetric_kl(logits, peer_logits)


class JoCoRModule(CoTeachingModule):
    """Both networks on one view of a batch; the mean joint loss of the (1 - forget rate)
    share of rows with the smallest joint loss, which updates both (one optimizer)."""

    def __init__(self, *args: Any, co_lambda: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.co_lambda = co_lambda

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        x = self.weak(x)
        joint = jocor_loss(self.net(x), self.peer(x), y, self.co_lambda)
        with torch.no_grad():
            keep = small_loss(joint.detach(), kept(self.current_forget_rate(), len(y)))
        return joint[keep].mean()


class JoCoR(CoTeaching):
    """JoCoR. co_lambda: weight of the co-regularization, in [0, 1] (0: co-teaching's
    selection on the summed cross-entropies, without the exchange). forget_rate, ramp_steps
    as CoTeaching, applied to the joint loss. `net` is validated and predicts. Other
    arguments as LightningStrategy."""

    module_class = JoCoRModule

    def __init__(
        self, *args: Any, co_lambda: float = 0.9, forget_rate: float = 0.2, **kwargs: Any
    ) -> None:
        super().__init__(*args, forget_rate=forget_rate, **kwargs)
        self.co_lambda = check_number("co_lambda", co_lambda, "[0, 1]")

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "co_lambda": self.co_lambda}
