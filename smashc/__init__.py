"""smashc: a graph-IR compiler for SMASH one-shot architecture search."""

__version__ = "0.1.0"


def load(path):
    """An exported network package (``smashc compile FILE -o OUTDIR``) as an ``nn.Module``.

    Raises FileNotFoundError when a file of the package is missing and
    ``smashc.diagnostics.SmashError`` (E0503, at ``weights.pt``) when its weights are
    symlinked, truncated, changed since export or not finite."""
    from smashc.backends.export import load as _load

    return _load(path)
