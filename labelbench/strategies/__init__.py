"""Label strategies: one module per family. `base` holds the interface; `lightning` the
shared training loop that network-based strategies build on."""
