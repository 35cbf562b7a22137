"""The one-shot SMASH model: a HyperNet plus the shared weights, and per-architecture compilation.

Every sampled architecture goes through the normal compiler pipeline (AST -> expansion ->
IR -> passes -> encoding + fx); the HyperNet turns its encoding into the ops' 1x1 weights
and the fx graph runs on the shared weights (``fxrun.GraphRunner``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smashc.backends.encoding import Encoding, encode, op_weights
from smashc.backends.fxrun import GraphRunner
from smashc.backends.hyperfx import SharedWeights, hyper_graph
from smashc.frontend import ast
from smashc.frontend.expand import expand
from smashc.frontend.loader import Program
from smashc.ir import IRGraph, lower
from smashc.passes import TRAINING_PIPELINE, run_pipeline
from smashc.runtime.hypernet import HyperNet, HyperNetConfig
from smashc.runtime.sampler import SearchSpace


@dataclass(frozen=True)
class Compiled:
    """One architecture, compiled for the one-shot model."""

    module: ast.Module  # its .smash program
    ir: IRGraph
    enc: Encoding
    net: GraphRunner  # forward(x, generated weights)


def compile_arch(module: ast.Module, shared: SharedWeights) -> Compiled:
    """AST -> IR -> passes -> encoding -> fx graph (HyperNet-weight mode on ``shared``),
    run by a GraphRunner (no code generation: see ``smashc.backends.fxrun``)."""
    ir = run_pipeline(lower(expand(Program(module, "<sampled>"))), TRAINING_PIPELINE).ir
    enc = encode(ir, shared.cfg)
    return Compiled(module, ir, enc, GraphRunner(*hyper_graph(ir, shared, enc)))


class OneShot(nn.Module):
    """HyperNet + shared weights; ``forward(x, compiled, z)`` gives an architecture's logits."""

    def __init__(self, space: SearchSpace, hyper: HyperNetConfig | None = None):
        super().__init__()
        self.space = space
        self.cfg = space.encoding()
        self.shared = SharedWeights(self.cfg)
        self.hypernet = HyperNet(self.cfg, hyper)

    def compile(self, module: ast.Module) -> Compiled:
        return compile_arch(module, self.shared)

    def generated(self, compiled: Compiled, z: torch.Tensor | None = None) -> list[torch.Tensor]:
        device = next(self.hypernet.parameters()).device
        c = compiled.enc.tensor.to(device)
        return op_weights(self.hypernet(c, z), compiled.enc)

    def forward(
        self, x: torch.Tensor, compiled: Compiled, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        compiled.net.train(self.training)  # the network's BN follows this model's mode
        return compiled.net(x, self.generated(compiled, z))
