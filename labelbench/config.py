"""Run configuration: the typed schema, the `_target_` allowlist and the checks that run
before any data is loaded or any model is trained.

Component groups (dataset, regime, budget, strategy, model, trainer, logger) are plain
`_target_` nodes: the constructor signature of each component is its schema, so adding a
component stays two files (DESIGN.md). The run-level fields are typed here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

SCHEMA_NAME = "labelbench_schema"

# Modules whose callables a config may name as `_target_`. Prefix match on the dotted path.
ALLOWED_TARGET_PREFIXES = (
    "labelbench.",
    "torch.",
    "pytorch_lightning.",
    "lightning.",
    "lightning_fabric.",
    "torchmetrics.",
    "sklearn.",
    "numpy.",
    "datasets.",
)
# Parts of those modules that load pickled, compiled or downloaded code: refused outright.
DENIED_TARGET_PREFIXES = (
    "torch.hub.",
    "torch.package.",
    "torch.ops.",
    "torch.utils.cpp_extension.",
    "torch.utils.model_zoo.",
    "numpy.ctypeslib.",
)
# Outside labelbench, any callable whose name mentions loading (torch.load,
# torch.serialization.load, LightningModule.load_from_checkpoint, numpy.load ...) is refused:
# data reaches a run through labelbench's own sources, never through a config's `_target_`.
DENIED_NAME_PART = "load"

# Config keys left out of the run key: where outputs go and how they are mirrored (moving a
# results folder does not re-run a sweep), which code may be named (`allow_targets`),
# `train`, which acts only through interpolations into the strategy nodes (the resolved
# nodes already carry its effect), and `loader`: how inputs travel (kept in memory or
# streamed from disk) changes nothing a run computes, so both paths fill one cell.
NON_IDENTITY_KEYS = ("paths", "logger", "checkpoint", "allow_targets", "train", "loader")
# More packages a config may name as `_target_` (a user's own strategies, datasets ...):
# comma-separated, added to the config's `allow_targets`.
ALLOW_TARGETS_ENV = "LABELBENCH_ALLOW_TARGETS"


class ConfigError(ValueError):
    """A bad configuration value. The message is one line naming the value and what is allowed."""


def placed_under(key: str, error: ConfigError) -> ConfigError:
    """`error` of a component placed at `key`, named from there: 'layer_decay=0.7 ...'
    under 'strategy.inner' reads 'strategy.inner.layer_decay=0.7 ...'; a message that does
    not start with a setting reads 'strategy.inner: ...'."""
    msg = str(error)
    head = msg.split("=", 1)[0]
    if "=" in msg and all(part.isidentifier() for part in head.split(".")):
        return ConfigError(f"{key}.{msg}")
    return ConfigError(f"{key}: {msg}")


def check_int(name: str, value: Any, least: int = 0, unit: str = "") -> int:
    """`value` if it is an integer (a bool is not) of at least `least`, else a ConfigError:
    'mu=0 must be a positive integer (unlabeled items per labeled one)'."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            least, f"an integer >= {least}"
        )
        raise ConfigError(f"{name}={value} must be {kind}" + (f" ({unit})" if unit else ""))
    return value


def check_flag(name: str, value: Any) -> bool:
    """`value` if it is a bool, else a ConfigError: 'use_quantile=1 must be true or false'."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be true or false")
    return value


def check_number(name: str, value: Any, interval: str = "[0, inf)") -> float:
    """`value` as a float if it is a number (a bool is not) inside `interval`, written as the
    message shows it: '(0, 1]', '[0, 1)', '[0, inf)' (the default: finite, non-negative).
    Else a ConfigError: 'threshold=1.5 is outside (0, 1]'."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (low < value if interval[0] == "(" else low <= value)
        and (value < high if interval[-1] == ")" else value <= high)
    )
    if not ok:
        if interval == "[0, inf)":
            raise ConfigError(f"{name}={value} must be a non-negative number")
        raise ConfigError(f"{name}={value} is outside {interval}")
    return float(value)


@dataclass
class PathsConfig:
    results_dir: str = "results"


@dataclass
class CheckpointConfig:
    every_steps: int = 500  # optimizer steps between checkpoints; 0 = never
    keep: bool = False  # keep a finished run's checkpoint (failed runs always keep theirs)


@dataclass
class TrainConfig:
    """Training length shared by every network strategy (their YAMLs interpolate it);
    strategies that train no network ignore it, and a strategy-level key overrides it."""

    max_steps: int | None = 1500  # optimizer steps, whatever the budget
    max_epochs: int | None = None  # or passes over the items trained on (one of the two)


LOADER_PATHS = ("auto", "memory", "stream")


@dataclass
class LoaderConfig:
    """How inputs that live on disk (dataset=folder, Hugging Face images) reach training:
    decoded once into memory and kept on the training device, or streamed through
    DataLoader workers. `auto` streams when the decoded float32 inputs would exceed
    `stream_above_mb`. In-memory sources (digits ...) are always in memory."""

    path: str = "auto"  # auto | memory | stream
    stream_above_mb: int = 2048  # auto: stream above this many MB of decoded float32 inputs
    workers: int = 4  # DataLoader worker processes that decode (0: in the training process)
    prefetch: int = 2  # batches each worker prepares ahead


@dataclass
class TuneConfig:
    """Where a run stands in hyper-parameter tuning (`labelbench tune`, labelbench/tune.py);
    all null for an ordinary run. A trial: `study` and `trial` set; it is scored on the
    validation labels only (no test metric is computed). A tuned run (the best trial's
    settings re-run over an evaluation seed): `study` and `trials` set."""

    study: str | None = None  # the study's id: '<strategy>-<8 hex digits>'
    trial: int | None = None  # the trial's number in its study, from 0
    trials: int | None = None  # a tuned run: the trials its settings were chosen from


@dataclass
class RunConfig:
    """Top-level schema. Component nodes are `_target_` dictionaries (see module docstring)."""

    dataset: Any = MISSING
    regime: Any = MISSING
    budget: Any = MISSING
    strategy: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    seed: int = 0
    split_seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    # Packages besides the built-in ones whose callables a config may name as `_target_`.
    allow_targets: list[str] = field(default_factory=list)
    paths: PathsConfig = field(default_factory=PathsConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


COMPONENT_GROUPS = ("dataset", "regime", "budget", "strategy", "model", "trainer")


def short_dirname(name: str, limit: int = 200) -> str:
    """Hydra's override_dirname as one folder name any file system takes: '/' (a nested
    option, `dataset/encoder=tokens`) becomes '.', and a name over `limit` bytes is cut,
    ending in a hash of the whole (a long command line no longer overflows the 255-byte
    name limit; the run's record says what it ran)."""
    name = str(name).replace("/", ".")
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return name.encode()[: limit - 17].decode(errors="ignore") + "-" + digest


# conf/config.yaml's run and sweep folders use it. Registered on import, not in
# register_configs: launcher workers (joblib, submitit) resolve those folders after
# unpickling the task function, without running the command-line entry point.
OmegaConf.register_new_resolver("lb_dirname", short_dirname, replace=True)


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore (conf/config.yaml extends it)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)


def _iter_targets(node: Any, path: str):
    if isinstance(node, DictConfig | dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield path, value
            else:
                yield from _iter_targets(value, sub)
    elif isinstance(node, ListConfig | list | tuple):
        for i, value in enumerate(node):
            yield from _iter_targets(value, f"{path}[{i}]")


def allowed_prefixes(extra: Any = ()) -> tuple[str, ...]:
    """The `_target_` prefixes allowed: the built-in ones, then the packages in `extra` (a
    config's `allow_targets`) and in $LABELBENCH_ALLOW_TARGETS ('mypkg' allows 'mypkg.*')."""
    import os

    from_env = [n.strip() for n in os.environ.get(ALLOW_TARGETS_ENV, "").split(",") if n.strip()]
    named = [*(extra or ()), *from_env]
    for name in named:
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ConfigError(
                f"allow_targets entry {name!r} must be a dotted package name such as mypkg"
                f" (from the config's allow_targets or ${ALLOW_TARGETS_ENV})"
            )
    users = tuple(dict.fromkeys(f"{n}." for n in named))
    return ALLOWED_TARGET_PREFIXES + tuple(u for u in users if u not in ALLOWED_TARGET_PREFIXES)


def check_targets(cfg: DictConfig | dict) -> None:
    """Refuse any `_target_` outside the allowlist, before anything is instantiated. The
    user's own packages (`allow_targets`) are trusted as labelbench's own code is."""
    allowed = allowed_prefixes(cfg.get("allow_targets"))
    own = ("labelbench.", *allowed[len(ALLOWED_TARGET_PREFIXES) :])
    for path, target in _iter_targets(cfg, ""):
        where = f"{path}._target_" if path else "_target_"
        if not isinstance(target, str):
            raise ConfigError(f"{where}={target!r} must be a dotted import path")
        denied = not target.startswith(own) and (
            target.startswith(DENIED_TARGET_PREFIXES)
            or DENIED_NAME_PART in target.rsplit(".", 1)[-1].lower()
        )
        if denied or not target.startswith(allowed):
            names = ", ".join(p.rstrip(".") for p in allowed)
            raise ConfigError(
                f"{where}={target} is not allowed; targets must come from: {names}"
                + (
                    " (callables that load code or pickles are refused)"
                    if denied
                    else f" (add your own package with allow_targets=[mypkg] or ${ALLOW_TARGETS_ENV})"
                )
            )


def check_run_fields(cfg: DictConfig) -> None:
    """Run-level checks that need no data."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:  # what the key takes: its YAML comment, or the option's known values
        from labelbench.overrides import missing_message

        raise ConfigError(missing_message(missing[0], cfg))
    every = cfg.get("checkpoint", {}).get("every_steps", 0)
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ConfigError(
            f"checkpoint.every_steps={every} must be a non-negative integer (0: no checkpoints)"
        )
    for key in ("seed", "split_seed"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{key}={value} must be a non-negative integer")
    loader = cfg.get("loader") or {}
    if loader.get("path", "auto") not in LOADER_PATHS:
        raise ConfigError(
            f"loader.path={loader.get('path')!r} is not one of {', '.join(LOADER_PATHS)}"
        )
    check_int("loader.stream_above_mb", loader.get("stream_above_mb", 0), unit="MB")
    check_int("loader.workers", loader.get("workers", 0), unit="DataLoader worker processes")
    check_int("loader.prefetch", loader.get("prefetch", 1), least=1, unit="batches per worker")
    for group in COMPONENT_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"{group} must be a config node with a _target_ (got {node!r})")
    check_targets(cfg)


def trains_network(cfg: DictConfig) -> bool:
    """Whether the run's strategy trains the run's `model` (logreg, knn and label spreading
    do not). Asked of the strategy class (`Strategy.trains_network(node)`), once its
    `_target_` has passed the allowlist; a strategy that does not say trains one."""
    node = cfg.get("strategy")
    if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
        return True
    node = OmegaConf.to_container(node, resolve=True)  # a ??? value stays '???'
    check_targets({"strategy": node, "allow_targets": cfg.get("allow_targets")})
    from hydra.utils import get_class

    ask = getattr(get_class(node["_target_"]), "trains_network", None)
    return True if ask is None else bool(ask(node))


# The model name recorded and tabled for a strategy that trains no network.
NO_MODEL = "–"


def identity_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config that defines what a run computes (paths and loggers left out,
    and the model when the strategy trains none: logreg gives the same run under any)."""
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(resolved, dict)
    drop = NON_IDENTITY_KEYS if trains_network(cfg) else (*NON_IDENTITY_KEYS, "model")
    if not any((resolved.get("tune") or {}).values()):
        # outside tuning: the key the run had before `tune` existed, so stores still resume
        drop = (*drop, "tune")
    return {k: v for k, v in resolved.items() if k not in drop}


def run_key(cfg: DictConfig) -> str:
    """Stable 16-hex-digit hash of the identity config; names the run's record."""
    blob = json.dumps(identity_config(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def choices_from(cfg: DictConfig, hydra_choices: dict[str, str] | None = None) -> dict[str, str]:
    """The public names of the components: Hydra's group choices when known (YAML stems),
    else the last part of each `_target_`. A dataset or strategy whose nested options
    differ from its YAML's defaults is named with them, so that leaderboards tell the
    variants apart: 'supervised[loss=gce]', 'fixmatch[augment=none]', 'hub[encoder=resnet18]'.
    A dataset option whose YAML leaves the data to the user (`files`: `path: ???`, `hub`:
    `name: ???`) is named by what the user gave: 'files[wine]', 'hub[fancyzhx/ag_news]'.
    A strategy that trains no network is named with the model `–`."""
    names = {}
    for group in ("dataset", "regime", "budget", "strategy", "model"):
        if hydra_choices and hydra_choices.get(group):
            names[group] = str(hydra_choices[group])
        else:
            target = str(cfg[group].get("_target_", group))
            names[group] = target.rsplit(".", 1)[-1].lower()
    for group in VARIANT_GROUPS:
        if hydra_choices and hydra_choices.get(group):
            option = str(hydra_choices[group])
            parts = _variant(group, option, hydra_choices)
            if group == "dataset":
                parts = _data_named(option, cfg[group]) + parts
            names[group] += f"[{','.join(parts)}]" if parts else ""
    if not trains_network(cfg):
        names["model"] = NO_MODEL
    return names


# Keys with which a generic dataset option leaves the data to the user, and how a value
# names it: a file by its stem, a hub dataset by its id (a local folder by its name), a
# folder of images by its name (`imagenet.v2` stays whole), an index file by its stem.
DATA_KEYS = {"path": "stem", "name": "id", "root": "folder", "index": "stem"}


def _data_named(option: str, node: DictConfig) -> list[str]:
    """['wine'] for `dataset=files dataset.path=data/wine.csv`, ['fancyzhx/ag_news'] for
    `dataset=hub dataset.name=fancyzhx/ag_news`; [] for an option that names its own data."""
    own = _option_yaml("dataset", option)
    if own is None:
        return []
    for key, kind in DATA_KEYS.items():
        # A key the YAML leaves to the user (???), or leaves null and the user set.
        given = OmegaConf.is_missing(own, key) or (key in own and own.get(key) is None)
        if not given or node.get(key) is None:
            continue
        value = str(node.get(key))
        local = Path(value).expanduser()
        if kind == "stem":
            return [local.stem]
        if kind == "folder":
            return [local.resolve().name if value in (".", "..") else local.name]
        return [local.name if value.startswith((".", "/", "~")) or local.exists() else value]
    return []


def _option_yaml(group: str, stem: str) -> DictConfig | None:
    """<group>/<stem>.yaml as written, from the first config folder that has it in the
    current Hydra job's search path (a plugin's `hydra.searchpath=[file://...]` included),
    else from labelbench's conf/; None when no folder has it."""
    for folder in _config_folders():
        path = folder / group / f"{stem}.yaml"
        if path.is_file():
            return OmegaConf.load(path)
    return None


def _config_folders() -> list[Path]:
    """The config folders on disk, in Hydra's lookup order: the running job's file:// and
    pkg:// sources (none outside a Hydra app), then labelbench's own conf/."""
    from importlib.resources import files

    from hydra.core.hydra_config import HydraConfig

    own = Path(__file__).resolve().parent.parent / "conf"
    folders = []
    if HydraConfig.initialized():
        for source in HydraConfig.get().runtime.config_sources:
            if source.schema == "file":
                folders.append(Path(source.path))
            elif source.schema == "pkg":
                try:
                    folders.append(Path(str(files(source.path.replace("/", ".")))))
                except (ModuleNotFoundError, TypeError):  # a namespace-less or zip source
                    continue
    return [*folders, own]


# Groups whose options have nested options of their own (strategy/loss, dataset/encoder ...).
# A regime's stages are named by the regime's own label instead (labels.regime).
VARIANT_GROUPS = ("dataset", "strategy")


def _variant(group: str, option: str, hydra_choices: dict[str, str]) -> list[str]:
    """['loss=gce'] for the nested choices of a group's option (`<group>/<sub>` options,
    and options nested in slots such as active learning's `inner`) that differ from what
    its YAML's defaults list picks ([] when none do): ['inner.loss=gce', 'query=entropy']."""
    defaults = _nested_defaults(group, option, hydra_choices, "")
    for key, value in hydra_choices.items():  # slots added on the command line (+...proxy=)
        slot = key.removeprefix(f"{group}@{group}.")
        if key.startswith(f"{group}@{group}.") and slot not in defaults and value is not None:
            defaults.update(_nested_defaults(group, str(value), hydra_choices, f"{slot}."))
    changed = []
    for key, value in sorted(hydra_choices.items()):
        if key == group or value is None:
            continue
        # A choice belongs where it is placed: `dataset/encoder@strategy.encoder` (a
        # probe's encoder) is the strategy's, not the dataset's.
        package = key.split("@", 1)[1] if "@" in key else None
        if package is not None and package != group and not package.startswith(f"{group}."):
            continue
        if package is None and not key.startswith(f"{group}/"):
            continue
        slot = _slot(group, key)
        if str(value) != defaults.get(slot):
            changed.append(f"{slot}={value}")
    return changed


def _slot(group: str, key: str) -> str:
    """Hydra's choice key -> the slot under the group: 'strategy/loss' -> 'loss',
    'strategy@strategy.inner' -> 'inner', 'strategy/loss@strategy.inner.loss' -> 'inner.loss'."""
    if "@" in key:
        return key.split("@", 1)[1].removeprefix(f"{group}.")
    return key.split("/", 1)[1]


def _nested_defaults(
    group: str, stem: str, hydra_choices: dict[str, str], prefix: str
) -> dict[str, str]:
    """Slot -> option as conf/<group>/<stem>.yaml's defaults list picks them, following
    options nested in slots (`/strategy@inner: supervised`) into their own defaults."""
    own = _option_yaml(group, stem)
    out: dict[str, str] = {}
    if own is None:
        return out
    for entry in own.get("defaults", []) or []:
        if isinstance(entry, str):  # another option of the group that this one extends
            if entry != "_self_":
                out.update(_nested_defaults(group, entry, hydra_choices, prefix))
            continue
        for sub, option in entry.items():
            sub = str(sub).removeprefix("override ")
            if sub.startswith(f"/{group}@"):  # a nested option of the same group, in a slot
                slot = prefix + sub.split("@", 1)[1]
                out[slot] = str(option)
                chosen = hydra_choices.get(f"{group}@{group}.{slot}", option)
                out.update(_nested_defaults(group, str(chosen), hydra_choices, f"{slot}."))
            elif "@" in sub:  # another group's option placed in a slot of this one
                out[prefix + sub.split("@", 1)[1]] = str(option)
            else:
                out[prefix + sub] = str(option)
    return out
