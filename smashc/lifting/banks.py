"""Banks: one resolution-constant region of the lifted graph as a block of memory banks.

The block input fills bank 0. Maximal chains of single-input ops become layers; a chain's
value that is added into another becomes a write into that value's bank (or a fresh bank
when no operand's bank is free to take it), a chain's value that is concatenated or read by
several layers becomes a bank of its own, and a lone activation on a bank nothing else reads
overwrites it (a post-activation ResNet's ReLU). ``split`` chooses where a chain is cut into
several layers: nowhere, where the owning module changes, or before every conv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smashc import arch
from smashc.lifting.ops import Prim

SPLITS = ("none", "owner", "conv")


@dataclass(frozen=True)
class LLayer:
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    mode: str
    ops: tuple[arch.Op, ...]
    ids: tuple[str | None, ...]  # the primitive each op came from (None: an added identity)


@dataclass(frozen=True)
class LBlock:
    banks: tuple[int, ...]
    layers: tuple[LLayer, ...]
    output: tuple[int, ...]


class NoBankForm(Exception):
    """The region has no memory-bank form this mapping finds (a message says why)."""


def _cut(prev: Prim, p: Prim, split: str) -> bool:
    if split == "owner":
        return prev.owner != p.owner
    if split == "conv":
        return isinstance(p.op, arch.Conv)
    return False


def block_of(
    prims: Mapping[str, Prim],
    users: Mapping[str, Sequence[str]],
    entry: str,
    nodes: Sequence[str],
    exit_: str,
    split: str = "none",
) -> LBlock:
    """The block computing ``exit_`` from ``entry`` over ``nodes`` (topological order)."""
    inside = set(nodes)
    chains: dict[str, list[str]] = {}  # chain end -> its op ids
    head: dict[str, str] = {}  # op id -> the last op of its chain so far
    for n in nodes:
        p = prims[n]
        if p.kind != "op":
            continue
        src = p.inputs[0]
        if src in inside and prims[src].kind == "op" and len(users[src]) == 1 and src != exit_:
            if not _cut(prims[src], p, split):
                ops = chains.pop(head[src])
                ops.append(n)
                chains[n] = ops
                head[n] = n
                for o in ops:
                    head[o] = n
                continue
        chains[n] = [n]
        head[n] = n

    banks: list[int] = [prims[entry].shape[0]]
    holds: list[str] = [entry]
    parts: dict[str, list[tuple[int, str]]] = {entry: [(0, entry)]}
    remaining = {v: sum(1 for u in users[v] if u in inside) for v in [entry, *nodes]}
    pending: set[str] = set()
    layers: list[LLayer] = []

    def reads(v: str) -> tuple[int, ...]:
        if v not in parts or any(holds[b] != held for b, held in parts[v]):
            raise NoBankForm(f"value {v} is read after its bank changed")
        return tuple(b for b, _ in parts[v])

    def new_bank(v: str) -> int:
        banks.append(prims[v].shape[0])
        holds.append(v)
        return len(banks) - 1

    def emit(end: str, writes: tuple[int, ...], mode: str = "write") -> None:
        ids = chains[end]
        src = prims[ids[0]].inputs[0]
        ops = tuple(prims[i].op for i in ids)
        layers.append(LLayer(reads(src), writes, mode, ops, tuple(ids)))  # type: ignore[arg-type]
        remaining[src] -= 1

    def place(end: str) -> None:
        """A chain's value that becomes a bank of its own (or overwrites its input's)."""
        src = prims[chains[end][0]].inputs[0]
        acts = all(isinstance(prims[i].op, arch.Act) for i in chains[end])
        if acts and src in parts and len(parts[src]) == 1 and remaining[src] == 1:
            ((b, _),) = parts[src]
            emit(end, (b,), "overwrite")
        else:
            b = new_bank(end)
            emit(end, (b,))
        holds[b] = end
        parts[end] = [(b, end)]

    def copy_into(v: str, target: int) -> None:
        layers.append(LLayer(reads(v), (target,), "write", (arch.Act("identity"),), (None,)))
        remaining[v] -= 1

    for n in nodes:
        p = prims[n]
        if p.kind == "op":
            if n not in chains:
                continue
            outs = users[n]
            if n != exit_ and len(outs) == 1 and prims[outs[0]].kind in ("add", "cat"):
                pending.add(n)
            else:
                place(n)
        elif p.kind == "add":
            waiting = [o for o in p.inputs if o in pending]
            target = None
            for o in p.inputs:
                if o in pending or o not in parts or len(parts[o]) != 1:
                    continue
                ((b, held),) = parts[o]
                readers = sum(1 for w in waiting if prims[chains[w][0]].inputs[0] == o)
                if holds[b] == held and remaining[o] - readers == 1:
                    target = (b, o)
                    break
            if target is None:
                b = new_bank(n)
            else:
                b = target[0]
            for o in p.inputs:
                if target is not None and o == target[1]:
                    continue
                if o in pending:
                    emit(o, (b,))
                    pending.discard(o)
                else:
                    copy_into(o, b)
            if target is not None:
                remaining[target[1]] -= 1
            holds[b] = n
            parts[n] = [(b, n)]
        elif p.kind == "cat":
            got: list[tuple[int, str]] = []
            for o in p.inputs:
                if o in pending:
                    b = new_bank(o)
                    emit(o, (b,))
                    pending.discard(o)
                    parts[o] = [(b, o)]
                reads(o)
                got += parts[o]
                remaining[o] -= 1
            parts[n] = got
        else:
            raise NoBankForm(f"{p.kind} inside a block")
    output = reads(exit_)
    if pending:
        raise NoBankForm("a value is computed but never used")
    return LBlock(tuple(banks), tuple(layers), output)


def to_arch(b: LBlock, name: str) -> arch.Block:
    layers = tuple(
        arch.Layer(f"{name}_l{i}", lay.reads, lay.writes, lay.ops, lay.mode)
        for i, lay in enumerate(b.layers)
    )
    return arch.Block(name, b.banks, layers, b.output)
