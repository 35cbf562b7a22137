"""IR node payloads (frozen dataclasses); also re-exports the value shape type of the passes."""

from __future__ import annotations

from dataclasses import dataclass, field

from smashc import arch
from smashc.diagnostics import NOSPAN, Span
from smashc.shape import Shape as Shape  # re-exported: the passes take it from here


def _span() -> Span:
    return field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Input:
    """The network input."""

    channels: int
    height: int
    width: int
    span: Span = _span()


@dataclass(frozen=True)
class Output:
    """The network output (logits); one operand."""

    span: Span = _span()


@dataclass(frozen=True)
class OpNode:
    """One plain or SMASH op applied to its single operand.

    ``name`` is the op's readable name (``stage1_l0.conv0``); ``stage`` and ``layer`` say where
    in the network it sits (``layer`` is None outside blocks).
    """

    op: arch.Op
    name: str
    stage: str
    layer: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Concat:
    """Channel concatenation of the operands, in edge-index order (a layer's reads)."""

    name: str
    stage: str
    layer: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Add:
    """Elementwise sum of the operands (the join of a ``sum { ... }``)."""

    name: str
    stage: str
    layer: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Slice:
    """Channels ``[start, stop)`` of the operand (a write chunk, or an input bank)."""

    start: int
    stop: int
    name: str
    stage: str
    layer: str | None = None
    span: Span = _span()


@dataclass(frozen=True)
class BankVersion:
    """Version ``version`` of bank ``bank`` of block ``stage``: the sum of its operands.

    Version 0 holds the block input's slice for that bank, or has no operands (all zeros).
    A ``write`` makes the next version from (previous version, chunk); an ``overwrite`` from
    (chunk) alone. ``width`` is the bank's channel count.
    """

    stage: str
    bank: int
    version: int
    width: int
    name: str
    span: Span = _span()


Payload = Input | Output | OpNode | Concat | Add | Slice | BankVersion
