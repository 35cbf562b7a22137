"""Channel checking of expanded ops: how many channels each op produces, and located errors."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import DiagnosticBag


def _groups_ok(bag: DiagnosticBag, what: str, groups: int, cin: int, cout: int, op) -> bool:
    if cin % groups == 0 and cout % groups == 0:
        return True
    bad = cin if cin % groups else cout
    side = "input" if cin % groups else "output"
    bag.error(
        "E0203",
        f"{what} has groups={groups}, which does not divide its {bad} {side} channels",
        op.span,
    )
    return False


def op_channels(op: arch.Op, cin: int | None, bag: DiagnosticBag) -> int | None:
    """Output channels of ``op`` on ``cin`` input channels; None, with a diagnostic, if it fails.

    ``cin`` None means unknown (an earlier error): checks that need it are skipped and ops
    that set their own width (conv, linear, chanpad, smash) make the channels known again.
    """
    if cin is None:
        if isinstance(op, arch.Conv | arch.Linear | arch.ChannelPad):
            return op.out
        if not isinstance(op, arch.SmashOp):
            return None
    match op:
        case arch.Conv():
            return op.out if _groups_ok(bag, "conv", op.groups, cin, op.out, op) else None
        case arch.Linear():
            return op.out
        case arch.ChannelPad():
            if op.out < cin:
                msg = f"chanpad(out={op.out}) cannot shrink {cin} input channels"
                bag.error("E0205", msg, op.span)
                return None
            return op.out
        case arch.SmashOp():
            ok = True
            for pos, conv in enumerate(op.convs):
                if conv is not None:
                    what = f"smash conv c{pos}"
                    ok &= _groups_ok(bag, what, conv.groups, op.conv_in(pos), op.out, conv)
            return op.out if ok else None
        case arch.Sum():
            outs = [seq_channels(p, cin, bag) for p in op.paths]
            if any(o is None for o in outs):
                return None
            if len(set(outs)) > 1:
                shown = ", ".join(str(o) for o in outs)
                msg = f"the paths of a sum must produce equal channels; they produce {shown}"
                bag.error("E0205", msg, op.span)
                return None
            return outs[0]
    return cin


def seq_channels(ops: tuple[arch.Op, ...], cin: int | None, bag: DiagnosticBag) -> int | None:
    """Channels after running ``ops`` in order; None while unknown or after an op that fails."""
    c: int | None = cin
    for op in ops:
        c = op_channels(op, c, bag)
    return c
