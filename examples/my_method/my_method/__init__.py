"""An example labelbench plugin: one strategy (mixup), living outside the labelbench package."""
