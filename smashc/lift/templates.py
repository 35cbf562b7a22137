"""Templates: a lifted block written as the standard library template that expands to it.

Candidates come from the block's recognised family and parameters (``resnet`` ->
``resnet_block``, ``resnet_postact_block``, ``bottleneck_block``, ``mobilenet_block``;
``densenet`` -> ``dense_block``; ``fractalnet`` -> ``fractal_block``); one matches when its
expansion has the block's banks and output and the same layers up to the order of layers
that commute (the same multiset of reads, writes, mode and ops).
"""

from __future__ import annotations

from collections.abc import Iterator

from smashc import arch
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_text
from smashc.lift.banks import LBlock, LLayer


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


def _key(lay: LLayer | arch.Layer) -> tuple:
    return (lay.reads, lay.writes, lay.mode, lay.ops)


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
        if blk is None or blk.banks != b.banks or blk.output != b.output:
            continue
        mine = list(b.layers)
        ordered = []
        for lay in blk.layers:
            k = _key(lay)
            found = next((m for m in mine if _key(m) == k), None)
            if found is None:
                break
            mine.remove(found)
            ordered.append(found)
        if not mine and len(ordered) == len(blk.layers):
            return template, args, LBlock(b.banks, tuple(ordered), b.output)
    return None
