"""RunRecord: the one JSON document every run leaves (schema documented in
docs/reference/record.md)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed")
OPTIONAL = ("error", "created", "extra", "proxy_curve")  # fields older records may lack


class RecordError(ValueError):
    """A record file that is not a valid RunRecord of this schema version."""


@dataclass
class RunRecord:
    run_key: str
    status: str  # 'ok' or 'failed'
    choices: dict[str, str]  # dataset, regime, budget, strategy, model (YAML stems)
    seed: int
    split_seed: int
    labels: dict[str, Any]  # LabelAccounting: indices, count, cost, val_paid, noise_rate ...
    metrics: dict[str, float]  # flat: 'test/acc', 'fit/steps' ...
    directions: dict[str, str]  # metric -> 'max' | 'min'
    curve: list[dict[str, float]]  # per-round points; empty for one-shot runs
    timings: dict[str, float]  # load_s, fit_s, eval_s, total_s
    versions: dict[str, str]
    git: dict[str, Any]  # sha, dirty
    host: dict[str, Any]  # hostname, pid, SLURM ids
    config: dict[str, Any]  # resolved config
    error: dict[str, str] | None = None  # type, message (failed runs)
    created: str = ""  # UTC ISO time the record was written
    # Active learning with a proxy choosing the items: the proxy's per-round points, of the
    # same form as `curve` (which stays the evaluated model's); empty otherwise.
    proxy_curve: list[dict[str, float]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RecordError(f"status={self.status!r} is not one of {', '.join(STATUSES)}")
        if (self.status == "failed") != (self.error is not None):
            raise RecordError("a failed record carries an error, an ok record none")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        # allow_nan=False: a NaN metric is a bug upstream, not something to persist.
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        if not isinstance(data, dict):
            raise RecordError("a record must be a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"schema_version={version!r}; this labelbench reads {SCHEMA_VERSION}")
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in OPTIONAL)
        if missing:
            raise RecordError(f"record lacks {', '.join(missing)}")
        record = cls(**{k: v for k, v in data.items() if k in names})
        bad = [
            k
            for k, v in record.metrics.items()
            if not isinstance(v, int | float) or not math.isfinite(v)
        ]
        if bad:
            raise RecordError(f"non-numeric metrics: {', '.join(bad)}")
        return record

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError(f"not JSON: {e}") from None
        return cls.from_dict(data)
