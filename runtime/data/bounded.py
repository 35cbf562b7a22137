"""Reading dataset files within bounds: a gzip expanded no further than the caller expects,
a pickle refused before loading when what it builds would unfold beyond a bound.

A few kilobytes of hostile input can ask for gigabytes: a gzip of zeros that expands
a thousandfold, or a pickle whose lists share one another (a DAG of ``[x, x]``), cheap
to load but exponential to walk, hash, print or turn into an array. The dataset readers
take their bytes through here, so their memory and time stay in proportion to the data
the files are meant to hold.
"""

from __future__ import annotations

import io
import pickletools
import zlib

# A pickle may build at most this many objects counted as walked (a shared object counts
# each time it is referred to): a CIFAR-100 file builds some 150,000.
MAX_PICKLE_OBJECTS = 10_000_000

_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}


class TooLarge(ValueError):
    """Input that would expand beyond its bound; the message says how."""


def gunzip(raw: bytes, limit: int, prefix: bool = False) -> bytes:
    """The gzip ``raw`` (one or more members) expanded to at most ``limit`` bytes. With
    ``prefix`` only its first ``limit`` bytes; else ``TooLarge`` when it expands further.
    Raises ``zlib.error`` or ``EOFError`` when it is not a whole gzip."""
    out = bytearray()
    rest = raw
    while rest:
        d = zlib.decompressobj(wbits=31)
        out += d.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            if prefix:
                return bytes(out[:limit])
            raise TooLarge(f"expands to more than {limit:,} bytes")
        if not d.eof:
            raise EOFError("the gzip stream ends before its end marker")
        rest = d.unused_data
    return bytes(out)


def check_pickle(data: bytes) -> None:
    """``TooLarge`` when the pickle ``data`` builds more than ``MAX_PICKLE_OBJECTS`` objects
    counted as walked; ``ValueError`` when it is not a pickle. Read opcode by opcode without
    building anything: each object counts one plus what it is built from (a list, dict or
    set grows as items are added to it), a memo reference as much as the object it names."""
    stack: list[list[int] | None] = []  # a [count] cell per object, shared by its references
    memo: dict[int, list[int]] = {}
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in _MEMO_PUT:
            memo[len(memo) if op.name == "MEMOIZE" else arg] = stack[-1] or [1]
            continue
        if op.name in _MEMO_GET:
            stack.append(memo.get(arg, [1]))
            continue
        weight = 0
        before = list(op.stack_before)
        if pickletools.markobject in before:  # the items since the MARK, then those before it
            while stack and stack[-1] is not None:
                weight += (stack.pop() or [0])[0]
            if stack:
                stack.pop()
            before = before[: before.index(pickletools.markobject)]
        if op.name in _IN_PLACE:  # items added to the object below them, which stays
            for _ in before[1:]:
                weight += (stack.pop() or [0])[0] if stack else 0
            cell = stack[-1] if stack and stack[-1] is not None else [1]
            cell[0] += weight
        else:
            for _ in before:
                weight += (stack.pop() or [0])[0] if stack else 0
            cell = [1 + weight]
            stack += [None if a is pickletools.markobject else cell for a in op.stack_after]
        if cell[0] > MAX_PICKLE_OBJECTS:
            raise TooLarge(f"it builds more than {MAX_PICKLE_OBJECTS:,} objects")
