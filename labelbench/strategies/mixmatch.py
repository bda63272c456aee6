"""MixMatch (Berthelot et al. 2019): guess a label for each unlabeled item by averaging the
predictions on K augmented views and sharpening the average, then MixUp the labeled and
unlabeled items (with their labels and guesses) together and train on the mixture:
cross-entropy on the mixed labeled part, squared error on the mixed unlabeled part.

Checked against USB (microsoft/Semi-supervised-learning,
semilearn/algorithms/mixmatch/mixmatch.py) and the paper:

- Guess: mean over the K views of softmax(logits), then Sharpen with T, without gradients
  and without moving the batch-norm running statistics (USB's `freeze_bn` around the
  guessing passes). USB draws K = 2 weak views (its `x_ulb_s` is a second weak view for
  mixmatch); here K is `augmentations`.
- MixUp: one lambda ~ Beta(alpha, alpha), lambda' = max(lambda, 1 - lambda), one
  permutation over the labeled batch and all K unlabeled views together (semi.mixup).
- Losses: soft cross-entropy of the mixed labeled part; mean squared error between
  softmax and the mixed targets over the unlabeled part, averaged over rows and classes
  (the paper's 1 / (L |U'|); USB's `mse` consistency). lambda_u ramps up linearly over
  `rampup_steps` (USB: it / (unsup_warm_up * num_train_iter), clipped to 1).
- One forward pass over the whole mixed batch (one batch-norm statistic over all of it).
- Token ids (text fine-tuned on model=hf) cannot be mixed: their pooled features are mixed
  and the head classifies the mixture, as USB does for text and audio (mixmatch.py
  `mixup_manifold`, on for BERT-like and speech networks).
  USB interleaves labeled and unlabeled rows across K + 1 passes and updates batch-norm
  statistics in the first only; interleaving exists to make each pass's statistics
  represent the whole batch, which one pass over everything does directly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import check_int, check_number
from labelbench.strategies.schedules import steps_of
from labelbench.strategies.semi import (
    SemiSupervised,
    SemiSupervisedModule,
    kept_batch_norm_stats,
    linear_rampup,
    mixup,
    sharpen,
    soft_cross_entropy,
)


def guess_labels(view_probs: Tensor, temperature: float) -> Tensor:
    """Sharpen(mean over views): `view_probs` is (K, N, C), the class probabilities of K
    views of N items."""
    return sharpen(view_probs.mean(dim=0), temperature)


def mixmatch_losses(logits: Tensor, mixed_targets: Tensor, n_labeled: int) -> tuple[Tensor, Tensor]:
    """(labeled, unlabeled) terms on a mixed batch whose first `n_labeled` rows come from
    the labeled items: soft cross-entropy on those, mean squared error between class
    probabilities and targets (over rows and classes) on the rest."""
    labeled = soft_cross_entropy(logits[:n_labeled], mixed_targets[:n_labeled])
    unlabeled = F.mse_loss(logits[n_labeled:].softmax(dim=1), mixed_targets[n_labeled:])
    return labeled, unlabeled


class MixMatchModule(SemiSupervisedModule):
    """MixMatch's loss: mixmatch_losses' labeled term plus lambda_u(t) x the unlabeled one,
    lambda_u(t) rising linearly to `unlabeled_weight` over `rampup_steps` (steps, or a
    fraction of training below 1)."""

    def __init__(
        self,
        *args: Any,
        augmentations: int,
        temperature: float,
        mixup_alpha: float,
        rampup_steps: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.augmentations, self.temperature = augmentations, temperature
        self.mixup_alpha = mixup_alpha
        self.rampup = steps_of("rampup_steps", rampup_steps, self.max_steps)

    def weight(self) -> float:
        """lambda_u at the current optimizer step."""
        return self.unlabeled_weight * linear_rampup(self.steps_done, self.rampup)

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        unlabeled = self.next_unlabeled()
        if unlabeled is None:
            return self.labeled_loss(x, y)
        _, xu = unlabeled
        labeled_view = self.weak(x)
        views = [self.weak(xu) for _ in range(self.augmentations)]
        with torch.no_grad(), kept_batch_norm_stats(self.net):
            probs = torch.stack([self.net(v).softmax(dim=1) for v in views])
            guess = guess_labels(probs, self.temperature)
        targets = torch.cat(
            [F.one_hot(y, self.num_classes).to(guess.dtype), *[guess] * self.augmentations]
        )
        batch = torch.cat([labeled_view, *views])
        if torch.is_floating_point(batch):
            mixed_x, mixed_targets = mixup(batch, targets, self.mixup_alpha, self.generator)
            logits = self.net(mixed_x)
        else:  # token ids cannot be mixed: mix the pooled features (USB's mixup_manifold)
            classify = getattr(self.net, "classify", None)
            if classify is None:
                raise TypeError(
                    f"mixmatch on token ids mixes pooled features, but {type(self.net).__name__}"
                    " has no classify(features); use model=hf"
                )
            mixed_f, mixed_targets = mixup(
                self.net.embed(batch), targets, self.mixup_alpha, self.generator
            )
            logits = classify(mixed_f)
        labeled, unlabeled_term = mixmatch_losses(logits, mixed_targets, len(x))
        return labeled + self.weight() * unlabeled_term


class MixMatch(SemiSupervised):
    """MixMatch. augmentations: K, weak views per unlabeled item whose predictions are
    averaged (2); temperature: sharpening of the guess in (0, 1] (0.5); mixup_alpha: the
    Beta(alpha, alpha) of MixUp, > 0 (USB 0.5, paper 0.75); rampup_steps: optimizer steps
    (or a fraction of training below 1) over which lambda_u rises to `unlabeled_weight`
    (0.4, USB's classic_cv configs; 1/64 in the paper and USB's argument default); mu, unlabeled_weight, include_labeled, augment: see SemiSupervised."""

    module_class = MixMatchModule

    def __init__(
        self,
        *args: Any,
        augmentations: int = 2,
        temperature: float = 0.5,
        mixup_alpha: float = 0.5,
        rampup_steps: float = 0.4,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.augmentations = check_int(
            "augmentations", augmentations, least=1, unit="views per unlabeled item"
        )
        self.temperature = check_number("temperature", temperature, "(0, 1]")
        self.mixup_alpha = check_number("mixup_alpha", mixup_alpha, "(0, inf)")
        steps_of("rampup_steps", rampup_steps, 1)  # its form now; the length at fit
        self.rampup_steps = rampup_steps

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "augmentations": self.augmentations,
            "temperature": self.temperature,
            "mixup_alpha": self.mixup_alpha,
            "rampup_steps": self.rampup_steps,
        }
