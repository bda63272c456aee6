"""Run records, the record store and aggregation. Never imports torch or lightning."""

from labelbench.results.record import SCHEMA_VERSION, RecordError, RunRecord
from labelbench.results.store import RecordStore

__all__ = ["SCHEMA_VERSION", "RecordError", "RecordStore", "RunRecord"]
