"""smashc: a graph-IR compiler for SMASH one-shot architecture search."""

__version__ = "0.1.0"
