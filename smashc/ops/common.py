"""Building blocks shared by op entries: default rules, window arithmetic, group checks, AST."""

from __future__ import annotations

from typing import Any

from smashc import arch
from smashc.diagnostics import Diagnostic, DiagnosticBag, Span, error
from smashc.frontend import ast
from smashc.shape import Shape

# --- default rules of ops that keep their input's channels and shape, and own no weights


def same_channels(op: Any, cin: int | None, bag: DiagnosticBag) -> int | None:
    return cin


def same_shape(op: Any, x: Shape, errs: list[Diagnostic]) -> Shape | None:
    return x


def no_cost(op: Any, x: Shape, y: Shape) -> tuple[int, int]:
    return 0, 0


def no_weights(op: Any, cin: int, draw) -> dict:
    return {}


def no_args(op: Any) -> tuple[ast.Arg, ...]:
    return ()


# --- checks


def window(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a sliding window over ``size`` positions."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def spatial(
    x: Shape,
    kernel: arch.Pair,
    stride: arch.Pair,
    padding: arch.Pair,
    dilation: arch.Pair,
    what: str,
    errs: list[Diagnostic],
    span: Span,
) -> tuple[int, int] | None:
    """Output (height, width) of a windowed op, or None with E0401 if the window does not fit."""
    hw = []
    for axis, size in enumerate((x.height, x.width)):
        k, s, p, d = kernel[axis], stride[axis], padding[axis], dilation[axis]
        n = window(size, k, s, p, d)
        if n < 1:
            extent = d * (k - 1) + 1
            msg = (
                f"{what} with kernel {k} and dilation {d} spans {extent} px but the input is "
                f"{size} px with padding {p}"
            )
            errs.append(error("E0401", msg, span))
            return None
        hw.append(n)
    return hw[0], hw[1]


def groups_ok(bag: DiagnosticBag, what: str, groups: int, cin: int, cout: int, span: Span) -> bool:
    """Whether ``groups`` divides both channel counts; E0203 naming the side that fails if not."""
    if cin % groups == 0 and cout % groups == 0:
        return True
    bad = cin if cin % groups else cout
    side = "input" if cin % groups else "output"
    bag.error(
        "E0203",
        f"{what} has groups={groups}, which does not divide its {bad} {side} channels",
        span,
    )
    return False


def conv_cost(cin: int, cout: int, k: arch.Pair, groups: int, out: Shape) -> tuple[int, int]:
    """(weights, MACs) of a bias-free conv producing ``out``."""
    weights = cout * (cin // groups) * k[0] * k[1]
    return weights, weights * out.height * out.width


# --- AST of an op's arguments (for flattening back to .smash)


def int_expr(v: int) -> ast.Expr:
    return ast.Int(v) if v >= 0 else ast.UnaryOp("-", ast.Int(-v))


def pair_expr(p: arch.Pair) -> ast.Expr:
    return int_expr(p[0]) if p[0] == p[1] else ast.Tuple((int_expr(p[0]), int_expr(p[1])))


def float_expr(v: float) -> ast.Expr:
    return ast.Float(v) if v >= 0 else ast.UnaryOp("-", ast.Float(-v))


def kw(name: str, value: ast.Expr) -> ast.Arg:
    return ast.Arg(name, value)
