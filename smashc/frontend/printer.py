"""AST to canonical .smash text (`smashc fmt`); parsing the output gives back an equal AST."""

from __future__ import annotations

from smashc.diagnostics import Span
from smashc.frontend import ast

INDENT = "    "
LINE_LIMIT = 100

# Binding strength of each expression form; a child printed below its slot's level gets parentheses.
_LEVEL = {
    "or": 1,
    "and": 2,
    "not": 3,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "neg": 7,
    "**": 8,
}
_ATOM = 9


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.BinOp):
        return _LEVEL[e.op]
    if isinstance(e, ast.UnaryOp):
        return _LEVEL["neg" if e.op == "-" else "not"]
    return _ATOM


def _wrap(e: ast.Expr, need: int) -> str:
    text = expr(e)
    return f"({text})" if _level(e) < need else text


def expr(e: ast.Expr) -> str:
    """One expression with the fewest parentheses that keep its tree."""
    match e:
        case ast.Int(value):
            return str(value)
        case ast.Float(value):
            return repr(value)
        case ast.Bool(value):
            return "true" if value else "false"
        case ast.Name(id):
            return id
        case ast.Tuple(items):
            if len(items) == 1:
                return f"({expr(items[0])},)"
            return "(" + ", ".join(expr(i) for i in items) + ")"
        case ast.Call(name, args):
            return f"{name}({_args(args)})"
        case ast.UnaryOp("-", operand):
            return "-" + _wrap(operand, _LEVEL["neg"])
        case ast.UnaryOp("not", operand):
            return "not " + _wrap(operand, _LEVEL["not"])
        case ast.BinOp("**", left, right):
            return f"{_wrap(left, _ATOM)} ** {_wrap(right, _LEVEL['neg'])}"
        case ast.BinOp(op, left, right) if _LEVEL[op] == 4:
            return f"{_wrap(left, 5)} {op} {_wrap(right, 5)}"
        case ast.BinOp(op, left, right):
            lvl = _LEVEL[op]
            return f"{_wrap(left, lvl)} {op} {_wrap(right, lvl + 1)}"
    raise TypeError(f"not an expression: {e!r}")


def _args(args: tuple[ast.Arg, ...]) -> str:
    return ", ".join(expr(a.value) if a.name is None else f"{a.name}={expr(a.value)}" for a in args)


def op_text(item: ast.Call | ast.Sum) -> str:
    """One op of a sequence as .smash text."""
    return _op(item)


def _op(item: ast.Call | ast.Sum) -> str:
    if isinstance(item, ast.Sum):
        return "sum { " + " | ".join(seq(p) for p in item.paths) + " }"
    return item.name if not item.args else f"{item.name}({_args(item.args)})"


def seq(s: ast.Seq) -> str:
    return " -> ".join(_op(i) for i in s.items)


def _op_lines(item: ast.Call | ast.Sum, depth: int, notes: _Printer | None = None) -> list[str]:
    """One op; a sum too long for one line, or with comments inside, gets one path per line
    (``| `` before each but the first). Lines after the first carry their own indentation;
    the first gets none."""
    one = _op(item)
    if isinstance(item, ast.Call):
        return [one]
    inside = notes is not None and notes.pending(item.span.end_line)
    if len(INDENT * depth + one) <= LINE_LIMIT and not inside:
        return [one]
    lines = ["sum {"]
    for k, path in enumerate(item.paths):
        if notes is not None and path.items:
            lines += [INDENT * (depth + 1) + c for c in notes.take(path.items[0].span.line)]
        lines += _seq_lines("" if k == 0 else "| ", path, "", depth + 1, notes=notes)
        if notes is not None and path.items:
            lines[-1] += "".join("  " + c for c in notes.take_on(path.items[-1].span.end_line))
    return lines + [INDENT * depth + "}"]


def _seq_lines(
    head: str,
    s: ast.Seq,
    tail: str,
    depth: int,
    block: bool = False,
    notes: _Printer | None = None,
) -> list[str]:
    """``head seq tail`` on one line or, when that is too long or comments sit between its
    ops, one op per line, each comment on its own line before the op it precedes (or after
    the op that shares its line).

    With ``block`` (stages), a long sequence moves inside the braces:
    ``head`` and ``tail`` are then the opening and closing braces' lines.
    """
    pad = INDENT * depth
    one = f"{pad}{head}{seq(s)}{tail}"
    last = s.items[-1].span.line
    inside = notes is not None and last > 0 and notes.pending(last)
    if len(one) <= LINE_LIMIT and not inside:
        return [one]
    if block:
        lines = [f"{pad}{head.rstrip()}"]
        if notes is not None and s.items[0].span.line > 0:
            lines += [INDENT * (depth + 1) + c for c in notes.take(s.items[0].span.line)]
        lines += _seq_lines("", s, "", depth + 1, notes=notes)
        return lines + [f"{pad}{tail.strip()}"]
    inner = depth + 1
    first = _op_lines(s.items[0], depth, notes)
    lines = [f"{pad}{head}{first[0]}", *first[1:]]
    for prev, item in zip(s.items, s.items[1:], strict=False):
        if notes is not None and item.span.line > 0:
            lines[-1] += "".join("  " + c for c in notes.take_on(prev.span.end_line))
            lines += [INDENT * inner + c for c in notes.take(item.span.line)]
        more = _op_lines(item, inner, notes)
        lines += [f"{INDENT * inner}-> {more[0]}", *more[1:]]
    lines[-1] += tail
    return lines


def _banks(refs: tuple[ast.BankRef, ...]) -> str:
    return ", ".join(
        expr(r.start) if r.stop is None else f"{expr(r.start)}..{expr(r.stop)}" for r in refs
    )


def _params(params: tuple[ast.Param, ...]) -> str:
    if not params:
        return ""
    parts = [p.name if p.default is None else f"{p.name}={expr(p.default)}" for p in params]
    return "(" + ", ".join(parts) + ")"


class _Printer:
    """Prints statements, re-attaching the file's comments to the statements they precede."""

    def __init__(self, comments: tuple[ast.Comment, ...]):
        self.comments = sorted(comments, key=lambda c: (c.span.line, c.span.column))

    def take(self, before_line: int) -> list[str]:
        """The comments not printed yet that start before ``before_line``."""
        taken = []
        while self.comments and self.comments[0].span.line < before_line:
            taken.append(self.comments.pop(0).text)
        return taken

    def take_on(self, line: int) -> list[str]:
        """The comments not printed yet that start on ``line`` (trailing it)."""
        taken = []
        while self.comments and self.comments[0].span.line == line:
            taken.append(self.comments.pop(0).text)
        return taken

    def pending(self, before_line: int) -> bool:
        return bool(self.comments) and self.comments[0].span.line < before_line

    def _with_comments(self, lines: list[str], node_span: Span) -> list[str]:
        if node_span.line <= 0:
            return lines
        trailing = self.take(node_span.end_line + 1)
        if trailing:
            lines = lines[:-1] + [lines[-1] + "  " + "  ".join(trailing)]
        return lines

    def _leading(self, node_span: Span, depth: int) -> list[str]:
        if node_span.line <= 0:
            return []
        return [INDENT * depth + c for c in self.take(node_span.line)]

    def body(self, head: str, body: tuple[ast.Stmt, ...], depth: int, end: Span) -> list[str]:
        pad = INDENT * depth
        lines = [f"{pad}{head} {{"]
        for s in body:
            lines += self.stmt(s, depth + 1)
        if end.line > 0:
            lines += [INDENT * (depth + 1) + c for c in self.take(end.end_line)]
        if len(lines) == 1:
            return [f"{pad}{head} {{}}"]
        return lines + [f"{pad}}}"]

    def stmt(self, s: ast.Stmt, depth: int = 0) -> list[str]:
        lead = self._leading(s.span, depth)
        return lead + self._with_comments(self._stmt(s, depth), s.span)

    def _stmt(self, s: ast.Stmt, depth: int) -> list[str]:
        pad = INDENT * depth
        match s:
            case ast.Let(name, value):
                return [f"{pad}let {name} = {expr(value)}"]
            case ast.Input(c, h, w):
                return [f"{pad}input {expr(c)} x {expr(h)} x {expr(w)}"]
            case ast.Classes(value):
                return [f"{pad}classes {expr(value)}"]
            case ast.Stage(kind, body):
                return _seq_lines(f"{kind} {{ ", body, " }", depth, block=True, notes=self)
            case ast.Banks(groups):
                parts = ", ".join(f"{expr(g.count)} x {expr(g.width)}" for g in groups)
                return [f"{pad}banks {parts}"]
            case ast.Layer(name, reads, mode, writes, body):
                label = f"layer {name} " if name else "layer "
                head = f"{label}read {_banks(reads)} {mode} {_banks(writes)} = "
                return _seq_lines(head, body, "", depth, notes=self)
            case ast.Output(banks):
                return [f"{pad}output {_banks(banks)}"]
            case ast.Repeat(var, start, stop, body):
                if var is None:
                    return self.body(f"repeat {expr(stop)}", body, depth, s.span)
                assert start is not None
                head = f"repeat {var} in {expr(start)}..{expr(stop)}"
                return self.body(head, body, depth, s.span)
            case ast.If(cond, then, orelse):
                if orelse is None:
                    return self.body(f"if {expr(cond)}", then, depth, s.span)
                then_end = orelse[0].span if orelse and orelse[0].span.line > 0 else s.span
                lines = self.body(f"if {expr(cond)}", then, depth, _before(then_end))
                rest = self.body("else", orelse, depth, s.span)
                return lines[:-1] + [lines[-1] + " " + rest[0].lstrip()] + rest[1:]
            case ast.Block(name, body):
                return self.body(f"block {name}" if name else "block", body, depth, s.span)
            case ast.BlockUse(name, template, args):
                call = f"{template}({_args(args)})" if args else template
                return [f"{pad}block {name} = {call}" if name else f"{pad}block = {call}"]
        raise TypeError(f"not a statement: {s!r}")

    def item(self, i: ast.Item) -> list[str]:
        lead = self._leading(i.span, 0)
        match i:
            case ast.Import(target, is_path):
                lines = [f'import "{target}"' if is_path else f"import {target}"]
            case ast.Macro(name, params, body):
                lines = _seq_lines(f"def {name}{_params(params)} = ", body, "", 0, notes=self)
            case ast.Template(name, params, body):
                lines = self.body(f"template {name}{_params(params)}", body, 0, i.span)
            case ast.Network(name, params, body):
                lines = self.body(f"network {name}{_params(params)}", body, 0, i.span)
            case _:
                raise TypeError(f"not a top-level item: {i!r}")
        return lead + self._with_comments(lines, i.span)


def _before(span: Span) -> Span:
    """A span ending on the line before ``span`` starts (comments there belong to the if-branch)."""
    return Span(span.file, span.line, 1, span.line - 1, 1)


def stmt(s: ast.Stmt, depth: int = 0) -> list[str]:
    return _Printer(()).stmt(s, depth)


def module(m: ast.Module) -> str:
    """Canonical text of a whole file: a blank line between items (not between imports)."""
    printer = _Printer(m.comments)
    chunks: list[str] = []
    prev_import = False
    for i in m.items:
        is_import = isinstance(i, ast.Import)
        if chunks and not (is_import and prev_import):
            chunks.append("")
        chunks += printer.item(i)
        prev_import = is_import
    rest = printer.take(10**9)
    if rest:
        if chunks:
            chunks.append("")
        chunks += rest
    return "\n".join(chunks) + "\n" if chunks else ""
