"""smashc: a graph-IR compiler for SMASH one-shot architecture search."""

__version__ = "0.1.0"


def load(path):
    """An exported network package (``smashc compile FILE -o OUTDIR``) as an ``nn.Module``.

    Raises FileNotFoundError when a file of the package is missing and
    ``smashc.diagnostics.SmashError`` (E0503, at ``weights.pt``) when its weights are
    symlinked, truncated, changed since export or not finite."""
    from smashc.backends.export import load as _load

    return _load(path)


def lift(module, example, name=None):
    """``module`` (a PyTorch ``nn.Module``) as a ``.smash`` network, traced on ``example``
    (an N x C x H x W batch): a ``smashc.lifting.Lifted`` (``.text``, ``.program``,
    ``.network``, ``.weights``). See docs/interop.md."""
    from smashc.lifting import lift as _lift

    return _lift(module, example, name)
