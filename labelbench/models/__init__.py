"""Plain nn.Module backbones. A model config is a partial: the run supplies
`in_shape` (one item's shape) and `num_classes`."""
