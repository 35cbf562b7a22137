"""Text to AST: the Lark LALR parser, the tree-to-dataclass transformer, friendly parse errors."""

from __future__ import annotations

import functools
from importlib import resources

import lark
from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from smashc.diagnostics import Diagnostic, Note, SmashError, Span, error
from smashc.frontend import ast

# Words a person understands, for the terminals Lark reports as expected.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": 'a quoted path like "lib.smash"',
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "$END": "end of file",
}

# Catalogue of bad snippets for Lark's match_examples: message -> examples that fail the same way.
_EXAMPLES: dict[str, list[str]] = {
    "expected '=' and an op sequence after the layer's write banks": [
        "network n { block { layer read 0 write 0 relu } }",
        "network n { block { layer read 0 write 0 } }",
        "template t { layer read 0 write 0 relu }",
    ],
    "a layer needs 'read BANKS write BANKS = OPS' (or 'overwrite' instead of 'write')": [
        "network n { block { layer write 0 = relu } }",
        "network n { block { layer read 0 = relu } }",
        "network n { block { layer read 0 0 = relu } }",
        "template t { layer write 0 = relu }",
        "template t { layer read 0 = relu }",
    ],
    "ops in a sequence are joined with '->'": [
        "network n { stem { bn relu } }",
        "network n { stem { conv(out=1) bn } }",
        "network n { stem { conv(out=1) -> bn relu } }",
        "network n { stem { bn -> conv(out=1) bn } }",
        "network n { block { layer read 0 write 0 = conv(out=1) bn } }",
        "network n { block { layer read 0 write 0 = bn -> relu conv(out=1) } }",
        "def m = bn -> relu conv",
        "def m = conv(out=1) bn",
        "network n { head { bn relu } }",
        "network n { transition { bn relu } }",
        "network n { block { layer read 0 write 0 = bn relu } }",
        "def m = bn relu",
    ],
    "'input' is written CHANNELS x HEIGHT x WIDTH, e.g. 'input 3 x 32 x 32'": [
        "network n { input 3, 32, 32 }",
        "network n { input 3 x 32 }",
        "network n { input 3 x 32 32 }",
        "network n { input 3 32 32 }",
    ],
    "'banks' is written COUNT x WIDTH, e.g. 'banks 4 x 16'": [
        "network n { block { banks 4 } }",
        "network n { block { banks 4, 16 } }",
        "network n { block { banks 4 16 } }",
        "template t { banks 4 }",
        "template t { banks 4 16 }",
    ],
    "expected a statement: input, classes, let, stem, block, transition, head, repeat or if": [
        "network n { foo }",
        "network n { layer read 0 write 0 = relu }",
        "network n { banks 1 x 8 }",
    ],
    "expected a block statement: banks, layer, output, let, repeat or if": [
        "network n { block { relu } }",
        "network n { block { stem { relu } } }",
        "template t { relu }",
    ],
    "expected an import, 'def', 'template' or 'network' at the top level": [
        "foo",
        "block { }",
        "layer read 0 write 0 = relu",
        "network",
        "stem { relu }",
    ],
    "expected an expression": [
        "network n { classes }",
        "network n { classes + }",
        "network n { classes 1 + }",
        "network n { let a = }",
        "network n { stem { conv(out=) } }",
    ],
    "unbalanced parentheses": [
        "network n { stem { conv(out=1 } }",
        "network n { classes (1 + 2 }",
        "network n { stem { conv(out=1, } }",
    ],
    "a 'sum' needs at least two paths separated by '|'": [
        "network n { stem { sum { relu } } }",
        "network n { stem { sum { } } }",
    ],
    "ranges are written START..STOP (half-open)": [
        "network n { repeat i in 3 { } }",
        "network n { repeat i in 0.. { } }",
        "network n { block { layer read 0.. write 0 = relu } }",
    ],
    "there is no 'else if': nest the 'if' in the else branch, 'else { if ... }'": [
        "network n { if true { } else if true { } }",
        "network n { block { if true { } else if true { } } }",
        "template t { if true { } else if true { } }",
    ],
    "positional arguments must come before keyword arguments": [
        "network n { stem { conv(out=1, 3) } }",
    ],
}


# Lark's lexer callbacks are fixed when the parser is built; each parse points this at its own list.
_comment_sink: list[Token] = []


def _on_comment(tok: Token) -> Token:
    _comment_sink.append(tok)
    return tok


@functools.cache
def _lark() -> Lark:
    text = resources.files("smashc.grammar").joinpath("smash.lark").read_text(encoding="utf-8")
    return Lark(
        text,
        parser="lalr",
        propagate_positions=True,
        strict=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _on_comment},
    )


def _parse_collecting(text: str, comments: list[Token]) -> lark.Tree:
    _comment_sink.clear()
    try:
        return _lark().parse(text)
    finally:
        comments.extend(_comment_sink)
        _comment_sink.clear()


def _span(file: str, meta: object) -> Span:
    if getattr(meta, "empty", False) or getattr(meta, "line", None) is None:
        return Span(file, 1, 1, 1, 1)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)  # type: ignore[attr-defined]


def _binop(op: str):
    def rule(self: _ToAst, meta: object, children: list) -> ast.BinOp:
        return ast.BinOp(op, children[0], children[1], self.span(meta))

    return rule


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """One method per grammar rule or alias, each returning an AST dataclass."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def span(self, meta: object) -> Span:
        return _span(self.file, meta)

    # --- expressions
    def int(self, meta, c):
        if len(c[0]) > 4000:  # Python refuses to convert longer digit strings
            msg = f"integer literal with {len(c[0])} digits is too large"
            raise SmashError([error("E0104", msg, self.span(meta))])
        return ast.Int(int(c[0]), self.span(meta))

    def float(self, meta, c):
        return ast.Float(float(c[0]), self.span(meta))

    def true(self, meta, c):
        return ast.Bool(True, self.span(meta))

    def false(self, meta, c):
        return ast.Bool(False, self.span(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), self.span(meta))

    def call(self, meta, c):
        return ast.Call(str(c[0]), c[1] or (), self.span(meta))

    op_call = call

    def tuple(self, meta, c):
        return ast.Tuple(tuple(x for x in c if x is not None), self.span(meta))

    def neg(self, meta, c):
        return ast.UnaryOp("-", c[0], self.span(meta))

    def not_(self, meta, c):
        return ast.UnaryOp("not", c[0], self.span(meta))

    or_ = _binop("or")
    and_ = _binop("and")
    eq = _binop("==")
    ne = _binop("!=")
    lt = _binop("<")
    le = _binop("<=")
    gt = _binop(">")
    ge = _binop(">=")
    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    div = _binop("/")
    mod = _binop("%")
    pow = _binop("**")

    def arg_list(self, meta, c):
        return tuple(x for x in c if x is not None)

    def pos_arg(self, meta, c):
        return ast.Arg(None, c[0], self.span(meta))

    def kw_arg(self, meta, c):
        return ast.Arg(str(c[0]), c[1], self.span(meta))

    # --- op sequences
    def seq(self, meta, c):
        return ast.Seq(tuple(c), self.span(meta))

    def sum_op(self, meta, c):
        return ast.Sum(tuple(c), self.span(meta))

    # --- statements
    def param_list(self, meta, c):
        return tuple(x for x in c if x is not None)

    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], self.span(meta))

    def net_body(self, meta, c):
        return tuple(c)

    block_body = net_body

    def input_decl(self, meta, c):
        return ast.Input(c[0], c[1], c[2], self.span(meta))

    def classes_decl(self, meta, c):
        return ast.Classes(c[0], self.span(meta))

    def let_stmt(self, meta, c):
        return ast.Let(str(c[0]), c[1], self.span(meta))

    def _stage(kind: str):  # noqa: N805 - a rule factory, not a method
        def rule(self, meta, c):
            return ast.Stage(kind, c[0], self.span(meta))

        return rule

    stem = _stage("stem")
    transition = _stage("transition")
    head = _stage("head")

    def block(self, meta, c):
        name = None if c[0] is None else str(c[0])
        return ast.Block(name, c[1], self.span(meta))

    def block_use(self, meta, c):
        name = None if c[0] is None else str(c[0])
        return ast.BlockUse(name, str(c[1]), c[2] or (), self.span(meta))

    def repeat_count(self, meta, c):
        return (None, None, c[0])

    def repeat_range(self, meta, c):
        return (str(c[0]), c[1], c[2])

    def net_repeat(self, meta, c):
        var, start, stop = c[0]
        return ast.Repeat(var, start, stop, c[1], self.span(meta))

    block_repeat = net_repeat

    def net_if(self, meta, c):
        return ast.If(c[0], c[1], c[2], self.span(meta))

    block_if = net_if

    def banks_decl(self, meta, c):
        return ast.Banks(tuple(c), self.span(meta))

    def bank_group(self, meta, c):
        return ast.BankGroup(c[0], c[1], self.span(meta))

    def bank_list(self, meta, c):
        return tuple(c)

    def bank_one(self, meta, c):
        return ast.BankRef(c[0], None, self.span(meta))

    def bank_range(self, meta, c):
        return ast.BankRef(c[0], c[1], self.span(meta))

    def write_mode(self, meta, c):
        return str(c[0])

    def layer(self, meta, c):
        name = None if c[0] is None else str(c[0])
        return ast.Layer(name, c[1], c[2], c[3], c[4], self.span(meta))

    def output_decl(self, meta, c):
        return ast.Output(c[0], self.span(meta))

    # --- top level
    def import_stmt(self, meta, c):
        tok: Token = c[0]
        if tok.type == "STRING":
            return ast.Import(str(tok)[1:-1], True, self.span(meta))
        return ast.Import(str(tok), False, self.span(meta))

    def network(self, meta, c):
        return ast.Network(str(c[0]), c[1] or (), c[2], self.span(meta))

    def template(self, meta, c):
        return ast.Template(str(c[0]), c[1] or (), c[2], self.span(meta))

    def macro(self, meta, c):
        return ast.Macro(str(c[0]), c[1] or (), c[2], self.span(meta))

    def start(self, meta, c):
        return ast.Module(tuple(c), self.span(meta))


# How deeply each kind of construct may nest. The later stages (expansion, printing, code
# generation) walk the AST recursively, so a bound here keeps every one of them inside
# Python's recursion limit, whatever they are given; real networks nest a few levels.
MAX_STATEMENT_DEPTH = 32  # 'if', 'repeat' and 'block' inside one another
MAX_SUM_DEPTH = 32  # 'sum { ... }' inside a path of another 'sum'
MAX_EXPRESSION_DEPTH = 128  # operators, calls and tuples inside one another

_STATEMENTS = frozenset({"net_if", "block_if", "net_repeat", "block_repeat", "block"})
_EXPRESSIONS = frozenset(
    "or_ and_ not_ eq ne lt le gt ge add sub mul div mod neg pow call tuple".split()
)
_LIMITS = {  # kind -> (limit, what the message calls it)
    "statement": (MAX_STATEMENT_DEPTH, "statements ('if', 'repeat', 'block')"),
    "sum": (MAX_SUM_DEPTH, "'sum' paths"),
    "expression": (MAX_EXPRESSION_DEPTH, "expressions"),
}


def _kind(rule: str) -> str | None:
    if rule in _STATEMENTS:
        return "statement"
    if rule == "sum_op":
        return "sum"
    if rule in _EXPRESSIONS:
        return "expression"
    return None


def _start(file: str, node: lark.Tree) -> Span:
    """The first word of ``node`` (its keyword), or its first character for an expression."""
    meta = node.meta
    rule = str(node.data)
    word = "sum" if rule == "sum_op" else rule.rsplit("_", 1)[-1] if rule in _STATEMENTS else "?"
    return Span(file, meta.line, meta.column, meta.line, meta.column + len(word))


def _check_depth(tree: lark.Tree, file: str) -> None:
    """Raise a SmashError at the first construct that nests deeper than its kind allows.

    An explicit stack, not recursion: the point is to be safe on any input.
    """
    todo: list[tuple[lark.Tree, dict[str, int]]] = [(tree, {k: 0 for k in _LIMITS})]
    while todo:
        node, depth = todo.pop()
        kind = _kind(str(node.data))
        if kind is not None:
            depth = {**depth, kind: depth[kind] + 1}
            limit, what = _LIMITS[kind]
            if depth[kind] > limit:
                msg = f"{what} nest too deeply: more than {limit} levels"
                raise SmashError([error("E0207", msg, _start(file, node))])
        todo.extend((c, depth) for c in reversed(node.children) if isinstance(c, lark.Tree))


@functools.cache
def _catalogue() -> dict[tuple, str]:
    """(top LALR states, token type) at which each catalogue snippet fails -> its message.

    Keyed by the top two and three states of the stack, not the whole stack (which is what
    Lark's match_examples compares), so a mistake is recognised at any nesting depth while
    different contexts that share a state (an integer after 'classes' or after 'read')
    stay apart.
    """
    table: dict[tuple, str] = {}
    for message, snippets in _EXAMPLES.items():
        for snippet in snippets:
            try:
                _lark().parse(snippet)
            except UnexpectedToken as exc:
                for depth in (3, 2):
                    key = (tuple(exc.state.state_stack[-depth:]), exc.token.type)
                    table.setdefault(key, message)
            except UnexpectedInput:
                continue
    return table


def _friendly(exc: UnexpectedToken) -> str | None:
    if exc.state is None:
        return None
    table = _catalogue()
    for depth in (3, 2):
        found = table.get((tuple(exc.state.state_stack[-depth:]), exc.token.type))
        if found:
            return found
    return None


def _accepted(exc: UnexpectedInput) -> set[str]:
    """What the parser would really accept here (Lark's ``expected`` over-approximates)."""
    parser = getattr(exc, "interactive_parser", None)
    if parser is not None:
        try:
            return set(parser.accepts())
        except Exception:  # noqa: BLE001 - fall back to Lark's own estimate
            pass
    return set(getattr(exc, "expected", ()) or ())


def _describe_expected(expected: set[str]) -> str:
    lark_parser = _lark()
    words = []
    for name in sorted(expected):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = lark_parser.get_terminal(name).pattern
        except KeyError:
            words.append(name.lower())
            continue
        if isinstance(pattern, lark.lexer.PatternStr):
            words.append(f"'{pattern.value}'")
        else:
            words.append(name.lower())
    # closing brackets and arrows first: they are what a person most often forgot
    first = ["'}'", "')'", "'->'", "'='", "','"]
    words = sorted(set(words), key=lambda w: (first.index(w) if w in first else len(first), w))
    if len(words) > 10:
        words = words[:10] + ["..."]
    return ", ".join(words)


def _found(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"'{tok}'"


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> SmashError:
    line = max(1, exc.line if exc.line is not None and exc.line > 0 else 1)
    column = max(1, exc.column if exc.column is not None and exc.column > 0 else 1)
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        span = Span(file, line, column, line, column + 1)
        diag = error("E0002", f"unexpected character {char!r}", span)
        return SmashError([diag], {file: text})
    if isinstance(exc, UnexpectedEOF) or exc.token.type == "$END":  # type: ignore[attr-defined]
        return SmashError([_end_of_file(exc, text, file)], {file: text})
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    span = Span(file, line, column, tok.end_line or line, tok.end_column or column + 1)
    friendly = _friendly(exc)
    if friendly:
        msg = f"{friendly}; found {_found(tok)}"
    else:
        msg = f"unexpected {_found(tok)}; expected {_describe_expected(_accepted(exc))}"
    notes = []
    if str(tok) in _OUTER_WORDS and "RBRACE" in _accepted(exc):
        opened, _ = _open_braces(text, tok.start_pos or 0)
        if opened:
            where = Span(file, *opened[-1], opened[-1][0], opened[-1][1] + 1)
            notes.append(Note(f"the '{{' here is not closed before {_found(tok)}", where))
    return SmashError([error("E0001", msg, span, *notes)], {file: text})


# Words that start an item or a statement of an outer level: one of them where a '}' would
# fit most likely means that a '{' before it was left open.
_OUTER_WORDS = frozenset(
    "import def template network input classes stem transition head block".split()
)


def _open_braces(text: str, stop: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The '{' still open at offset ``stop`` as (line, column), outermost first, and those
    closed by a '}' that starts a line indented less than the '{'s line: the '}' probably
    belongs to an outer '{', and this one was left open. Comments and paths are skipped.
    One pass over the text."""
    opened: list[tuple[int, int, int]] = []
    suspects: list[tuple[int, int]] = []
    line, line_start, indent, blank, i = 1, 0, 0, True, 0  # blank: only spaces so far
    stop = min(stop, len(text))
    while i < stop:
        c = text[i]
        if c in '#"':  # a comment or a quoted path: skip to its end (or the line's end)
            newline = text.find("\n", i + 1)
            close = text.find('"', i + 1) if c == '"' else -1
            ends = [e for e in (newline, close) if e != -1]
            i = min(ends) if ends else stop
            if i == close:
                i += 1
            blank = False
            continue
        if c == "\n":
            line, line_start, indent, blank = line + 1, i + 1, 0, True
        elif blank and c in " \t":
            indent += 1
        else:
            if c == "{":
                opened.append((line, i - line_start + 1, indent))
            elif c == "}" and opened:
                o_line, o_col, o_indent = opened.pop()
                if blank and indent < o_indent:
                    suspects.append((o_line, o_col))
            blank = False
        i += 1
    return [(ln, col) for ln, col, _ in opened], suspects


def _end_of_file(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    """E0003 at the '{' left open (like rustc's 'unclosed delimiter'), or at the end of the
    file when none is."""
    lines = text.splitlines() or [""]
    end = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
    expected = _describe_expected(_accepted(exc))
    opened, suspects = _open_braces(text, len(text))
    if not opened:
        return error("E0003", f"unexpected end of file; expected {expected}", end)
    line, column = (suspects or opened)[-1]
    brace = Span(file, line, column, line, column + 1)
    msg = "unclosed '{': the file ends before its '}'"
    return error("E0003", msg, brace, Note(f"the file ends here; expected {expected}", end))


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse one file's text into an AST; raises SmashError (E0001-E0003) on bad syntax."""
    comments: list[Token] = []
    try:
        tree = _parse_collecting(text, comments)
        _check_depth(tree, file)
        module = _ToAst(file).transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None
    except SmashError as exc:
        raise SmashError(exc.diagnostics, {file: text}) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, SmashError):
            raise SmashError(exc.orig_exc.diagnostics, {file: text}) from None
        raise
    kept = tuple(
        ast.Comment(str(c).rstrip(), Span(file, c.line, c.column, c.end_line, c.end_column))
        for c in comments
    )
    return ast.Module(module.items, module.span, kept)
