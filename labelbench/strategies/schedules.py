"""Learning-rate schedules of the shared loop (conf/strategy/schedule/): a factor on every
parameter group's base learning rate as a function of the optimizer step, after a linear
warm-up. The factor is computed from the step count alone, which checkpoints carry, so a
resumed fit continues the schedule exactly.

Lengths (warm-ups, milestones, ramps) are given in optimizer steps, or as a fraction of
the training length when below 1, so one recipe serves a 2^20-step CIFAR run and a
1500-step digits run: `warmup: 0.05`, `milestones: [0.5, 0.75]`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from labelbench.config import ConfigError, check_number


def steps_of(name: str, value: float, total: int) -> int:
    """`value` optimizer steps (an integer >= 1), or that fraction of `total` when it is
    in [0, 1). Raises ConfigError for a negative or non-integral step count."""
    check_number(name, value)
    if value < 1:
        return round(value * total)
    if value != int(value):
        raise ConfigError(
            f"{name}={value} must be a whole number of optimizer steps, or a fraction of the"
            " training length below 1"
        )
    return int(value)


class Schedule:
    """Base: a linear warm-up from 0 over `warmup` steps (USB's: factor step / warmup),
    then `decay(progress)` for progress in [0, 1] over the remaining steps.

    `bind(total)` fixes the training length and checks the settings against it; `factor`
    needs it."""

    def __init__(self, warmup: float = 0) -> None:
        steps_of("warmup", warmup, 1)  # a length's form is checked now, its fit at bind
        self.warmup = warmup
        self.total: int | None = None
        self.warmup_steps = 0

    def bind(self, total: int) -> Schedule:
        """Fix the training length (optimizer steps); refuses a warm-up longer than it."""
        self.total = total
        self.warmup_steps = steps_of("warmup", self.warmup, total)
        if self.warmup_steps >= total and self.warmup_steps > 0:
            raise ConfigError(
                f"warmup={self.warmup} ({self.warmup_steps} steps) is not shorter than the"
                f" training ({total} optimizer steps)"
            )
        return self

    def factor(self, step: int) -> float:
        """The learning-rate factor of optimizer step `step` (0 for the first step)."""
        if self.total is None:
            raise RuntimeError("Schedule.factor before bind(total)")
        if step < self.warmup_steps:
            return step / self.warmup_steps
        return self.after_warmup(step)

    def after_warmup(self, step: int) -> float:
        """The factor of a step past the warm-up: `decay` of the progress through the rest."""
        span = max(1, self.total - self.warmup_steps)
        return self.decay(min(1.0, (step - self.warmup_steps) / span))

    def decay(self, progress: float) -> float:
        raise NotImplementedError

    @property
    def constant(self) -> bool:
        """Whether the factor is always 1 (then the loop leaves learning rates alone)."""
        return False


class Constant(Schedule):
    """The base learning rate throughout (after the warm-up, if any)."""

    def decay(self, progress: float) -> float:
        return 1.0

    @property
    def constant(self) -> bool:
        return self.warmup == 0


class Cosine(Schedule):
    """final + (1 - final) * max(0, cos(pi * cycles * progress)). FixMatch (Sohn et al.
    2020, Sec. 4) and USB: lr = lr0 * cos(7 pi k / (16 K)), i.e. cycles = 7/16, final = 0,
    no warm-up; cycles = 0.5 decays to `final` exactly at the end."""

    def __init__(self, warmup: float = 0, cycles: float = 7 / 16, final: float = 0.0) -> None:
        super().__init__(warmup)
        self.cycles = check_number("cycles", cycles, "(0, 1]")
        self.final = check_number("final", final, "[0, 1]")

    def decay(self, progress: float) -> float:
        wave = max(0.0, math.cos(math.pi * self.cycles * progress))
        return self.final + (1.0 - self.final) * wave


class Step(Schedule):
    """gamma ** (milestones passed): the step decay of the noisy-label papers (e.g.
    Co-teaching, DivideMix, ELR: the learning rate divided by 10 at fixed epochs).
    Milestones are optimizer steps counted from the start of training (or fractions of
    it), strictly increasing."""

    def __init__(
        self, warmup: float = 0, milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1
    ) -> None:
        super().__init__(warmup)
        self.milestones = list(milestones)
        for m in self.milestones:
            steps_of("milestones", m, 1)
        self.gamma = check_number("gamma", gamma, "(0, 1]")
        self.milestone_steps: list[int] = []

    def bind(self, total: int) -> Schedule:
        super().bind(total)
        steps = [steps_of("milestones", m, total) for m in self.milestones]
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ConfigError(
                f"milestones={self.milestones} must be strictly increasing (as steps: {steps})"
            )
        if steps and not (steps[0] > 0 and steps[-1] < total):
            raise ConfigError(
                f"milestones={self.milestones} must fall inside the training (1..{total - 1}"
                f" optimizer steps; as steps: {steps})"
            )
        self.milestone_steps = steps
        return self

    def after_warmup(self, step: int) -> float:
        return self.gamma ** sum(step >= m for m in self.milestone_steps)
