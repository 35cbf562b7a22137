"""Runs an fx.Graph without generating Python code for it: the one-shot model's executor.

``fx.GraphModule`` turns its graph into Python source, compiles and executes it: 15 ms for
a late SMASH-space network (about 360 nodes), two thirds of the fx stage and a third of
compiling an architecture. The training loop compiles a new architecture every step and
runs it once (scoring: once per validation batch), so nothing amortises that cost.
``GraphRunner`` resolves each node's operands to slots once (about 2 ms) and then calls the
nodes' functions in graph order, as the generated code would; values are released after
their last use, as the generated code does. Same graph, same calls, same results: the
tests compare it with the GraphModule of the same graph.

Only what the backends emit is supported: placeholders, ``get_attr`` (read at call time,
so ``training`` and attributes set later are seen), ``call_function`` and ``call_module``
with node operands at the top level of ``args`` or inside a list or tuple there, and one
output.
"""

from __future__ import annotations

import operator
from typing import Any

from torch import fx, nn


class GraphRunner(nn.Module):
    """``forward(*inputs)`` of ``graph`` with ``get_attr`` targets looked up on ``root``'s
    attributes, which this module takes over (as a GraphModule does)."""

    def __init__(self, root: nn.Module, graph: fx.Graph):
        super().__init__()
        self.graph = graph
        last_use: dict[fx.Node, fx.Node] = {}
        for node in graph.nodes:
            for used in node.all_input_nodes:
                last_use[used] = node
        slots: dict[fx.Node, int] = {}  # slot 0 holds this module, for get_attr
        plan: list[tuple] = []
        self._inputs: list[int] = []
        self._output: int | None = None
        for node in graph.nodes:
            slots[node] = len(slots) + 1
            if node.op == "placeholder":
                self._inputs.append(slots[node])
            elif node.op == "get_attr":
                self._take_over(root, node.target)
                plan.append((operator.attrgetter(node.target), (None,), ((0, 0),), (), slots[node]))
            elif node.op in ("call_function", "call_module"):
                if node.kwargs:
                    raise TypeError(f"node {node.name}: keyword arguments are not supported")
                fn = node.target
                if node.op == "call_module":
                    self._take_over(root, fn)
                    fn = self.get_submodule(fn)
                args, refs, lists = list(node.args), [], []
                for i, a in enumerate(args):
                    if isinstance(a, fx.Node):
                        refs.append((i, slots[a]))
                    elif isinstance(a, list | tuple) and any(isinstance(e, fx.Node) for e in a):
                        lists.append((i, type(a), tuple(_slot_or_const(e, slots) for e in a)))
                plan.append((fn, tuple(args), tuple(refs), tuple(lists), slots[node]))
            elif node.op == "output":
                self._output = slots[node.args[0]]
            else:
                raise TypeError(f"node {node.name}: {node.op} nodes are not supported")
        # a slot is cleared after the last node that reads it (not the output value)
        clear: dict[int, list[int]] = {}
        for used, user in last_use.items():
            if user.op != "output" and used.op != "placeholder":
                clear.setdefault(slots[user], []).append(slots[used])
        self._plan = tuple((*step, tuple(clear.get(step[-1], ()))) for step in plan)
        self._slots = len(slots) + 1

    def _take_over(self, root: nn.Module, target: str) -> None:
        head = target.split(".")[0]
        if head != "training" and head not in self._modules and head not in vars(self):
            setattr(self, head, getattr(root, head))

    def forward(self, *inputs: Any) -> Any:
        env: list[Any] = [None] * self._slots
        env[0] = self
        for slot, value in zip(self._inputs, inputs, strict=True):
            env[slot] = value
        for fn, args, refs, lists, out, clear in self._plan:
            if refs or lists:
                args = list(args)
                for i, s in refs:
                    args[i] = env[s]
                for i, kind, items in lists:
                    args[i] = kind(env[e] if isinstance(e, _Slot) else e for e in items)
            env[out] = fn(*args)
            for s in clear:
                env[s] = None
        return env[self._output]


class _Slot(int):
    """A list element that is the value in this slot, not a constant."""


def _slot_or_const(e, slots: dict[fx.Node, int]):
    return _Slot(slots[e]) if isinstance(e, fx.Node) else e
