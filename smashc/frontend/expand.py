"""Expansion: evaluates parameters, loops, conditionals, macros and templates into an arch.Network.

All semantic errors of a file are collected (a failing statement is skipped, the rest go on)
and raised together as one SmashError.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from smashc import arch
from smashc.diagnostics import DiagnosticBag, Note, SmashError, Span, error
from smashc.frontend import ast
from smashc.frontend.check import seq_channels
from smashc.frontend.loader import Program
from smashc.frontend.parser import MAX_SUM_DEPTH
from smashc.ops.registry import REQUIRED, ArgError, OpDef, Param, lookup, names
from smashc.ops.smash import CONV_PARAMS as SMASH_CONV

Value = int | float | bool | tuple

MAX_INT = 2**48
MAX_ITERATIONS = 100_000
MAX_BANKS = 4096
MAX_OPS = 200_000
MAX_MACRO_DEPTH = 32  # macros calling macros; keeps the later recursive walks bounded


class _Skip(Exception):
    """Abandons the current statement after its diagnostic was recorded."""


# --- argument binding ------------------------------------------------------------------------


BUILTIN_FUNCTIONS: dict[str, Callable[..., int]] = {"min": min, "max": max}

_KIND_WORDS = {
    "int": "an integer",
    "pos": "a positive integer",
    "nonneg": "a non-negative integer",
    "pair": "an integer or a pair (h, w)",
    "pospair": "a positive integer or a pair of them (h, w)",
    "nonnegpair": "a non-negative integer or a pair of them (h, w)",
    "odd": "a positive odd integer or a pair of them (h, w)",
    "float": "a number",
    "posfloat": "a positive number",
    "unitfloat": "a number from 0 to 1",
    "bool": "true or false",
    "act": "one of " + ", ".join(arch.ACTIVATIONS),
    "sconv": "conv(kernel=..., dilation=..., groups=..., act=...)",
}


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _show(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "(" + ", ".join(_show(x) for x in v) + ")"
    return repr(v)


@dataclass
class _Scope:
    values: dict[str, Value]
    stack: tuple[str, ...] = ()  # macro/template expansion chain, for recursion checks

    def child(self, **more: Value) -> _Scope:
        return _Scope({**self.values, **more}, self.stack)


class _BlockState:
    def __init__(self, name: str, in_channels: int, span: Span, template: str | None):
        self.name = name
        self.in_channels = in_channels
        self.span = span
        self.template = template
        self.banks: list[int] = []
        self.layers: list[arch.Layer] = []
        self.output: tuple[int, ...] | None = None
        self.written: set[int] | None = None  # set once the input has been placed
        self.banks_span: Span | None = None
        self.output_spans: tuple[Span, ...] = ()


class Expander:
    def __init__(self, program: Program, overrides: Mapping[str, int] | None = None):
        self.program = program
        self.overrides = dict(overrides or {})
        self.bag = DiagnosticBag()
        self.iterations = 0
        self.ops_made = 0
        self.sum_depth = 0  # sums open around the op being expanded, through macros too
        self.names: set[str] = set()
        for name, m in program.macros.items():
            if lookup(name) is not None:
                msg = f"'{name}' is a built-in op; a macro cannot take its name"
                self.bag.error("E0103", msg, m.span)

    # --- diagnostics helpers
    def fail(self, code: str, message: str, span: Span, *notes: Note):
        self.bag.error(code, message, span, *notes)
        raise _Skip

    def unique(self, name: str) -> str:
        out, k = name, 1
        while out in self.names:
            out, k = f"{name}_{k}", k + 1
        self.names.add(out)
        return out

    # --- expressions
    def eval(self, e: ast.Expr, scope: _Scope) -> Value:
        match e:
            case ast.Int(v) | ast.Float(v) | ast.Bool(v):
                return v
            case ast.Name(id):
                if id in scope.values:
                    value = scope.values[id]
                    if value is UNKNOWN:
                        raise _Skip  # depends on a value whose error is already reported
                    return value
                self.fail("E0101", f"unknown name '{id}'" + _suggest(id, scope.values), e.span)
            case ast.Tuple(items):
                return tuple(self.eval(i, scope) for i in items)
            case ast.Call():
                return self._call_value(e, scope)
            case ast.UnaryOp("-", operand):
                v = self.eval(operand, scope)
                if isinstance(v, bool) or not isinstance(v, int | float):
                    self.fail("E0104", f"cannot negate {_show(v)}", e.span)
                return -v
            case ast.UnaryOp("not", operand):
                v = self.eval(operand, scope)
                if not isinstance(v, bool):
                    self.fail("E0104", f"'not' needs true or false, got {_show(v)}", e.span)
                return not v
            case ast.BinOp(op, left, right):
                return self._binop(e, op, self.eval(left, scope), self.eval(right, scope))
        raise AssertionError(f"unhandled expression {e!r}")

    def _binop(self, e: ast.BinOp, op: str, a: Value, b: Value) -> Value:
        if op in ("and", "or"):
            if not (isinstance(a, bool) and isinstance(b, bool)):
                self.fail("E0104", f"'{op}' needs true or false on both sides", e.span)
            return (a and b) if op == "and" else (a or b)
        if op in ("==", "!="):
            return (a == b) if op == "==" else (a != b)
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
        if not numeric:
            self.fail("E0104", f"cannot apply '{op}' to {_show(a)} and {_show(b)}", e.span)
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op in ("/", "%") and b == 0:
            self.fail("E0104", "division by zero", e.span)
        if op == "**":
            if isinstance(b, int) and isinstance(a, int) and b < 0:
                self.fail("E0104", "negative exponents are not integers", e.span)
            if abs(b) > 64 and abs(a) > 1:
                self.fail("E0104", "value too large", e.span)
        both_int = isinstance(a, int) and isinstance(b, int)
        if op in ("%",) and not both_int:
            self.fail("E0104", "'%' needs integers", e.span)
        try:
            result = {
                "+": lambda: a + b,
                "-": lambda: a - b,
                "*": lambda: a * b,
                "/": lambda: a // b if both_int else a / b,
                "%": lambda: a % b,
                "**": lambda: a**b,
            }[op]()
        except (OverflowError, ZeroDivisionError):
            self.fail("E0104", "value is not a finite number", e.span)
        if isinstance(result, int) and abs(result) > MAX_INT:
            self.fail("E0104", f"value too large (over {MAX_INT})", e.span)
        if isinstance(result, float) and not math.isfinite(result):
            self.fail("E0104", "value is not a finite number", e.span)
        return result

    def _call_value(self, e: ast.Call, scope: _Scope) -> Value:
        if e.name in BUILTIN_FUNCTIONS:
            if not e.args or any(a.name is not None for a in e.args):
                self.fail("E0102", f"{e.name}() takes one or more positional arguments", e.span)
            vals = [self.eval(a.value, scope) for a in e.args]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
                self.fail("E0104", f"{e.name}() needs integers", e.span)
            return BUILTIN_FUNCTIONS[e.name](vals)
        if lookup(e.name) is not None or e.name in self.program.macros:
            self.fail("E0104", f"'{e.name}' is an op, not a value", e.span)
        known = [*BUILTIN_FUNCTIONS, *names(), *self.program.macros]
        self.fail("E0101", f"unknown function '{e.name}'" + _suggest(e.name, known), e.span)
        raise AssertionError

    def int_value(self, e: ast.Expr, scope: _Scope, what: str, low: int = 0) -> int:
        v = self.eval(e, scope)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail("E0104", f"{what} must be an integer, got {_show(v)}", e.span)
        if v < low:
            self.fail("E0104", f"{what} must be at least {low}, got {v}", e.span)
        return v

    # --- argument binding
    def bind(
        self,
        what: str,
        params: tuple[Param, ...] | tuple[ast.Param, ...],
        call: ast.Call | ast.BlockUse,
    ) -> dict[str, ast.Arg]:
        """Matches a call's arguments to parameter names; E0102 for every arity mistake."""
        names = [p.name for p in params]
        bound: dict[str, ast.Arg] = {}
        positional = [a for a in call.args if a.name is None]
        seen_kw = False
        for a in call.args:
            if a.name is not None:
                seen_kw = True
            elif seen_kw:
                self.fail(
                    "E0102", "positional arguments must come before keyword arguments", a.span
                )
        if len(positional) > len(names):
            n = len(names)
            plural = "argument" if n == 1 else "arguments"
            msg = f"{what} takes {n} {plural}, got {len(positional)}"
            self.fail("E0102", msg, positional[n].span)
        for name, a in zip(names, positional, strict=False):
            bound[name] = a
        for a in call.args:
            if a.name is None:
                continue
            if a.name not in names:
                listed = ", ".join(names) if names else "none"
                msg = f"{what} has no argument '{a.name}' (it takes: {listed})"
                self.fail("E0102", msg + _suggest(a.name, names), a.span)
            if a.name in bound:
                self.fail("E0102", f"argument '{a.name}' of {what} is given twice", a.span)
            bound[a.name] = a
        for p in params:
            if p.name not in bound and p.default is REQUIRED:
                self.fail("E0102", f"{what} needs argument '{p.name}'", call.span)
        return bound

    def bind_params(
        self, what: str, params: tuple[ast.Param, ...], call, scope: _Scope, callee=None
    ) -> dict:
        """Binds a macro's or template's parameters; defaults are evaluated in the callee
        (its builtins ``callee`` plus the parameters bound so far)."""
        spec = tuple(
            Param(p.name, "any", REQUIRED if p.default is None else p.default) for p in params
        )
        bound = self.bind(what, spec, call)
        values: dict[str, Value] = {}
        for p in params:
            if p.name in bound:
                values[p.name] = self.eval(bound[p.name].value, scope)
            else:
                assert p.default is not None
                base = dict(callee.values) if callee is not None else {}
                values[p.name] = self.eval(p.default, _Scope({**base, **values}, scope.stack))
        return values

    # --- op construction
    def coerce(self, kind: str, a: ast.Arg, what: str, scope: _Scope):
        if kind == "act":
            if isinstance(a.value, ast.Name) and a.value.id in arch.ACTIVATIONS:
                return a.value.id
            self.fail("E0104", f"argument '{a.name}' of {what} must be {_KIND_WORDS[kind]}", a.span)
        if kind == "sconv":
            if isinstance(a.value, ast.Call) and a.value.name == "conv":
                return self.smash_conv(a.value, scope)
            msg = f"argument '{a.name}' of {what} must be {_KIND_WORDS[kind]}"
            self.fail("E0104", msg, a.value.span)
        v = self.eval(a.value, scope)
        label = f"argument '{a.name or '?'}' of {what}"
        if kind in ("float", "posfloat", "unitfloat"):
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                if kind == "float" or (v > 0 if kind == "posfloat" else 0 <= v <= 1):
                    return float(v)
        elif kind == "bool":
            if isinstance(v, bool):
                return v
        elif kind in ("pos", "int", "nonneg"):
            low = {"pos": 1, "nonneg": 0}.get(kind)
            if isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low):
                return v
        else:  # pairs
            pair = (v, v) if isinstance(v, int) and not isinstance(v, bool) else v
            if (
                isinstance(pair, tuple)
                and len(pair) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
            ):
                low = 0 if kind == "nonnegpair" else 1
                if all(x >= low for x in pair):
                    if kind == "odd" and not all(x % 2 == 1 for x in pair):
                        msg = f"kernel size {_show(v)} of {what} must be odd"
                        self.fail("E0204", msg, a.value.span)
                    return pair
                if kind == "odd":
                    msg = f"kernel size {_show(v)} of {what} must be positive"
                    self.fail("E0204", msg, a.value.span)
        self.fail("E0104", f"{label} must be {_KIND_WORDS[kind]}, got {_show(v)}", a.value.span)

    def op_args(self, spec: tuple[Param, ...], call: ast.Call, what: str, scope: _Scope) -> dict:
        bound = self.bind(what, spec, call)
        out = {}
        for p in spec:
            if p.name in bound:
                out[p.name] = self.coerce(p.kind, bound[p.name], what, scope)
            elif isinstance(p.default, int) and p.kind in ("pospair", "nonnegpair", "odd"):
                out[p.name] = (p.default, p.default)
            else:
                out[p.name] = p.default
        return out

    def smash_conv(self, call: ast.Call, scope: _Scope) -> arch.SmashConv:
        a = self.op_args(SMASH_CONV, call, "a smash conv", scope)
        return arch.SmashConv(a["kernel"], a["dilation"], a["groups"], a["act"], call.span)

    def build(self, entry: OpDef, call: ast.Call, scope: _Scope) -> arch.Op:
        a = self.op_args(entry.params, call, call.name, scope)
        try:
            return entry.build(a, call.span)
        except ArgError as e:
            self.fail(e.code, e.message, e.span)
        raise AssertionError

    def seq(self, s: ast.Seq, scope: _Scope) -> tuple[arch.Op, ...]:
        ops: list[arch.Op] = []
        for item in s.items:
            if isinstance(item, ast.Sum):
                ops.append(self.sum(item, scope))
            elif (entry := lookup(item.name)) is not None:
                ops.append(self.build(entry, item, scope))
            elif item.name in self.program.macros:
                expanded = self.macro(item, scope)
                ops.extend(expanded)
                self.ops_made += len(expanded)
                if self.ops_made > MAX_OPS:
                    self.fail("E0104", f"macros expand to more than {MAX_OPS} ops", item.span)
            else:
                known = [*names(), *self.program.macros]
                hint = ""
                if item.name in self.program.templates:
                    hint = "; it is a block template: use it as 'block = " + item.name + "(...)'"
                msg = f"unknown op '{item.name}'" + (hint or _suggest(item.name, known))
                self.fail("E0101", msg, item.span)
        return tuple(ops)

    def sum(self, item: ast.Sum, scope: _Scope) -> arch.Sum:
        if self.sum_depth >= MAX_SUM_DEPTH:
            msg = f"'sum' paths nest too deeply (through macros): more than {MAX_SUM_DEPTH} levels"
            self.fail("E0207", msg, Span(item.span.file, item.span.line, item.span.column,
                                         item.span.line, item.span.column + 3))  # fmt: skip
        self.sum_depth += 1
        try:
            return arch.Sum(tuple(self.seq(p, scope) for p in item.paths), item.span)
        finally:
            self.sum_depth -= 1

    def macro(self, call: ast.Call, scope: _Scope) -> tuple[arch.Op, ...]:
        m = self.program.macros[call.name]
        if len(scope.stack) >= MAX_MACRO_DEPTH:
            chain = f"{scope.stack[0]} -> ... -> {scope.stack[-1]} -> {call.name}"
            msg = f"macro calls nest too deeply: more than {MAX_MACRO_DEPTH} levels ({chain})"
            self.fail("E0207", msg, call.span)
        if call.name in scope.stack:
            chain = " -> ".join(scope.stack[scope.stack.index(call.name) :] + (call.name,))
            self.fail(
                "E0301",
                f"macro '{call.name}' is recursive: {chain}",
                call.span,
                Note("defined here", m.span),
            )
        values = self.bind_params(f"'{call.name}'", m.params, call, scope)
        return self.seq(m.seq, _Scope(values, scope.stack + (call.name,)))

    # --- blocks
    def bank_indices(self, refs: tuple[ast.BankRef, ...], st: _BlockState, scope: _Scope) -> list:
        out = []
        for r in refs:
            start = self.int_value(r.start, scope, "a bank index")
            stop = start + 1 if r.stop is None else self.int_value(r.stop, scope, "a bank index")
            if stop - start > MAX_BANKS:
                self.fail("E0201", "bank range is too long", r.span)
            for b in range(start, stop):
                if b >= len(st.banks):
                    n = len(st.banks)
                    has = f"{n} bank (0)" if n == 1 else f"{n} banks (0..{n - 1})"
                    msg = f"bank {b} does not exist; block '{st.name}' has {has}"
                    self.fail("E0201", msg, r.span)
                out.append((b, r.span))
        return out

    def place_input(self, st: _BlockState, span: Span) -> set[int]:
        if st.written is not None:
            return st.written
        if st.in_channels is None:  # unknown after an earlier error: assume the best
            st.written = set(range(len(st.banks)))
            return st.written
        total = 0
        for k, w in enumerate(st.banks):
            total += w
            if total == st.in_channels:
                st.written = set(range(k + 1))
                return st.written
        widths = ", ".join(str(w) for w in st.banks) or "none"
        msg = (
            f"block input has {st.in_channels} channels, which do not fill whole banks "
            f"(bank widths: {widths})"
        )
        st.written = set(range(len(st.banks)))  # report once, then check the layers anyway
        self.fail("E0206", msg, st.banks_span or span)
        raise AssertionError

    def block_stmts(self, body: tuple[ast.Stmt, ...], st: _BlockState, scope: _Scope) -> None:
        for s in body:
            try:
                self.block_stmt(s, st, scope)
            except _Skip:
                continue

    def block_stmt(self, s: ast.Stmt, st: _BlockState, scope: _Scope) -> None:
        match s:
            case ast.Let(name, value):
                scope.values[name] = self.eval(value, scope)
            case ast.Banks(groups):
                if st.layers or st.written is not None:
                    self.fail("E0104", "banks must be declared before the first layer", s.span)
                st.banks_span = st.banks_span or s.span
                for g in groups:
                    count = self.int_value(g.count, scope, "a bank count", 0)
                    width = self.int_value(g.width, scope, "a bank width", 1)
                    if len(st.banks) + count > MAX_BANKS:
                        self.fail("E0104", f"a block has at most {MAX_BANKS} banks", g.span)
                    st.banks += [width] * count
            case ast.Layer():
                self.layer(s, st, scope)
            case ast.Output(banks):
                if st.output is not None:
                    self.fail("E0103", "the block's output is declared twice", s.span)
                idx = self.bank_indices(banks, st, scope)
                if not idx:
                    self.fail("E0104", "output lists no banks", s.span)
                if len({b for b, _ in idx}) != len(idx):
                    self.fail("E0104", "output lists a bank twice", s.span)
                st.output = tuple(b for b, _ in idx)
                st.output_spans = tuple(span for _, span in idx)
            case ast.Repeat():
                self.repeat(s, scope, lambda body, sc: self.block_stmts(body, st, sc))
            case ast.If(cond, then, orelse):
                branch = self.condition(cond, scope, then, orelse)
                self.block_stmts(branch, st, scope.child())
            case _:
                kind = type(s).__name__.lower()
                self.fail("E0104", f"'{kind}' cannot appear inside a block", s.span)

    def layer(self, s: ast.Layer, st: _BlockState, scope: _Scope) -> None:
        if not st.banks:
            self.fail("E0104", "declare the block's banks before its layers", s.span)
        written = self.place_input(st, s.span)
        reads = self.bank_indices(s.reads, st, scope)
        writes = self.bank_indices(s.writes, st, scope)
        if not reads:
            self.fail("E0104", "layer reads no banks", s.span)
        if not writes:
            self.fail("E0104", "layer writes no banks", s.span)
        for b, span in reads:
            if b not in written:
                self.bag.error("E0202", f"bank {b} is read before anything is written to it", span)
        for verb, banks in (("reads", reads), ("writes", writes)):
            seen: set[int] = set()
            for b, span in banks:
                if b in seen:
                    self.fail("E0104", f"layer {verb} bank {b} twice", span)
                seen.add(b)
        # Even if the op fails below, later layers may rely on these banks holding data:
        # marking them now avoids follow-on "never written" errors.
        written.update(b for b, _ in writes)
        ops = self.seq(s.seq, scope)
        cin = sum(st.banks[b] for b, _ in reads)
        out = seq_channels(ops, cin, self.bag)
        if out is not None:
            self.check_write(out, [b for b, _ in writes], st, s)
        name = self.unique(s.name or f"{st.name}_l{len(st.layers)}")
        layer = arch.Layer(
            name, tuple(b for b, _ in reads), tuple(b for b, _ in writes), ops, s.mode, s.span
        )
        st.layers.append(layer)

    def check_write(self, out: int, writes: list[int], st: _BlockState, s: ast.Layer) -> None:
        widths = {st.banks[b] for b in writes}
        if len(widths) > 1:
            shown = ", ".join(f"{b}:{st.banks[b]}" for b in writes)
            msg = f"a layer's write banks must have one width; these have {shown}"
            self.fail("E0205", msg, s.span)
        width = widths.pop()
        if out % width:
            msg = f"layer output has {out} channels, not a multiple of the write-bank width {width}"
            self.fail("E0205", msg, s.span)
        chunks = out // width
        if chunks > len(writes):
            msg = (
                f"layer output has {chunks} bank-width chunks ({out} channels) but writes "
                f"{len(writes)} bank(s); output channels would be dropped"
            )
            self.fail("E0205", msg, s.span)

    def block(self, name: str | None, body, span, scope: _Scope, cin: int | None, template=None):
        st = _BlockState(self.unique(name or f"block{self.block_count}"), cin, span, template)
        self.block_count += 1
        self.block_stmts(body, st, scope.child(in_channels=_known(cin)))
        if not st.banks:
            self.fail("E0104", f"block '{st.name}' declares no banks", span)
        written = self.place_input(st, span)
        output = st.output if st.output is not None else tuple(range(len(st.banks)))
        if st.output is None:
            for b in output:
                if b not in written:
                    msg = f"block bank {b} is never written (it is part of the block output)"
                    self.fail("E0202", msg, span)
        for b, where in zip(st.output or (), st.output_spans, strict=True):
            if b not in written:
                self.fail("E0202", f"block output bank {b} is never written", where)
        return arch.Block(st.name, tuple(st.banks), tuple(st.layers), output, template, span)

    # --- control flow
    def condition(self, cond, scope, then, orelse):
        v = self.eval(cond, scope)
        if not isinstance(v, bool):
            self.fail(
                "E0104", f"an 'if' condition must be true or false, got {_show(v)}", cond.span
            )
        return then if v else (orelse or ())

    def repeat(self, s: ast.Repeat, scope: _Scope, run) -> None:
        start = 0 if s.start is None else self.int_value(s.start, scope, "a loop bound", -MAX_INT)
        stop = self.int_value(s.stop, scope, "a loop bound", -MAX_INT)
        self.iterations += max(0, stop - start)
        if self.iterations > MAX_ITERATIONS:
            self.fail("E0104", f"loops run more than {MAX_ITERATIONS} times in total", s.span)
        for i in range(start, stop):
            run(s.body, scope.child(**({s.var: i} if s.var else {})))

    # --- network
    def network(self, net: ast.Network) -> arch.Network:
        self.block_count = 0
        self.transition_count = 0
        # channels is None while unknown (an earlier stage failed); later stages are still
        # expanded for their own errors, with the checks that need channels skipped.
        self.state = {"input": None, "classes": None, "channels": None, "head": None}
        self.declared: set[str] = set()
        self.stages: list[arch.Stage | arch.Block] = []
        values: dict[str, Value] = {}
        names = {p.name for p in net.params}
        for key in self.overrides:
            if key not in names:
                listed = ", ".join(sorted(names)) or "none"
                msg = f"network '{net.name}' has no parameter '{key}' (it has: {listed})"
                self.bag.error("E0102", msg, net.span)
        for p in net.params:
            try:
                if p.name in self.overrides:
                    values[p.name] = self.overrides[p.name]
                elif p.default is None:
                    msg = f"network parameter '{p.name}' has no default; set it with -D {p.name}=N"
                    self.fail("E0102", msg, p.span)
                else:
                    values[p.name] = self.eval(p.default, _Scope(dict(values)))
            except _Skip:
                values[p.name] = UNKNOWN  # reported once; its uses are skipped quietly
        scope = _Scope(values)
        self.net_stmts(net.body, scope)
        st = self.state
        missing = {
            "input": "'input' declaration",
            "classes": "'classes' declaration",
            "head": "'head'",
        }
        for what, words in missing.items():
            if what not in self.declared:
                self.bag.error("E0104", f"network '{net.name}' has no {words}", net.span)
        head, classes, channels = st["head"], st["classes"], st["channels"]
        if head is not None and classes is not None and channels not in (None, classes):
            msg = f"the head produces {channels} outputs but the network has {classes} classes"
            self.bag.error("E0205", msg, head.span)
        if self.bag.items:
            raise SmashError(self.bag.items, self.program.sources)
        return arch.Network(net.name, st["input"], st["classes"], tuple(self.stages), net.span)

    def net_stmts(self, body, scope: _Scope) -> None:
        for s in body:
            try:
                self.net_stmt(s, scope)
            except _Skip:
                if isinstance(s, ast.Stage | ast.Block | ast.BlockUse):
                    self.state["channels"] = None

    def require_input(self, s: ast.Stmt) -> int | None:
        """The stage's input channels (None if unknown); E0104 if no input or after the head."""
        if "input" not in self.declared:
            self.fail("E0104", "declare the network's 'input' before its first stage", s.span)
        if "head" in self.declared:
            self.fail("E0104", "nothing may follow the network's head", s.span)
        return self.state["channels"]

    def net_stmt(self, s: ast.Stmt, scope: _Scope) -> None:
        st = self.state
        match s:
            case ast.Let(name, value):
                scope.values[name] = self.eval(value, scope)
            case ast.Input(c, h, w):
                if "input" in self.declared:
                    self.fail("E0103", "the network's input is declared twice", s.span)
                self.declared.add("input")
                dims = tuple(self.int_value(x, scope, "an input size", 1) for x in (c, h, w))
                st["input"] = dims
                st["channels"] = dims[0]
            case ast.Classes(value):
                if "classes" in self.declared:
                    self.fail("E0103", "the network's classes are declared twice", s.span)
                self.declared.add("classes")
                scope.values["classes"] = UNKNOWN
                st["classes"] = self.int_value(value, scope, "classes", 1)
                scope.values["classes"] = st["classes"]
            case ast.Stage(kind, body):
                cin = self.require_input(s)
                if kind == "head":
                    self.declared.add("head")
                if kind == "transition":
                    self.transition_count += 1
                name = {"transition": f"transition{self.transition_count}"}.get(kind, kind)
                if kind != "transition" and any(
                    x.kind == kind for x in self.stages if isinstance(x, arch.Stage)
                ):
                    self.fail("E0103", f"the network has more than one {kind}", s.span)
                if kind == "stem" and self.stages:
                    self.fail("E0104", "the stem must be the network's first stage", s.span)
                st["channels"] = None
                ops = self.seq(body, scope.child(in_channels=_known(cin)))
                stage = arch.Stage(kind, self.unique(name), ops, s.span)
                st["channels"] = seq_channels(ops, cin, self.bag)
                self.stages.append(stage)
                if kind == "head":
                    st["head"] = stage
            case ast.Block(name, body):
                cin = self.require_input(s)
                st["channels"] = None
                blk = self.block(name, body, s.span, scope, cin)
                self.stages.append(blk)
                st["channels"] = sum(blk.banks[b] for b in blk.output)
            case ast.BlockUse(name, template):
                cin = self.require_input(s)
                st["channels"] = None
                t = self.program.templates.get(template)
                if t is None:
                    hint = ""
                    if template in self.program.macros or lookup(template) is not None:
                        hint = f"; '{template}' is an op: use it inside a layer"
                    known = self.program.templates
                    msg = f"unknown template '{template}'" + (hint or _suggest(template, known))
                    self.fail("E0101", msg, s.span)
                # A template sees its parameters and the builtins, not the network's names.
                builtins = {k: scope.values[k] for k in ("classes",) if k in scope.values}
                builtins["in_channels"] = _known(cin)
                values = self.bind_params(
                    f"template '{template}'", t.params, s, scope, _Scope(dict(builtins))
                )
                tscope = _Scope({**builtins, **values}, (template,))
                blk = self.block(name or template, t.body, s.span, tscope, cin, template)
                self.stages.append(blk)
                st["channels"] = sum(blk.banks[b] for b in blk.output)
            case ast.Repeat():
                self.repeat(s, scope, lambda body, sc: self.net_stmts(body, sc))
            case ast.If(cond, then, orelse):
                self.net_stmts(self.condition(cond, scope, then, orelse), scope.child())
            case _:
                kind = type(s).__name__.lower()
                self.fail("E0104", f"'{kind}' can only appear inside a block", s.span)


class _Unknown:
    """A value that could not be computed (its error is already reported)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


def _known(v: int | None) -> Value | _Unknown:
    return UNKNOWN if v is None else v


def expand(program: Program, overrides: Mapping[str, int] | None = None) -> arch.Network:
    """The main file's network, fully expanded; raises SmashError listing every semantic error."""
    net = program.network
    if net is None:
        span = Span(program.file, 1, 1, 1, 1)
        raise SmashError([error("E0104", "file defines no network", span)], program.sources)
    return Expander(program, overrides).network(net)
