"""Loggers and progress: the run's mirrors (CSV, TensorBoard, W&B) and its progress bar.

The record store is the source of truth (DESIGN.md). Loggers get the training curves while
a run trains and, once its record is written, a copy of the record: the resolved config,
the final metrics and the outcome (`mirror_record`). W&B runs offline unless W&B is set up
on the machine; its run id is the run key, so a relaunch of the same configuration maps to
the same W&B run.

Nothing here imports torch, Lightning or wandb at module level: `wandb` is imported only
when `logger=wandb` is chosen, and then only when the run first logs.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig

from labelbench.config import ConfigError, choices_from
from labelbench.results.record import RunRecord

log = logging.getLogger("labelbench")

CHOICE_GROUPS = ("dataset", "regime", "budget", "strategy", "model")
# W&B refuses these in project names (wandb.Settings.validate_project), and more than 128
# characters; an empty name is refused here too.
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"
WANDB_PROJECT_MAX = 128
WANDB_MODES = ("online", "offline", "disabled", "shared")
DEFAULT_WANDB_HOST = "https://api.wandb.ai"


# -- W&B -------------------------------------------------------------------------------


def is_wandb(node: Any) -> bool:
    """Whether a logger config node is Lightning's WandbLogger."""
    target = node.get("_target_", "") if isinstance(node, DictConfig | Mapping) else ""
    return str(target).rsplit(".", 1)[-1] == "WandbLogger"


def check_wandb_project(project: Any) -> None:
    """Refuse a project name W&B would reject, before any training."""
    allowed = f"allowed: 1 to {WANDB_PROJECT_MAX} characters, none of " + " ".join(
        WANDB_PROJECT_FORBIDDEN
    )
    if not isinstance(project, str) or not project.strip():
        raise ConfigError(f"project={project!r} is not a W&B project name; {allowed}")
    bad = "".join(c for c in WANDB_PROJECT_FORBIDDEN if c in project)
    if bad:
        raise ConfigError(
            f"project={project!r} has characters W&B does not allow ({' '.join(bad)}); {allowed}"
        )
    if len(project) > WANDB_PROJECT_MAX:
        raise ConfigError(
            f"project={project[:20]!r}... is {len(project)} characters long; {allowed}"
        )


def wandb_credentials_configured() -> bool:
    """Whether this machine has W&B credentials: WANDB_API_KEY (or an identity token
    file), or a .netrc entry for the W&B host (what `wandb login` writes). Only checks
    that they exist; never reads the key."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST).netloc
    if os.environ.get("NETRC"):
        paths = [Path(os.environ["NETRC"]).expanduser()]
    else:
        paths = [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]
    for path in paths:
        if not path.is_file():
            continue
        try:
            entry = netrc.netrc(str(path)).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            return False
        return bool(entry and entry[2])
    return False


def wandb_mode(mode: str | None) -> str | None:
    """The W&B mode to start runs in; None leaves it to wandb (WANDB_MODE, its settings).

    `logger.mode` wins when set. Else WANDB_MODE, if set, is respected; else runs go online
    only when credentials are configured, and offline otherwise: a run never stops to ask
    for a login and never fails for the lack of one."""
    if mode is not None:
        if mode not in WANDB_MODES:
            raise ConfigError(f"mode={mode!r} is not a W&B mode; allowed: {', '.join(WANDB_MODES)}")
        return mode
    if os.environ.get("WANDB_MODE"):
        return None
    return None if wandb_credentials_configured() else "offline"


def runtime_choices() -> dict[str, str]:
    """Hydra's group choices of the current job ({} outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return {k: str(v) for k, v in HydraConfig.get().runtime.choices.items() if v is not None}


def choice_tags(choices: Mapping[str, str]) -> list[str]:
    """'dataset=digits', 'regime=clean' ... the W&B tags that name a run's components."""
    return [f"{g}={choices[g]}" for g in (*CHOICE_GROUPS, "experiment") if choices.get(g)]


def wandb_group(group: str | None, choices: Mapping[str, str]) -> str:
    """The W&B group: `logger.group` when set; else the experiment (`experiment=demo` ->
    'demo'), so one suite is one group however often it is relaunched; else
    '<dataset>-<model>', the runs that share a leaderboard table."""
    if group:
        return str(group)
    if choices.get("experiment"):
        return str(choices["experiment"])
    return f"{choices['dataset']}-{choices['model']}"


def _wandb_logger(cfg: DictConfig, key: str) -> Any:
    from hydra.utils import instantiate

    node = cfg.logger
    if node.get("project") is not None:  # null: WANDB_PROJECT, else Lightning's default
        check_wandb_project(node.project)
    if node.get("save_dir"):  # wandb looks for a git repository there before creating it
        Path(str(node.save_dir)).mkdir(parents=True, exist_ok=True)
    hydra_choices = runtime_choices()
    choices = {**choices_from(cfg, hydra_choices), **hydra_choices}
    logger = instantiate(
        node,
        version=key,  # the W&B run id: a relaunch of the run key resumes the same run
        name=node.get("name") or key,
        resume="allow",
        mode=wandb_mode(node.get("mode")),
        group=wandb_group(node.get("group"), choices),
        tags=[*choice_tags(choices), *(node.get("tags") or [])],
    )
    # WandbLogger always passes `anonymous`, which wandb >= 0.19 warns about on every run.
    init = getattr(logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)
    return logger


def build_logger(cfg: DictConfig, key: str) -> Any:
    """The run's Lightning logger from `cfg.logger`, versioned by the run key; False for
    `logger=none`. Raises ConfigError (e.g. `project='a/b' ...`) for a bad logger setting."""
    node = cfg.get("logger")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return False
    if is_wandb(node):
        return _wandb_logger(cfg, key)
    from hydra.utils import instantiate

    return instantiate(node, version=key)


def record_summary(record: RunRecord) -> dict[str, Any]:
    """What a W&B run summary holds after the run: the record's metrics, its status and
    label accounting, and the error of a failed run."""
    summary: dict[str, Any] = dict(record.metrics)
    summary["status"] = record.status
    for k in ("count", "cost"):
        if record.labels.get(k) is not None:
            summary[f"labels/{k}"] = record.labels[k]
    if record.error:
        summary["error/type"] = record.error.get("type", "")
        summary["error/message"] = record.error.get("message", "")
    return summary


def final_metrics(record: RunRecord) -> dict[str, float]:
    """The record's metrics and label count as plain floats, for step-based loggers."""
    final = {k: float(v) for k, v in record.metrics.items()}
    for k in ("count", "cost"):
        if isinstance(record.labels.get(k), int | float):
            final[f"labels/{k}"] = float(record.labels[k])
    return final


def _mirror_wandb(logger: Any, record: RunRecord) -> None:
    run = logger.experiment  # starts the W&B run if training never logged (e.g. logreg)
    logger.log_hyperparams(record.config)
    # The record names the components authoritatively; keep any other tags (user, experiment).
    others = [t for t in run.tags or () if t.split("=", 1)[0] not in CHOICE_GROUPS]
    run.tags = tuple(dict.fromkeys([*choice_tags(record.choices), *others]))
    summary = record_summary(record)
    # The summary mirrors the record exactly: drop the last training/validation values
    # W&B kept there (the restored best weights are what the record measured).
    for k in list(run.summary.keys()):
        if not k.startswith("_") and k not in summary:
            del run.summary[k]
    run.summary.update(summary)
    run.finish(exit_code=0 if record.status == "ok" else 1)  # flushes the offline files


def _mirror_steps(logger: Any, record: RunRecord) -> None:
    from pytorch_lightning.loggers import TensorBoardLogger

    status = "success" if record.status == "ok" else "failed"
    step = int(record.metrics.get("fit/steps", 0))
    final = final_metrics(record)
    if not isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(record.config)  # CSV: hparams.yaml
        if final:
            logger.log_metrics(final, step=step)
        logger.finalize(status)  # writes metrics.csv
        return
    from pytorch_lightning.core.saving import save_hparams_to_yaml

    # tensorboardX names event files by the second, so reopening the writer that Lightning
    # closed after fitting could overwrite the training curves: the record gets its own
    # event file in the same folder.
    mirror = TensorBoardLogger(
        logger.save_dir,
        name=logger.name,
        version=logger.version,
        sub_dir=logger.sub_dir,
        default_hp_metric=False,
        filename_suffix=".record",
    )
    # With metrics, TensorBoard's HParams view links the config to the final scores.
    mirror.log_hyperparams(record.config, metrics=final or None, step=step)
    mirror.finalize(status)
    # Lightning wrote an empty hparams.yaml when fitting ended and never replaces it.
    save_hparams_to_yaml(Path(mirror.log_dir) / "hparams.yaml", record.config)


def mirror_record(logger: Any, record: RunRecord) -> None:
    """Copy a written record into the run's loggers and close them.

    W&B: config, tags from the choices, summary = `record_summary(record)`, run finished
    (failed runs with exit code 1). TensorBoard and CSV: config as hyperparameters and
    `final_metrics(record)` at the last optimizer step. A logger that fails here is
    reported as a warning: the record, already written, stays the truth."""
    loggers = logger if isinstance(logger, list | tuple) else [logger] if logger else []
    if not loggers:
        return
    from pytorch_lightning.loggers import WandbLogger  # does not import wandb itself

    for one in loggers:
        try:
            if isinstance(one, WandbLogger):
                _mirror_wandb(one, record)
            else:
                _mirror_steps(one, record)
        except Exception as e:
            log.warning(
                "%s could not mirror run %s: %s: %s",
                type(one).__name__,
                record.run_key,
                type(e).__name__,
                e,
            )


# -- progress --------------------------------------------------------------------------


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def wants_progress_bar(setting: bool | None = None) -> bool:
    """`trainer.enable_progress_bar`: true or false as set; null (auto) draws a bar only on
    an interactive terminal: not when CI is set to a true value, stdout is not a TTY (logs,
    pipes, SLURM) or TERM is dumb."""
    if setting is not None:
        return bool(setting)
    if _env_true("CI") or os.environ.get("TERM") == "dumb":
        return False
    stdout = sys.stdout
    try:
        return bool(stdout is not None and stdout.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def progress_settings(setting: bool | None = None) -> dict[str, Any]:
    """Trainer arguments for the progress decision: `enable_progress_bar` and the
    `callbacks` to add (a fresh RichProgressBar when there is a bar)."""
    if not wants_progress_bar(setting):
        return {"enable_progress_bar": False, "callbacks": []}
    from pytorch_lightning.callbacks import RichProgressBar

    return {"enable_progress_bar": True, "callbacks": [RichProgressBar()]}


class RunTrainer:
    """`trainer(**overrides) -> Trainer` for one run: the configured Trainer partial with
    the run's logger and progress bar bound. Callbacks given at call time are kept and the
    progress bar is added to them (a partial would let them replace it)."""

    def __init__(
        self, make: Callable[..., Any], logger: Any = False, progress: bool | None = None
    ) -> None:
        self.make, self.logger = make, logger
        self.progress = wants_progress_bar(progress)  # decided once per run

    def __call__(self, **overrides: Any) -> Any:
        settings = progress_settings(self.progress)
        callbacks = [*(overrides.pop("callbacks", None) or []), *settings["callbacks"]]
        overrides.setdefault("logger", self.logger)
        return self.make(
            enable_progress_bar=settings["enable_progress_bar"], callbacks=callbacks, **overrides
        )
