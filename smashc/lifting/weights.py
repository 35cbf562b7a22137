"""Weights: a lifted module's parameters and buffers keyed like the compiled package's.

The free-weight fx module names each op's submodule after its IR node id
(``backends.fx.py_name``: ``stage1_l0.0conv`` -> ``stage1_l0_0conv``); node ids follow the
lowering's rule (``ops.registry.op_name``; a sum's paths ``<op>.p<j>``), so walking the
network's stages beside the primitive each op came from gives every tensor its key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from smashc import arch
from smashc.backends.fx import py_name
from smashc.lifting.ops import Prim
from smashc.ops.registry import op_name


def _walk(prefix: str, ops: tuple, ids: tuple, out: list[tuple[str, str]]) -> None:
    for i, (op, src) in enumerate(zip(ops, ids, strict=True)):
        node = op_name(prefix, i, op)
        if isinstance(op, arch.Sum):
            for j, (path, path_ids) in enumerate(zip(op.paths, src, strict=True)):
                _walk(f"{node}.p{j}", path, path_ids, out)
        elif src is not None:
            out.append((node, src))


def transfer(
    module: nn.Module, net: arch.Network, parts: Sequence, prims: Mapping[str, Prim]
) -> dict[str, torch.Tensor]:
    """The state dict of ``net``'s compiled module holding ``module``'s weights; ``parts``
    are the lifted stages (op runs and blocks, layers in printed order), one per stage."""
    pairs: list[tuple[str, str]] = []
    for stage, part in zip(net.stages, parts, strict=True):
        if isinstance(stage, arch.Block):
            for lay, mine in zip(stage.layers, part.block.layers, strict=True):
                _walk(lay.name, lay.ops, mine.ids, pairs)
        else:
            _walk(stage.name, stage.ops, part.ids, pairs)
    state: dict[str, torch.Tensor] = {}
    for node, src in pairs:
        prim = prims[src]
        if prim.module is None:
            continue
        for key, t in module.get_submodule(prim.module).state_dict().items():
            state[f"{py_name(node)}.{key}"] = t.detach().clone()
    return state
