"""The weight budget: a network's parameter count against a cap and the memory available,
checked from the IR before any weight exists.

Every backend that gives a network weights of its own (``to_fx``: ``compile -o``,
``--emit code``, ``smashc train``, the runtime's ``free_module``) calls ``check_fits``
first, so that a network too large to allocate ends in a located error at the layer
responsible instead of in the allocator (or in a multi-gigabyte ``weights.pt``).
"""

from __future__ import annotations

import os

from smashc.diagnostics import Note, SmashError, error
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import OpNode
from smashc.ops.registry import of

DEFAULT_MAX_PARAMS = 100_000_000  # 400 MB of float32 weights; --max-params raises it
BYTES_PER_PARAM = 4  # float32


def available_memory() -> int | None:
    """Bytes of memory the system can still give (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _count(n: int) -> str:
    return f"{n:,}"


def op_params(ir: IRGraph) -> list[tuple[int, OpNode]]:
    """(parameters, node) of every op of ``ir`` (pre: shapes inferred)."""
    out = []
    for n in ir.graph:
        p = ir.payload(n)
        if isinstance(p, OpNode):
            x = ir.shape(ir.operands(n)[0])
            out.append((of(p.op).cost(p.op, x, ir.shape(n))[0], p))
    return out


def check_fits(
    ir: IRGraph, max_params: int = DEFAULT_MAX_PARAMS, available: int | None = None
) -> None:
    """Raise a SmashError at the op with the most parameters when the network has more than
    ``max_params`` (E0406) or its float32 weights need more than ``available`` bytes (E0407;
    ``available_memory()`` when None). Pre: shapes inferred."""
    counts = op_params(ir)
    if not counts:
        return
    total = sum(c for c, _ in counts)
    biggest, node = max(counts, key=lambda cn: cn[0])
    need = total * BYTES_PER_PARAM
    kind = of(node.op).name
    share = Note(f"this {kind} has {_count(biggest)} of them ({_gib(biggest * BYTES_PER_PARAM)})")
    if total > max_params:
        msg = (
            f"the network has {_count(total)} parameters, more than the cap of "
            f"{_count(max_params)}; the largest layer is this {kind} "
            "(`smashc compile --max-params N` raises the cap)"
        )
        raise SmashError([error("E0406", msg, node.span, share)])
    free = available_memory() if available is None else available
    if free is not None and need > free:
        msg = (
            f"the network's weights need {_gib(need)} ({_count(total)} parameters), more than "
            f"the {_gib(free)} of memory available; the largest layer is this {kind}"
        )
        raise SmashError([error("E0407", msg, node.span, share)])
