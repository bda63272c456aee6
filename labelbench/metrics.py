"""Test metrics (torchmetrics) on predicted class probabilities, as plain floats."""

from __future__ import annotations

import numpy as np

# Direction of every metric this module reports: 'max' if higher is better.
DIRECTIONS = {
    "acc": "max",
    "balanced_acc": "max",
    "macro_f1": "max",
    "worst_class_acc": "max",
    "ece": "min",
    "nll": "min",
}


def classification_metrics(
    proba: np.ndarray, y: np.ndarray, num_classes: int, prefix: str = "test/"
) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1, worst-class accuracy, ECE (15 bins, L1) and NLL."""
    import torch
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_calibration_error,
        multiclass_f1_score,
    )

    p = torch.as_tensor(np.asarray(proba), dtype=torch.float64)
    t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if p.shape != (len(t), num_classes):
        raise ValueError(
            f"probabilities of shape {tuple(p.shape)}; expected ({len(t)}, {num_classes})"
        )
    k = num_classes
    per_class = multiclass_accuracy(p, t, num_classes=k, average="none")
    present = torch.bincount(t, minlength=k) > 0  # classes absent from y say nothing
    values = {
        "acc": multiclass_accuracy(p, t, num_classes=k, average="micro"),
        "balanced_acc": per_class[present].mean(),
        "macro_f1": multiclass_f1_score(p, t, num_classes=k, average="macro"),
        "worst_class_acc": per_class[present].min(),
        "ece": multiclass_calibration_error(p, t, num_classes=k, n_bins=15, norm="l1"),
        "nll": -torch.log(p[torch.arange(len(t)), t].clamp_min(1e-12)).mean(),
    }
    return {f"{prefix}{name}": float(v) for name, v in values.items()}


def directions(metrics: dict[str, float]) -> dict[str, str]:
    """'max' or 'min' for each quality metric ('test/acc' -> DIRECTIONS['acc']); keys with
    no direction (fit bookkeeping such as 'fit/steps') are left out."""
    found = {key: DIRECTIONS.get(key.rsplit("/", 1)[-1]) for key in metrics}
    return {key: d for key, d in found.items() if d is not None}
