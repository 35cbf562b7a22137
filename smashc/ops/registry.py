"""The op registry: one ``OpDef`` per .smash op, looked up by DSL name or by payload.

Every stage that needs to know what an op does asks its entry here instead of matching on
op classes: the front end (arguments, construction, channel checks, flattening back to
.smash), ``infer-shapes``, the report's counts, the free-weights fx backend, diagram labels
and the reference interpreter. ``sum { ... }`` is structure, not an op, and has no entry.

This module imports neither torch nor any backend: an entry's lowering and oracle functions
import torch when they run, so that checking or formatting a .smash file never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from smashc import arch
from smashc.diagnostics import Diagnostic, DiagnosticBag, Span

if TYPE_CHECKING:
    import torch
    from torch import fx, nn

    from smashc.frontend import ast
    from smashc.shape import Shape

REQUIRED = object()  # the default of a parameter that must be given


@dataclass(frozen=True)
class Param:
    """One argument of an op: name, kind of value, default (``REQUIRED`` if none).

    ``kind`` names how the front end checks and converts the value: int | pos | nonneg |
    pair | pospair | nonnegpair | odd | float | posfloat (above 0) | unitfloat (0 to 1) |
    bool | act | sconv (``smashc.frontend.expand`` words each kind's error message). An int
    default of a pair kind means ``(d, d)``; a default of None means "derived" (the entry's
    ``build`` computes it).
    """

    name: str
    kind: str
    default: object = None


class ArgError(Exception):
    """Raised by an entry's ``build`` for arguments that are valid one by one but not together."""

    def __init__(self, code: str, message: str, span: Span):
        super().__init__(message)
        self.code = code
        self.message = message
        self.span = span


class Emitter(Protocol):
    """What an entry's fx lowering may do to the graph being built (``smashc.backends.fx``)."""

    feeds_output: bool  # whether the op's value is the network output

    def module(self, name: str, mod: nn.Module, x: fx.Node) -> fx.Node: ...
    def call(self, fn: Callable, args: list, name: str) -> fx.Node: ...
    def method(self, method: str, args: list, name: str) -> fx.Node: ...
    def act(self, kind: str, slope: float, x: fx.Node, name: str) -> fx.Node: ...
    def grid(self, op: arch.SmashOp, b: fx.Node, name: str, conv: Callable) -> fx.Node: ...
    def keep_flat(self, y: fx.Node) -> None: ...


class OnnxEmitter(Protocol):
    """What an entry's ONNX lowering may do to the graph being built (``smashc.backends.onnx``).

    Values are ONNX value names (strings)."""

    feeds_output: bool  # whether the op's value is the network output

    def node(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str: ...
    def param(self, module: str, key: str) -> str: ...
    def ints(self, name: str, values: list[int]) -> str: ...
    def floats(self, name: str, values: list[float]) -> str: ...
    def act(self, kind: str, slope: float, x: str, name: str) -> str: ...
    def keep_flat(self, y: str) -> None: ...


Args = Mapping[str, Any]
Draw = Callable[..., "torch.Tensor"]  # draw(part, *shape): seeded standard-normal weights
Weights = Mapping[str, "torch.Tensor"]


@dataclass(frozen=True)
class OpDef:
    """Everything the compiler knows about one op.

    Attributes:
        name: the DSL name (``conv``), also the kind suffix of IR node ids (``stem.0conv``).
        payload: the frozen dataclass the op expands to (an ``smashc.arch`` class for the
            built-in ops).
        params: the arguments, in positional order.
        build: coerced arguments (every ``params`` name, defaults filled in) and the call's
            span to the payload; raises ArgError for inconsistent arguments.
        args: the shortest keyword arguments that ``build`` turns back into the payload
            (defaults left out); ``smashc.frontend.flatten`` and the IR dump use them.
        channels: output channels on ``cin`` input channels, or None with an error in the
            bag. ``cin`` None means unknown after an earlier error: skip checks that need it,
            and return the op's own width if it sets one.
        shape: the output shape on input shape ``x``, or None with errors appended.
        cost: (parameters, MACs) given input and output shapes.
        fx: appends the op to an fx graph: ``fx(emitter, op, x, cin, name)`` -> its value.
        weights: the oracle's weights for the op on ``cin`` channels, from ``draw``.
        run: the reference interpreter: ``run(op, x, weights)`` on an (N, C, H, W) batch,
            eager torch, written apart from ``fx`` so that their agreement is evidence.
        label: a short diagram label; None uses the op's .smash text.
        onnx: appends the op to an ONNX graph: ``onnx(emitter, op, x, cin, name)`` -> its
            value's name, reading the weights the fx lowering gave submodule ``name`` (or
            ``name_<key>``); None: the op has no ONNX lowering (``--emit onnx`` says so).
        selector: for a payload class shared by several entries, ``(field, value)``: the
            payload field whose value picks this entry (``Act.kind == "relu"``).
        example: an op sequence using the op, valid after a conv to 8 channels on a 9x9 map;
            tests/test_ops.py compiles and runs it for every entry.
    """

    name: str
    payload: type
    params: tuple[Param, ...]
    build: Callable[[Args, Span], Any]
    args: Callable[[Any], tuple[ast.Arg, ...]]
    channels: Callable[[Any, int | None, DiagnosticBag], int | None]
    shape: Callable[[Any, Shape, list[Diagnostic]], Shape | None]
    cost: Callable[[Any, Shape, Shape], tuple[int, int]]
    fx: Callable[[Emitter, Any, fx.Node, int, str], fx.Node]
    weights: Callable[[Any, int, Draw], dict[str, torch.Tensor]]
    run: Callable[[Any, torch.Tensor, Weights], torch.Tensor]
    label: Callable[[Any], str] | None = None
    onnx: Callable[[OnnxEmitter, Any, str, int, str], str] | None = None
    selector: tuple[str, object] | None = None
    example: str = ""


_BY_NAME: dict[str, OpDef] = {}
# payload class -> its entry, or (field, {value: entry}) for classes shared by several entries
_BY_PAYLOAD: dict[type, OpDef | tuple[str, dict[object, OpDef]]] = {}


def register(entry: OpDef) -> OpDef:
    """Adds ``entry``; its name, and its payload class (with its selector), must be new."""
    if entry.name in _BY_NAME:
        raise ValueError(f"op {entry.name!r} registered twice")
    slot = _BY_PAYLOAD.get(entry.payload)
    if entry.selector is None:
        if slot is not None:
            raise ValueError(f"payload {entry.payload.__name__} already has an op")
        _BY_PAYLOAD[entry.payload] = entry
    else:
        field, value = entry.selector
        if slot is None:
            slot = _BY_PAYLOAD[entry.payload] = (field, {})
        if isinstance(slot, OpDef) or slot[0] != field or value in slot[1]:
            raise ValueError(f"payload {entry.payload.__name__} cannot also select {entry.name!r}")
        slot[1][value] = entry
    _BY_NAME[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Removes the op ``name`` (tests that register a toy op clean up with this)."""
    entry = _BY_NAME.pop(name)
    if entry.selector is None:
        del _BY_PAYLOAD[entry.payload]
        return
    _, table = _BY_PAYLOAD[entry.payload]  # type: ignore[misc]
    del table[entry.selector[1]]
    if not table:
        del _BY_PAYLOAD[entry.payload]


def lookup(name: str) -> OpDef | None:
    """The entry of DSL name ``name``, or None."""
    return _BY_NAME.get(name)


def names() -> Iterator[str]:
    """DSL names of every op, in registration order."""
    return iter(_BY_NAME)


def entries() -> tuple[OpDef, ...]:
    return tuple(_BY_NAME.values())


def of(op: object) -> OpDef:
    """The entry of an expanded op (raises TypeError for a Sum or a foreign object)."""
    slot = _BY_PAYLOAD.get(type(op))
    if slot is None:
        raise TypeError(f"not a registered op: {op!r}")
    if slot.__class__ is OpDef:
        return slot  # type: ignore[return-value]
    field, table = slot  # type: ignore[misc]
    return table[getattr(op, field)]


def op_kind(op: object) -> str:
    """Short name of an op's kind, used in node names (``conv``, ``bn``, ``relu``, ``sum``)."""
    if type(op) is arch.Sum:
        return "sum"
    return of(op).name


def op_name(prefix: str, index: int, op: object) -> str:
    """Name of the ``index``-th op of a sequence named ``prefix`` (IR node ids use it too)."""
    return f"{prefix}.{index}{op_kind(op)}"
