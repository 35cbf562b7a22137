"""The one-shot SMASH model: a HyperNet plus the shared weights, and per-architecture compilation.

Every sampled architecture goes through the normal compiler pipeline (network -> IR ->
training passes -> encoding + HyperNet-weight graph, ``compiler.for_oneshot``); the
HyperNet turns its encoding into the ops' 1x1 weights and the graph runs on the shared
weights (a ``GraphRunner``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smashc.compiler import (
    Encoding,
    GraphRunner,
    IRGraph,
    Network,
    SharedWeights,
    for_oneshot,
    op_weights,
)
from smashc.runtime.hypernet import HyperNet, HyperNetConfig
from smashc.runtime.sampler import SearchSpace


@dataclass(frozen=True)
class Compiled:
    """One architecture, compiled for the one-shot model."""

    arch: Network
    ir: IRGraph
    enc: Encoding
    net: GraphRunner  # forward(x, generated weights)


def compile_arch(net: Network, shared: SharedWeights) -> Compiled:
    """``net`` compiled for the one-shot model on ``shared`` (``compiler.for_oneshot``)."""
    return Compiled(net, *for_oneshot(net, shared))


class OneShot(nn.Module):
    """HyperNet + shared weights; ``forward(x, compiled, z)`` gives an architecture's logits."""

    def __init__(self, space: SearchSpace, hyper: HyperNetConfig | None = None):
        super().__init__()
        self.space = space
        self.cfg = space.encoding()
        self.shared = SharedWeights(self.cfg)
        self.hypernet = HyperNet(self.cfg, hyper)

    def compile(self, net: Network) -> Compiled:
        return compile_arch(net, self.shared)

    def generated(self, compiled: Compiled, z: torch.Tensor | None = None) -> list[torch.Tensor]:
        device = next(self.hypernet.parameters()).device
        c = compiled.enc.tensor.to(device)
        return op_weights(self.hypernet(c, z), compiled.enc)

    def forward(
        self, x: torch.Tensor, compiled: Compiled, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        compiled.net.train(self.training)  # the network's BN follows this model's mode
        return compiled.net(x, self.generated(compiled, z))
