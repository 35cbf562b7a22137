"""Channel checking of expanded ops: how many channels each op produces, and located errors."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import DiagnosticBag
from smashc.ops.registry import of


def op_channels(op: arch.Op, cin: int | None, bag: DiagnosticBag) -> int | None:
    """Output channels of ``op`` on ``cin`` input channels; None, with a diagnostic, if it fails.

    ``cin`` None means unknown (an earlier error): checks that need it are skipped and ops
    that set their own width (conv, linear, chanpad, smash) make the channels known again.
    Each op's rule is its registry entry's ``channels``; a ``sum`` checks its paths here.
    """
    if type(op) is not arch.Sum:
        return of(op).channels(op, cin, bag)
    if cin is None:
        return None
    outs = [seq_channels(p, cin, bag) for p in op.paths]
    if any(o is None for o in outs):
        return None
    if len(set(outs)) > 1:
        shown = ", ".join(str(o) for o in outs)
        msg = f"the paths of a sum must produce equal channels; they produce {shown}"
        bag.error("E0205", msg, op.span)
        return None
    return outs[0]


def seq_channels(ops: tuple[arch.Op, ...], cin: int | None, bag: DiagnosticBag) -> int | None:
    """Channels after running ``ops`` in order; None while unknown or after an op that fails."""
    c: int | None = cin
    for op in ops:
        c = op_channels(op, c, bag)
    return c
