"""Datasets: sources that load inputs and true labels, and the fixed pool/val/test split."""

from labelbench.data.task import Split, TaskData, TaskView, stratified_split

__all__ = ["Split", "TaskData", "TaskView", "stratified_split"]
