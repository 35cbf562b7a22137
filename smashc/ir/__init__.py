"""The graph IR: payload types, the IRGraph wrapper, lowering from arch, and the text dump."""

from smashc.ir.dump import dump
from smashc.ir.graph import IRGraph, Pattern, StageInfo
from smashc.ir.lower import lower
from smashc.ir.nodes import Shape

__all__ = ["IRGraph", "Pattern", "Shape", "StageInfo", "dump", "lower"]
