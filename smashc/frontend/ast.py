"""Frozen AST dataclasses of the .smash language, one per construct, each with its source span.

Spans ride along for diagnostics but take no part in equality, so that
``parse(print(ast)) == ast`` compares structure only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smashc.diagnostics import NOSPAN, Span


def _span() -> Span:
    return field(default=NOSPAN, compare=False, repr=False)


# --- expressions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Int:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class Float:
    value: float
    span: Span = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True)
class BinOp:
    """``left op right``; ``op`` is the operator as written (``+``, ``**``, ``and``, ``<=``)."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class UnaryOp:
    op: str  # "-" or "not"
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Tuple:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Arg:
    """One call argument; ``name`` is None for a positional argument."""

    name: str | None
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    """``name(args)``: an op, a macro, a template, or a builtin function such as ``min``."""

    name: str
    args: tuple[Arg, ...] = ()
    span: Span = _span()


Expr = Int | Float | Bool | Name | BinOp | UnaryOp | Tuple | Call


# --- op sequences ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sum:
    """Parallel paths from the same input whose outputs are added."""

    paths: tuple[Seq, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Seq:
    """Ops applied one after another (``a -> b -> c``)."""

    items: tuple[Call | Sum, ...]
    span: Span = _span()


# --- statements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Input:
    channels: Expr
    height: Expr
    width: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Classes:
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Stage:
    """A ``stem``, ``transition`` or ``head``: an op sequence between blocks."""

    kind: str
    seq: Seq
    span: Span = _span()


@dataclass(frozen=True)
class BankGroup:
    """``count x width``: ``count`` banks of ``width`` channels each."""

    count: Expr
    width: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Banks:
    groups: tuple[BankGroup, ...]
    span: Span = _span()


@dataclass(frozen=True)
class BankRef:
    """A bank index, or a half-open range ``start..stop`` when ``stop`` is set."""

    start: Expr
    stop: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Layer:
    """Reads banks (concatenated), applies ``seq``, adds (``write``) or assigns (``overwrite``)."""

    name: str | None
    reads: tuple[BankRef, ...]
    mode: str  # "write" or "overwrite"
    writes: tuple[BankRef, ...]
    seq: Seq
    span: Span = _span()


@dataclass(frozen=True)
class Output:
    banks: tuple[BankRef, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Repeat:
    """``repeat n { }`` (var and start None) or ``repeat i in a..b { }``."""

    var: str | None
    start: Expr | None
    stop: Expr
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Block:
    """An inline block: banks, layers and an optional output selection."""

    name: str | None
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class BlockUse:
    """``block name = template(args)``."""

    name: str | None
    template: str
    args: tuple[Arg, ...] = ()
    span: Span = _span()


Stmt = Let | Input | Classes | Stage | Banks | Layer | Output | Repeat | If | Block | BlockUse


# --- top level -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """``import "path.smash"`` (``is_path``) or ``import std`` (a bundled library)."""

    target: str
    is_path: bool
    span: Span = _span()


@dataclass(frozen=True)
class Network:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Template:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Macro:
    name: str
    params: tuple[Param, ...]
    seq: Seq
    span: Span = _span()


Item = Import | Network | Template | Macro


@dataclass(frozen=True)
class Comment:
    """A ``# ...`` comment; kept only so that ``smashc fmt`` does not lose it."""

    text: str
    span: Span = _span()


@dataclass(frozen=True)
class Module:
    """One parsed ``.smash`` file."""

    items: tuple[Item, ...]
    span: Span = _span()
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
