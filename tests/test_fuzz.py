"""Fuzzing the front end: mutated and random inputs must fail only with located SmashErrors.

Seeds are the bundled examples, the snippets in tests/snippets, the standard library and
a few small programs. Each input gets one to three mutations (character spans and tokens
deleted, duplicated, swapped or replaced; keywords, punctuation, digits and huge numbers
inserted; now and then invalid UTF-8 bytes, read through ``load_file``). Everything is
driven by ``random.Random(0)``, so a failure reproduces exactly.

A network that the front end accepts must also survive the flatten round trip
(``expand(load_text(print(to_module(net)))) == net``).

A second generator writes whole programs: statements (``if``/``else``, ``repeat``,
``block``) nested up to and past their limits and wide with siblings, nested sums, deep
expressions, and numeric fields (channels, kernels, strides, dilations, groups, eps,
momentum, slopes, input sizes, classes) drawn now and then from extreme values. Each goes
through the front end, the pass pipeline and the weight budget (nothing is allocated) and
must end accepted or in a located SmashError.

Crashes with a known cause are tolerated here (and counted) but each is pinned by a strict
xfail test at the end of this file; remove its ``KNOWN_CRASHES`` entry once it is fixed.
"""

from __future__ import annotations

import random
import re
import time
import traceback
from importlib import resources
from pathlib import Path

import pytest
from support import TESTS, example_files

from smashc.diagnostics import SmashError
from smashc.frontend import flatten, printer
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file, load_text
from smashc.frontend.parser import parse

N_INPUTS = 2400  # about 15 s on a laptop-class CPU

KEYWORDS = (
    "import network template def input classes let stem transition head block banks layer "
    "read write overwrite output repeat in if else sum x and or not true false "
    "conv bn relu relu6 identity leaky_relu avgpool maxpool gap linear chanpad smash "
    "in_channels std min max out kernel groups act"
).split()
PUNCT = [
    "{", "}", "(", ")", ",", "=", "->", "..", "|", "#", '"', "+", "-", "*", "/", "%", "**",
    "<", "<=", ">", ">=", "==", "!=", ".", ";", "@", "$", "\t", "\n", "\r\n", "\\", "'",
    "\u00e9", "\u2028", "\x00", "\ufeff", " ",
]  # fmt: skip
NUMBERS = [
    "0", "1", "-1", "2", "3", "7", "16", "4096", "100001", "9**9**9", "10**400", "2 ** 64",
    "-(2 ** 48)", "99999999999999999999999999999", "1e999", "0.0", "1.5e-7", "(1, 2)",
    "(1,)", "(0, -1)", "(3, 5, 7)", "0..0", "5..2",
]  # fmt: skip

SEEDS = [
    "network n { input 3 x 8 x 8 classes 10 head { gap -> linear(out=10) } }",
    "def u(w, k=3) = bn -> relu -> conv(out=w, kernel=k)\n"
    "network n(w=8) {\n input 3 x 8 x 8\n classes 4\n stem { conv(out=w) }\n"
    " block b {\n  banks 1 x w, 2 x 4\n  layer read 0 write 1, 2 = u(w)\n"
    "  layer read 0..3 overwrite 0 = sum { u(w) | identity -> conv(out=w, kernel=1) }\n"
    "  output 0, 1..3\n }\n head { gap -> linear(out=classes) }\n}\n",
    "import std\nnetwork n {\n input 3 x 8 x 8\n classes 10\n stem { conv(out=16) }\n"
    " block = dense_block(2, 4)\n transition { conv(out=8, kernel=1) -> avgpool }\n"
    " block = fractal_block(2, 8)\n head { gap -> linear(out=10) }\n}\n",
    "template t(n, w=2) {\n banks 1 x in_channels, n x w\n repeat i in 0..n {\n"
    "  if i % 2 == 0 { layer read 0..i + 1 write i + 1 = conv(out=w) } else {\n"
    "   layer read 0 write i + 1 = smash(out=w, c0=conv(kernel=5, groups=1, act=relu6)) }\n"
    " }\n}\nnetwork n {\n input 2 x 4 x 4\n classes 3\n let k = max(1, 2) ** 2 - 1\n"
    " block = t(3)\n head { gap -> linear(out=3) }\n}\n",
    "network n(a=1, b=2.5, c=true) {\n let t = (a, -a)\n let u = not c or a < 2 and b >= 1\n"
    " input 1 x 1 x 1\n classes 1\n repeat 3 { }\n if u { } else { }\n"
    " head { linear(out=1, bias=false) }\n}\n",
]

TOKEN_RE = re.compile(r"\s+|\w+|->|\.\.|\*\*|[<>=!]=|.", re.S)


def _seed_texts() -> list[tuple[str, str]]:
    seeds = [(p.name, p.read_text(encoding="utf-8")) for p in example_files()]
    seeds += [
        (p.name, p.read_text(encoding="utf-8")) for p in sorted(TESTS.glob("snippets/*.smash"))
    ]
    std = resources.files("smashc.stdlib").joinpath("std.smash").read_text(encoding="utf-8")
    seeds.append(("std.smash", std))
    seeds += [(f"seed{i}", s) for i, s in enumerate(SEEDS)]
    return seeds


def _insertion(rng: random.Random) -> str:
    pool = rng.choice((KEYWORDS, PUNCT, NUMBERS, None))
    if pool is None:
        return str(rng.randrange(10 ** rng.randint(1, 4)))
    text = rng.choice(pool)
    return rng.choice(("", " ")) + text + rng.choice(("", " "))


def _span(rng: random.Random, n: int) -> tuple[int, int]:
    i = rng.randrange(n + 1)
    return i, min(n, i + rng.randint(1, 20))


def _mutate_chars(text: str, rng: random.Random) -> str:
    n = len(text)
    op = rng.randrange(4)
    if op == 0:  # delete a span
        i, j = _span(rng, n)
        return text[:i] + text[j:]
    if op == 1:  # duplicate a span
        i, j = _span(rng, n)
        return text[:j] + text[i:j] + text[j:]
    if op == 2:  # swap two spans
        a, b = sorted((_span(rng, n), _span(rng, n)))
        if a[1] > b[0]:
            return text
        return (
            text[: a[0]] + text[b[0] : b[1]] + text[a[1] : b[0]] + text[a[0] : a[1]] + text[b[1] :]
        )
    i = rng.randrange(n + 1)  # insert something
    return text[:i] + _insertion(rng) + text[i:]


def _mutate_tokens(text: str, rng: random.Random) -> str:
    toks = TOKEN_RE.findall(text)
    if not toks:
        return _insertion(rng)
    i = rng.randrange(len(toks))
    op = rng.randrange(4)
    if op == 0:
        del toks[i]
    elif op == 1:
        toks.insert(i, toks[i])
    elif op == 2:
        j = rng.randrange(len(toks))
        toks[i], toks[j] = toks[j], toks[i]
    else:
        toks[i] = _insertion(rng)
    return "".join(toks)


def _random_soup(rng: random.Random) -> str:
    return " ".join(_insertion(rng) for _ in range(rng.randint(1, 40)))


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        text = (_mutate_chars if rng.random() < 0.5 else _mutate_tokens)(text, rng)
    return text


def _bad_bytes(text: str, rng: random.Random) -> bytes:
    data = bytearray(text.encode("utf-8"))
    for _ in range(rng.randint(1, 3)):
        junk = rng.choice(
            [
                bytes([rng.randrange(0x80, 0x100)]),
                b"\xff\xfe",
                b"\xed\xa0\x80",
                b"\xc3",
                b"\xe9t\xe9",
            ]
        )
        i = rng.randrange(len(data) + 1)
        data[i:i] = junk
    return bytes(data)


FRONT_END_CODES = re.compile(r"E0[0-3]\d\d")  # syntax, names and values, blocks, imports


def _check_location(span, sources: dict[str, str]) -> None:
    """``span`` starts inside the text of its file (or one past the end of a line)."""
    assert span.file in sources, (span, sorted(sources))
    lines = sources[span.file].split("\n")  # Lark counts only \n as a line break
    assert 1 <= span.line <= len(lines), (span, len(lines))
    assert 1 <= span.column <= len(lines[span.line - 1]) + 1, (span, lines[span.line - 1])


def _check_error(exc: SmashError, family: str | None = None) -> None:
    """``exc`` is a front-end error: each diagnostic has a front-end code (of ``family``, e.g.
    ``"E00"``, when given) and a location inside the source that it names."""
    assert exc.diagnostics, "SmashError without diagnostics"
    for d in exc.diagnostics:
        assert FRONT_END_CODES.fullmatch(d.code), d
        assert family is None or d.code.startswith(family), d
        _check_location(d.span, exc.sources)
        for note in d.notes:
            if note.span is not None:
                _check_location(note.span, exc.sources)
    assert exc.render().startswith(f"{exc.diagnostics[0].span}: error[")


def _flatten_roundtrip(net) -> None:
    text = printer.module(flatten.to_module(net))
    again = expand(load_text(text, "flat.smash"))
    assert again == net, text


# Crash signatures with a known cause (none open): add one with a strict xfail test below
# when fuzzing finds a bug that cannot be fixed at once.
KNOWN_CRASHES: dict = {}


def _classify(exc: BaseException, tb: str) -> str | None:
    for name, match in KNOWN_CRASHES.items():
        if match(exc, tb):
            return name
    return None


def _inputs(tmp: Path):
    rng = random.Random(0)
    seeds = _seed_texts()
    for k in range(N_INPUTS):
        roll = rng.random()
        if roll < 0.05:
            yield k, _random_soup(rng), None
            continue
        name, seed = rng.choice(seeds)
        text = _mutate(seed, rng)
        if roll < 0.15:
            path = tmp / f"case{k}.smash"
            path.write_bytes(_bad_bytes(text, rng))
            yield k, text, path
        else:
            yield k, text, None


def test_fuzz_front_end(tmp_path):
    unknown: list[str] = []
    known: dict[str, int] = {}
    outcomes = {"ok": 0, "error": 0}
    start = time.perf_counter()
    slowest = (0.0, -1)
    for k, text, path in _inputs(tmp_path):
        t0 = time.perf_counter()
        try:
            try:
                program = load_file(path) if path else load_text(text, "fuzz.smash", tmp_path)
                if program.network is not None:
                    net = expand(program)
                    outcomes["ok"] += 1
                    _flatten_roundtrip(net)
                else:  # definitions only: they print and parse back to the same module
                    again = parse(printer.module(program.main), "again.smash")
                    assert again == program.main, printer.module(program.main)
            except SmashError as exc:
                outcomes["error"] += 1
                _check_error(exc)
        except Exception as exc:  # noqa: BLE001 - anything else is a front-end bug
            tb = traceback.format_exc()
            kind = _classify(exc, tb)
            if kind is not None:
                known[kind] = known.get(kind, 0) + 1
            else:
                unknown.append(f"--- input #{k} ({'file' if path else 'text'}):\n{text!r}\n{tb}")
        slowest = max(slowest, (time.perf_counter() - t0, k))
    elapsed = time.perf_counter() - start
    print(f"fuzz: {N_INPUTS} inputs in {elapsed:.1f}s, {outcomes}, known crashes {known}, "
          f"slowest #{slowest[1]} {slowest[0]:.2f}s")  # fmt: skip
    assert not unknown, f"{len(unknown)} unexpected crashes; first ones:\n" + "\n".join(unknown[:3])
    assert outcomes["error"] > N_INPUTS // 4 and outcomes["ok"] > 50  # the mutations do bite


def test_fuzz_inputs_are_reproducible(tmp_path):
    first = [case[1] for case, _ in zip(_inputs(tmp_path), range(50), strict=False)]
    again = [case[1] for case, _ in zip(_inputs(tmp_path), range(50), strict=False)]
    assert first == again


# --- crashes fuzzing found once, kept as regression tests -------------------------------------


def _front_end(text: str) -> None:
    program = load_text(text, "t.smash")
    if program.network is not None:
        expand(program)


def _fails_at(text: str, where: str, message: str) -> SmashError:
    """The front end rejects ``text`` (as ``t.smash``) with located front-end errors of the
    family of ``where`` (``LINE:COL: error[CODE]``, family ``E00`` for ``E0001``); the first
    reads ``t.smash:WHERE]: ...`` and mentions ``message``."""
    with pytest.raises(SmashError) as info:
        _front_end(text)
    exc = info.value
    _check_error(exc, family=where.split("[")[1][:3])
    headline = exc.diagnostics[0].headline()
    assert headline.startswith(f"t.smash:{where}: ") and message in headline, exc.render()
    return exc


SYNTAX_ERRORS = {  # input -> where the error is, what it says
    "network n {\n    classes 10 10\n}\n": ("2:16: error[E0001]", "unexpected '10'"),
    "def m = bn -> relu conv\n": ("1:20: error[E0001]", "joined with '->'; found 'conv'"),
    "network n {\n    input 3 x 32 x 32\n    classes 10\n    block { banks 4 16 }\n}\n": (
        "4:21: error[E0001]",
        "'banks 4 x 16'; found '16'",
    ),
}


@pytest.mark.parametrize(
    "text",
    [
        "network n {\n    classes 10 10\n}\n",
        "def m = bn -> relu conv\n",
        "network n {\n    input 3 x 32 x 32\n    classes 10\n    block { banks 4 16 }\n}\n",
    ],
)
def test_syntax_error_does_not_crash(text):
    _fails_at(text, *SYNTAX_ERRORS[text])


def test_huge_integer_literal():
    text = "network n { let a = " + "1" * 5000 + " }"
    _fails_at(text, "1:21: error[E0104]", "integer literal with 5000 digits is too large")


@pytest.mark.parametrize(
    "nested, column",
    [("-" * 1000 + "1", 149), ("not " * 1000 + "true", 533), ("(" * 1000 + "1" + ",)" * 1000, 149)],
)
def test_deep_nesting(nested, column):
    """Reported at the first operator nested one level too deep (the 129th)."""
    _fails_at(
        "network n { let a = " + nested + " }",
        f"1:{column}: error[E0207]",
        "expressions nest too deeply: more than 128 levels",
    )


def test_moderate_nesting_is_fine():
    # the expression is evaluated; only the declarations this network lacks are errors
    exc = _fails_at(
        "network n { let a = " + "-" * 128 + "1" + " }",
        "1:1: error[E0104]",
        "network 'n' has no 'input' declaration",
    )
    assert all("network 'n' has no " in d.message for d in exc.diagnostics), exc.render()
    parse("network n { let a = " + "(" * 300 + "1" + ")" * 300 + " }")


def test_infinite_float_argument():
    text = (
        "network n { input 3 x 8 x 8 classes 10 stem { bn(eps=1e999) } "
        "head { gap -> linear(out=10) } }"
    )
    _fails_at(text, "1:54: error[E0104]", "argument 'eps' of bn must be a positive number, got inf")


def test_empty_output_selection():
    text = (
        "network n { input 3 x 8 x 8 classes 10 block { banks 1 x 3, 1 x 4 "
        "layer read 0 write 1 = conv(out=4) output 0..0 } head { gap -> linear(out=10) } }"
    )
    _fails_at(text, "1:102: error[E0104]", "output lists no banks")


def _nested(statements: int, sums: int, expressions: int) -> str:
    """A network whose stem sits in ``statements`` ifs and repeats and holds ``sums`` nested
    sums around a conv whose kernel is an expression ``expressions`` operators deep."""
    kernel = "1" + "+0" * expressions
    ops = "sum { " * sums + f"conv(out=4, kernel={kernel})" + " | identity }" * sums
    opens = "".join("if true { " if i % 2 else "repeat 1 { " for i in range(statements))
    return (
        "network n {\n input 3 x 8 x 8\n classes 2\n"
        + opens + "stem { conv(out=4) -> " + ops + " }" + " }" * statements
        + "\n head { gap -> linear(out=2) }\n}\n"
    )  # fmt: skip


def test_nesting_at_every_limit_at_once_goes_through_every_stage(tmp_path):
    """The deepest accepted program is checked, printed, compiled, exported and loaded, with
    room to spare on the stack (run here under a recursion limit well below Python's)."""
    import sys

    import torch

    import smashc
    from smashc import compiler
    from smashc.frontend.parser import MAX_EXPRESSION_DEPTH, MAX_STATEMENT_DEPTH, MAX_SUM_DEPTH

    text = _nested(MAX_STATEMENT_DEPTH, MAX_SUM_DEPTH, MAX_EXPRESSION_DEPTH)
    program = load_text(text, "deep.smash")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(_stack()) + 600)  # 400 frames short of the default
    try:
        again = parse(printer.module(program.main), "again.smash")
        net = expand(program)
        _flatten_roundtrip(net)
        ir = compiler.for_training(program)
        gm = compiler.free_module(ir)
        compiler.export(gm, ir, tmp_path / "pkg")
        model = smashc.load(tmp_path / "pkg")
    finally:
        sys.setrecursionlimit(limit)
    assert again == program.main
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 2)
    for deeper in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        d = [MAX_STATEMENT_DEPTH, MAX_SUM_DEPTH, MAX_EXPRESSION_DEPTH]
        d = [a + b for a, b in zip(d, deeper, strict=True)]
        with pytest.raises(SmashError) as info:
            load_text(_nested(*d), "deep.smash")
        assert [x.code for x in info.value.diagnostics] == ["E0207"]
        _check_error(info.value)


def _stack() -> list:
    import inspect

    return inspect.stack(0)


# --- generated programs: deep and wide statement nestings, extreme numeric fields -----------

N_GENERATED = 120

HUGE = ["0", "-1", "1", "2", "3", "2 ** 20", "2 ** 24", "2 ** 31", "2 ** 40 + 1", "2 ** 47",
        "2 ** 48", "2 ** 48 + 1", "10 ** 30", "1.5", "-0.5", "(1, 2 ** 40)", "(0, 1)"]  # fmt: skip
FLOATS = ["0", "-1", "1e-300", "1e300", "1.5", "-0.1", "0.5", "1", "1e999", "2 ** 47"]


EXTREME = [0.0]  # the chance that a numeric field is drawn from its pool (set per program)


def _number(rng: random.Random, pool: list[str], usual: str) -> str:
    return rng.choice(pool) if rng.random() < EXTREME[0] else usual


def _op(rng: random.Random, width: str) -> str:
    """One op call whose numeric fields are now and then extreme."""
    kind = rng.randrange(6)
    if kind == 0:
        return (
            f"conv(out={_number(rng, HUGE, width)}, kernel={_number(rng, HUGE, '3')}, "
            f"stride={_number(rng, HUGE, '1')}, dilation={_number(rng, HUGE, '1')}, "
            f"groups={_number(rng, HUGE, '1')})"
        )
    if kind == 1:
        return f"bn(eps={_number(rng, FLOATS, '1e-5')}, momentum={_number(rng, FLOATS, '0.1')})"
    if kind == 2:
        return f"leaky_relu(slope={_number(rng, FLOATS, '0.1')})"
    if kind == 3:
        pool = rng.choice(["avgpool", "maxpool"])
        return f"{pool}(kernel={_number(rng, HUGE, '1')}, stride={_number(rng, HUGE, '1')})"
    if kind == 4:
        return f"chanpad(out={_number(rng, HUGE, width)})"
    return rng.choice(["relu", "identity", "relu6"])


def _seq(rng: random.Random, width: str, sums: int) -> str:
    ops = [_op(rng, width) for _ in range(rng.randint(1, 3))]
    if sums:
        ops.append("sum { " + _seq(rng, width, sums - 1) + " | identity }")
    return " -> ".join(ops)


def _expr(rng: random.Random, depth: int) -> str:
    return "1" + "".join(rng.choice(["+0", "*1", "-0"]) for _ in range(depth))


def _nest(rng: random.Random, depth: int, inner: str, wide: int) -> str:
    """``inner`` inside ``depth`` levels of if/else and repeat, each level with ``wide``
    empty or trivial siblings."""
    for _ in range(depth):
        siblings = " ".join(rng.choice(["if false { }", "repeat 0 { }", "let q = 1"])
                            for _ in range(wide))  # fmt: skip
        if rng.random() < 0.5:
            inner = f"if {_expr(rng, 2)} == 1 {{ {siblings} {inner} }} else {{ {siblings} }}"
        else:
            inner = f"repeat {_number(rng, ['0', '2', '2 ** 20'], '1')} {{ {siblings} {inner} }}"
    return inner


def _generated(rng: random.Random) -> str:
    """A network with nested statements around its stem and inside its block, nested sums,
    deep expressions and extreme numeric fields; limits are crossed now and then."""
    EXTREME[0] = rng.choice([0.0, 0.0, 0.03, 0.1, 0.3])
    deep = lambda top: rng.choice([0, 1, 3, 8, 20, 31, top])  # noqa: E731
    width = rng.choice(["8", "8", "8", "2 ** 24", "2 ** 47", _number(rng, HUGE, "8")])
    stem = f"stem {{ conv(out=8) -> {_seq(rng, '8', deep(33))} }}"
    layer = f"layer read 0 write 1 = {_seq(rng, width, deep(2))}"
    inside = _nest(rng, min(deep(33), 31), layer, rng.choice([0, 1, 5, 20]))
    block = f"block {{ banks 1 x 8, 1 x {width} {inside} output 1 }}"
    outer = deep(33)
    body = _nest(rng, outer, stem if rng.random() < 0.5 else "", rng.choice([0, 2, 20]))
    dims = [_number(rng, HUGE, "8") for _ in range(2)]
    return (
        f"network g {{\n  input 3 x {dims[0]} x {dims[1]}\n"
        f"  classes {_number(rng, HUGE, '2')}\n  let e = {_expr(rng, deep(130))}\n"
        f"  {body if 'stem' in body else body + ' ' + stem}\n  {block}\n"
        "  head { gap -> linear(out=classes) }\n}\n"
    )


def _compile_or_located_error(text: str) -> str:
    """Front end, passes and the weight budget (nothing is allocated): "ok" or the first
    error code; any error must be a located SmashError."""
    from smashc.backends.budget import check_fits
    from smashc.pipeline import compile_program

    try:
        program = load_text(text, "gen.smash")
        check_fits(compile_program(program).ir)
        return "ok"
    except SmashError as exc:
        assert exc.diagnostics, "SmashError without diagnostics"
        sources = exc.sources or {"gen.smash": text}
        for d in exc.diagnostics:
            assert re.fullmatch(r"E0\d{3}", d.code), d
            _check_location(d.span, sources)
        return exc.diagnostics[0].code


def test_fuzz_generated_nestings_and_numbers():
    rng = random.Random(1)
    codes: dict[str, int] = {}
    slowest = (0.0, -1)
    for k in range(N_GENERATED):
        text = _generated(rng)
        t0 = time.perf_counter()
        try:
            code = _compile_or_located_error(text)
        except Exception as exc:  # noqa: BLE001 - anything else is a bug
            raise AssertionError(f"input #{k} crashed:\n{text}") from exc
        codes[code] = codes.get(code, 0) + 1
        slowest = max(slowest, (time.perf_counter() - t0, k))
    print(f"slowest #{slowest[1]} {slowest[0]:.2f}s")
    print(f"generated: {N_GENERATED} programs, outcomes {sorted(codes.items())}")
    # the generator reaches both sides of each limit: accepted programs, nesting errors,
    # value errors and over-the-cap networks
    assert codes.get("ok", 0) > 10 and codes.get("E0207", 0) > 10, codes
    assert codes.get("E0104", 0) > 10 and codes.get("E0406", 0) > 0, codes
