"""SMASH runtime: data, the search space, the HyperNet and one-shot model, search, experiments."""
