"""Templates: a lifted block written as the standard library template that expands to it.

Candidates come from the block's recognised family and parameters (``resnet`` ->
``resnet_block``, ``resnet_postact_block``, ``bottleneck_block``, ``mobilenet_block``;
``densenet`` -> ``dense_block``; ``fractalnet`` -> ``fractal_block``); one matches when a
one-to-one renumbering of the block's banks (the input bank staying first) turns the
block's layers, in some order, into the expansion's: the same reads, writes, mode and ops
per layer, the same bank widths and output. The block is then printed as the template call
and its layers take the expansion's order (which is how the weights find their layers).
"""

from __future__ import annotations

from collections.abc import Iterator

from smashc import arch
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_text
from smashc.lifting.banks import LBlock, LLayer


def _first_conv(b: LBlock) -> arch.Conv | None:
    for lay in b.layers:
        for op in lay.ops:
            if isinstance(op, arch.Conv):
                return op
    return None


def candidates(b: LBlock, family: str, params: dict[str, int]) -> Iterator[tuple[str, str]]:
    """(template, argument text) pairs worth trying, shortest first."""
    conv = _first_conv(b)
    c1 = conv.out if conv else 0
    if family == "resnet":
        d, w = params["depth"], params["width"]
        yield "resnet_postact_block", f"{d}, {w}"
        yield "resnet_block", f"{d}, {w}"
        if conv is not None and conv.kernel[0] == conv.kernel[1]:
            yield "resnet_block", f"{d}, {w}, kernel={conv.kernel[0]}"
        if c1 and w % c1 == 0:
            e = w // c1
            yield "bottleneck_block", f"{d}, {c1}" if e == 4 else f"{d}, {c1}, expansion={e}"
        if c1 and c1 % w == 0:
            e = c1 // w
            yield "mobilenet_block", f"{d}, {w}" if e == 6 else f"{d}, {w}, expansion={e}"
    elif family == "densenet":
        d, g = params["depth"], params["growth"]
        yield "dense_block", f"{d}, {g}"
        if c1 % g == 0:
            yield "dense_block", f"{d}, {g}, bottleneck={c1 // g}"
        yield "dense_block", f"{d}, {g}, bottleneck=0"
    elif family == "fractalnet":
        yield "fractal_block", f"{params['columns']}, {params['width']}"


def _assign(
    want: list[arch.Layer], mine: list[LLayer], banks: dict[int, int], used: set[int]
) -> list[int] | None:
    """Indices into ``mine``, one per ``want`` layer in order, such that renaming ``mine``'s
    banks by a consistent map (``banks``: template bank -> mine) gives ``want``'s layers."""
    if not want:
        return []
    lay = want[0]
    for i, m in enumerate(mine):
        if i in used or (m.mode, m.ops) != (lay.mode, lay.ops):
            continue
        if len(m.reads) != len(lay.reads) or len(m.writes) != len(lay.writes):
            continue
        trial = dict(banks)
        ok = True
        for t, b in zip(lay.reads + lay.writes, m.reads + m.writes, strict=True):
            if trial.setdefault(t, b) != b or list(trial.values()).count(b) > 1:
                ok = False
                break
        if not ok:
            continue
        rest = _assign(want[1:], mine, trial, used | {i})
        if rest is not None:
            banks.update(trial)
            return [i, *rest]
    return None


def expansion(template: str, args: str, entry: tuple[int, int, int]) -> arch.Block | None:
    c, h, w = entry
    text = (
        f"import std\nnetwork probe {{\n input {c} x {h} x {w}\n classes 1\n"
        f" block = {template}({args})\n head {{ gap -> linear(out=1) }}\n}}\n"
    )
    try:
        (blk,) = expand(load_text(text)).blocks
    except Exception:  # noqa: BLE001 - a candidate that does not expand does not match
        return None
    return blk


def match(
    b: LBlock, family: str, params: dict[str, int], entry: tuple[int, int, int]
) -> tuple[str, str, LBlock] | None:
    """The first matching (template, arguments), and ``b`` with its layers in the
    template's order."""
    for template, args in candidates(b, family, params):
        blk = expansion(template, args, entry)
        if blk is None or len(blk.banks) != len(b.banks) or len(blk.layers) != len(b.layers):
            continue
        banks = {0: 0}  # the block input's bank stays first
        order = _assign(list(blk.layers), list(b.layers), banks, set())
        if order is None or len(banks) != len(b.banks):
            continue
        if any(blk.banks[t] != b.banks[m] for t, m in banks.items()):
            continue
        if tuple(banks[t] for t in blk.output) != b.output:
            continue
        layers = tuple(
            LLayer(lay.reads, lay.writes, lay.mode, lay.ops, b.layers[i].ids)
            for lay, i in zip(blk.layers, order, strict=True)
        )
        return template, args, LBlock(blk.banks, layers, blk.output)
    return None
