"""`hydra/sweeper=tune`: labelbench's tuning sweeper (labelbench/tune.py), placed where Hydra
looks for plugins. Light: Hydra imports this module on every start-up."""

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from labelbench import tune


class TuneSweeper(tune.TuneSweeper, Sweeper):
    """Studies of trials on validation labels, then the best settings over the seeds."""


ConfigStore.instance().store(
    group="hydra/sweeper", name="tune", node=tune.TuneSweeperConf, provider="labelbench"
)
