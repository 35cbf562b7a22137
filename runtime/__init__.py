"""SMASH runtime: HyperNet, training, scoring (filled in by the runtime issue)."""
