"""ONNX backend: an ONNX model built from the IR, with the weights of a free-weight fx module.

Each op is emitted by its registry entry's ``onnx`` function through the ``_Builder``'s
methods (``smashc.ops.registry.OnnxEmitter``); structure nodes (concat, add, bank versions,
slices) are emitted here. Weights are read from a state dict in the layout of
``backends.fx.to_fx`` (parameters of submodule ``py_name(node id)``), so a trained, exported
or lifted module's ``state_dict()`` gives the same function in ONNX. Inference mode: batch
norm uses its running statistics. The batch axis is symbolic (``batch``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from smashc.backends.fx import py_name
from smashc.diagnostics import SmashError, error
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice
from smashc.ops.registry import of

OPSET = 17


class _Builder:
    def __init__(self, ir: IRGraph, state: Mapping[str, torch.Tensor]):
        self.ir = ir
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.flat: set[str] = set()
        self.feeds_output = False

    # --- the OnnxEmitter interface that registry entries lower through
    def node(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def param(self, module: str, key: str) -> str:
        name = f"{module}.{key}"
        if name not in self.inits:
            tensor = self.state[name].detach().cpu().to(torch.float32).numpy()
            self.inits[name] = numpy_helper.from_array(tensor, name)
        return name

    def ints(self, name: str, values: list[int]) -> str:
        self.inits[name] = numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)
        return name

    def floats(self, name: str, values: list[float]) -> str:
        self.inits[name] = numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)
        return name

    def act(self, kind: str, slope: float, x: str, name: str) -> str:
        if kind == "identity":
            return x
        if kind == "relu":
            return self.node("Relu", [x], name)
        if kind == "relu6":
            low, high = self.floats(f"{name}_min", [0.0]), self.floats(f"{name}_max", [6.0])
            return self.node("Clip", [x, f"{low}", f"{high}"], name)
        return self.node("LeakyRelu", [x], name, alpha=slope)

    def keep_flat(self, y: str) -> None:
        self.flat.add(y)

    # --- structure
    def zeros(self, name: str, channels: int, height: int, width: int) -> str:
        """An all-zero (N, C, H, W) bank: its batch size is the input's."""
        n = self.node("Shape", ["x"], f"{name}_n", start=0, end=1)
        dims = self.ints(f"{name}_chw", [channels, height, width])
        shape = self.node("Concat", [n, dims], f"{name}_shape", axis=0)
        zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
        return self.node("ConstantOfShape", [shape], name, value=zero)

    def build(self) -> onnx.ModelProto:
        ir = self.ir
        env: dict[str, str] = {}
        out = ""
        for n in ir.nodes():
            p = ir.payload(n)
            ins = [env[o] for o in ir.operands(n)]
            name = py_name(n)
            match p:
                case Input():
                    v = "x"
                case Output():
                    out = ins[0]
                    if out not in self.flat:
                        out = self.node("Flatten", [out], "logits", axis=1)
                    continue
                case OpNode():
                    entry = of(p.op)
                    if entry.onnx is None:
                        msg = f"op '{entry.name}' has no ONNX lowering"
                        raise SmashError([error("E0810", msg, p.span)])
                    cin = ir.shape(ir.operands(n)[0]).channels
                    self.feeds_output = any(isinstance(ir.payload(u), Output) for u in ir.users(n))
                    v = entry.onnx(self, p.op, ins[0], cin, name)
                case Concat() if len(ins) == 1:
                    v = ins[0]
                case Concat():
                    v = self.node("Concat", ins, name, axis=1)
                case Add() | BankVersion() if len(ins) >= 2:
                    v = ins[0]
                    for k, other in enumerate(ins[1:]):
                        last = k == len(ins) - 2
                        v = self.node("Add", [v, other], name if last else f"{name}_{k}")
                case Add() | BankVersion() if len(ins) == 1:
                    v = ins[0]
                case BankVersion():
                    s = ir.shape(n)
                    v = self.zeros(name, s.channels, s.height, s.width)
                case Slice():
                    starts, ends = (
                        self.ints(f"{name}_start", [p.start]),
                        self.ints(f"{name}_stop", [p.stop]),
                    )
                    v = self.node(
                        "Slice", [ins[0], starts, ends, self.ints(f"{name}_axes", [1])], name
                    )
            env[n] = v
        c, h, w = ir.input
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, h, w])
        y = helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", ir.classes])
        graph = helper.make_graph(self.nodes, ir.name, [x], [y], list(self.inits.values()))
        model = helper.make_model(
            graph, producer_name="smashc", opset_imports=[helper.make_opsetid("", OPSET)]
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def to_onnx(ir: IRGraph, state: Mapping[str, torch.Tensor]) -> onnx.ModelProto:
    """The ONNX model of ``ir`` with the weights in ``state`` (a ``to_fx(ir)`` module's
    ``state_dict()``: free, trained or lifted), checked with ``onnx.checker``.

    Pre: shapes inferred. Input ``x`` (batch, C, H, W), output (batch, classes), float32.
    Raises SmashError (E0810) for an op without an ONNX lowering.
    """
    if ir.shapes is None:
        raise ValueError("to_onnx needs inferred shapes; run the default pipeline first")
    return _Builder(ir, state).build()
