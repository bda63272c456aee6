"""A dataset for tests of tuning: the synthetic source with its test split's labels
scrambled: every one moved to the next class, so every one is wrong. Named in configs as
`dataset._target_=tune_sources.ScrambledTest allow_targets=[tune_sources]`."""

from __future__ import annotations

import dataclasses

from labelbench.data.sources import Synthetic


class ScrambledTest(Synthetic):
    """Synthetic data whose every test label is wrong; pool and validation untouched."""

    def load(self, split_seed: int):
        task = super().load(split_seed)
        test = task.split.test
        y = task.y.copy()
        y[test] = (y[test] + 1) % task.num_classes
        return dataclasses.replace(task, y=y)
