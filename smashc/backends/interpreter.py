"""Reference executors, deliberately simple: the memory-bank semantics run eagerly (the oracle),
and a node-by-node evaluator of the IR. Both take weights from one WeightStore by op name.

The oracle reads the expanded architecture (``arch.Network``) directly: banks are tensors,
layers run in order, reads concatenate, writes add (or overwrite) bank-width chunks. It shares
no code with lowering or code generation, so agreement with them is evidence, not tautology:
each op runs through its registry entry's ``run`` and ``weights`` (smashc.ops), eager torch
functions written apart from the entry's fx lowering.
"""

from __future__ import annotations

import zlib

import torch

from smashc import arch
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice
from smashc.ops.registry import of, op_name


class WeightStore:
    """Weights by op name, drawn on first use from a generator seeded by (seed, name).

    The same name and input width give the same tensors in every executor, whatever order
    the ops run in. ``tensors`` may be pre-filled to supply weights explicitly.
    """

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float64):
        self.seed = seed
        self.dtype = dtype
        self.tensors: dict[str, dict[str, torch.Tensor]] = {}

    def _rand(self, name: str, *shape: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63
        )
        return torch.randn(*shape, generator=g, dtype=self.dtype)

    def get(self, name: str, op: arch.Op, cin: int) -> dict[str, torch.Tensor]:
        """The weights of op ``name`` on ``cin`` channels (its registry entry's ``weights``)."""
        if name in self.tensors:
            return self.tensors[name]
        w = of(op).weights(op, cin, lambda part, *shape: self._rand(f"{name}/{part}", *shape))
        self.tensors[name] = w
        return w


def apply_op(op: arch.Op, x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    """One non-Sum op on a batch ``x`` (N, C, H, W): its registry entry's eager ``run``.
    BatchNorm uses its running statistics."""
    return of(op).run(op, x, w)


def run_ops(ops, x: torch.Tensor, prefix: str, store: WeightStore) -> torch.Tensor:
    for i, op in enumerate(ops):
        name = op_name(prefix, i, op)
        if isinstance(op, arch.Sum):
            outs = [run_ops(p, x, f"{prefix}.{i}sum.p{j}", store) for j, p in enumerate(op.paths)]
            x = sum(outs[1:], outs[0])
        else:
            x = apply_op(op, x, store.get(name, op, x.shape[1]))
    return x


def run_block(block: arch.Block, x: torch.Tensor, store: WeightStore) -> torch.Tensor:
    n, _, h, w = x.shape
    banks: list[torch.Tensor] = []
    offset = 0
    for width in block.banks:
        part = x[:, offset : offset + width]
        if part.shape[1] < width:  # banks past the input start empty
            part = x.new_zeros(n, width, h, w)
        banks.append(part)
        offset += width
    for layer in block.layers:
        inp = torch.cat([banks[r] for r in layer.reads], dim=1)
        y = run_ops(layer.ops, inp, layer.name, store)
        width = block.banks[layer.writes[0]]
        chunks = torch.split(y, width, dim=1)
        for j, b in enumerate(layer.writes):
            chunk = chunks[j % len(chunks)]
            banks[b] = banks[b] + chunk if layer.mode == "write" else chunk
    return torch.cat([banks[o] for o in block.output], dim=1)


def run_network(net: arch.Network, x: torch.Tensor, store: WeightStore) -> torch.Tensor:
    """Logits (N, classes) of the memory-bank program on input ``x``."""
    for st in net.stages:
        if isinstance(st, arch.Block):
            x = run_block(st, x, store)
        else:
            x = run_ops(st.ops, x, st.name, store)
    return x.flatten(1)


def run_ir(ir: IRGraph, x: torch.Tensor, store: WeightStore) -> torch.Tensor:
    """Logits of an IRGraph evaluated node by node (needs inferred shapes for empty banks)."""
    values: dict[str, torch.Tensor] = {}
    for node in ir.nodes():
        p = ir.payload(node)
        ins = [values[o] for o in ir.operands(node)]
        match p:
            case Input():
                v = x
            case Output():
                v = ins[0].flatten(1)
            case OpNode():
                v = apply_op(p.op, ins[0], store.get(node, p.op, ins[0].shape[1]))
            case Concat():
                v = torch.cat(ins, dim=1)
            case Add():
                v = sum(ins[1:], ins[0])
            case Slice():
                v = ins[0][:, p.start : p.stop]
            case BankVersion():
                if ins:
                    v = sum(ins[1:], ins[0])
                else:
                    s = ir.shape(node)
                    v = x.new_zeros(x.shape[0], s.channels, s.height, s.width)
        values[node] = v
    out = next(n for n in ir.graph if isinstance(ir.payload(n), Output))
    return values[out]
