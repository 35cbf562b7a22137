"""Golden tests of the diagnostics: one bad .smash file per error, compared with exact stderr.

Each ``tests/diagnostics/NAME.smash`` sits next to ``NAME.expected``, the exact stderr of
``smashc check tests/diagnostics/NAME.smash`` run from the repository root. Refresh the
goldens (after checking the new output by eye) with::

    SMASHC_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/test_diagnostics.py

The only normalisation: diagnostics inside *imported* files carry the imported file's
absolute path, so the repository root in those paths is written as ``<ROOT>``.

The tests at the end pin down diagnostic bugs found and fixed earlier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, check_golden

from smashc.cli import main
from smashc.diagnostics import SmashError
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_text
from smashc.frontend.parser import parse

DIAG = ROOT / "tests" / "diagnostics"
CASES = sorted(DIAG.glob("*.smash"))

# The diagnostics each bad file must produce, in order (independent of the goldens, so that a
# careless golden refresh cannot silently accept a different error).
EXPECTED_CODES: dict[str, list[str]] = {
    "bank_does_not_exist": ["E0201"],
    "bank_never_written": ["E0202"],
    "duplicate_definition": ["E0103", "E0103"],
    "else_if": ["E0001"],
    "even_kernel": ["E0204"],
    "groups_conv": ["E0203"],
    "groups_smash": ["E0203"],
    "head_classes": ["E0205"],
    "import_cycle": ["E0302"],
    "import_directory": ["E0308", "E0308"],
    "import_not_smash": ["E0308", "E0308"],
    "import_missing": ["E0303", "E0303"],
    "input_not_whole_banks": ["E0206"],
    "missing_argument": ["E0102"],
    "mutual_recursion": ["E0301"],
    "nested_macros": ["E0207"],
    "nested_statements": ["E0207"],
    "nested_sums": ["E0207"],
    "nonpositive_kernel": ["E0204", "E0204"],
    "numeric_fields": ["E0104", "E0104", "E0104"],
    "positional_after_keyword": ["E0102"],
    "recursive_macro": ["E0301"],
    "several_errors": ["E0101", "E0201", "E0204", "E0101", "E0205", "E0205"],
    "sum_widths": ["E0205"],
    "syntax_missing_arrow": ["E0001"],
    "template_missing_argument": ["E0102"],
    "template_too_many_args": ["E0102"],
    "too_many_args": ["E0102", "E0102"],
    "two_networks": ["E0103"],
    "unexpected_character": ["E0002"],
    "unclosed_block": ["E0001"],
    "unclosed_brace": ["E0003"],
    "unexpected_eof": ["E0003"],
    "unknown_keyword": ["E0102"],
    "unknown_name": ["E0101"],
    "unknown_op": ["E0101"],
    "unknown_template": ["E0101"],
    "value_too_large": ["E0104", "E0104"],
    "write_not_multiple": ["E0205"],
    "write_too_many_chunks": ["E0205"],
    "write_widths_differ": ["E0205"],
}


# goldens whose bad files the tests write (a NUL byte, symlinks, many files)
WRITTEN_BY_TESTS = ("not_utf8", "import_nul", "import_chain", "import_loop")


def _normalise(text: str) -> str:
    return text.replace(str(ROOT) + os.sep, "<ROOT>/")


def _check(path: str, capsys) -> str:
    rc = main(["check", path])
    out, err = capsys.readouterr()
    assert rc == 1, f"smashc check {path} exited {rc}; stdout:\n{out}"
    assert out == ""
    return err


def _codes(err: str) -> list[str]:
    return [
        line.split("error[", 1)[1].split("]", 1)[0]
        for line in err.splitlines()
        if ": error[" in line and not line.startswith(" ")
    ]


def test_every_case_has_expected_codes():
    assert {p.stem for p in CASES} == set(EXPECTED_CODES)


def test_no_orphan_goldens():
    sources = {p.stem for p in CASES} | set(WRITTEN_BY_TESTS)
    orphans = [p.name for p in DIAG.glob("*.expected") if p.stem not in sources]
    assert orphans == []


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostic_golden(case, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    err = _check(case.relative_to(ROOT).as_posix(), capsys)
    check_golden(case.with_suffix(".expected"), _normalise(err))
    assert _codes(err) == EXPECTED_CODES[case.stem]


def test_headlines_point_into_files(capsys, monkeypatch):
    """Every headline is ``file:line:col: error[CODE]: message`` with a real location."""
    monkeypatch.chdir(ROOT)
    for case in CASES:
        err = _check(case.relative_to(ROOT).as_posix(), capsys)
        for line in err.splitlines():
            if ": error[" not in line or line.startswith(" "):
                continue
            where = line.split(": error[", 1)[0]
            file, lineno, col = where.rsplit(":", 2)
            assert file.endswith(".smash"), line
            assert int(lineno) >= 1 and int(col) >= 1, line


def test_not_utf8(tmp_path, capsys, monkeypatch):
    """A latin-1 byte (0xe9) in a comment. The file is written here so that no binary file
    needs committing; it lives at the same relative path as the other cases."""
    bad = tmp_path / "tests" / "diagnostics" / "not_utf8.smash"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(
        b"# A comment written in latin-1: caf\xe9\n"
        b"network latin1 {\n"
        b"    input 3 x 32 x 32\n"
        b"    classes 10\n"
        b"    head { gap -> linear(out=10) }\n"
        b"}\n"
    )
    monkeypatch.chdir(tmp_path)
    err = _check("tests/diagnostics/not_utf8.smash", capsys)
    check_golden(DIAG / "not_utf8.expected", err)
    assert _codes(err) == ["E0304"]


def _written_case(tmp_path: Path, monkeypatch, files: dict[str, bytes]) -> str:
    """Writes ``files`` (paths relative to tests/diagnostics) below ``tmp_path``, where the
    other cases would be, and returns the first one's path for ``smashc check``."""
    for rel, data in files.items():
        path = tmp_path / "tests" / "diagnostics" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    return f"tests/diagnostics/{next(iter(files))}"


def test_import_path_with_a_nul_byte(tmp_path, capsys, monkeypatch):
    """The NUL byte is written here, so that no binary file needs committing."""
    case = _written_case(
        tmp_path,
        monkeypatch,
        {"import_nul.smash": b'# An import path holding a NUL byte.\nimport "lib\0.smash"\n'},
    )
    err = _check(case, capsys)
    check_golden(DIAG / "import_nul.expected", err)
    assert _codes(err) == ["E0307"]


def test_import_chain_too_deep(tmp_path, capsys, monkeypatch):
    files = {"import_chain.smash": b'# 70 files importing one another.\nimport "chain/1.smash"\n'}
    for i in range(1, 70):
        files[f"chain/{i}.smash"] = f'import "{i + 1}.smash"\n'.encode()
    files["chain/70.smash"] = b"def act = relu\n"
    err = _check(_written_case(tmp_path, monkeypatch, files), capsys)
    check_golden(DIAG / "import_chain.expected", err)
    assert _codes(err) == ["E0309"]


def test_import_symlink_loop_and_long_name(tmp_path, capsys, monkeypatch):
    case = _written_case(
        tmp_path,
        monkeypatch,
        {
            "import_loop.smash": b"# A symlink loop and a file name longer than the system allows."
            b'\nimport "loop/a.smash"\nimport "' + b"n" * 300 + b'.smash"\n'
        },
    )
    loop = tmp_path / "tests" / "diagnostics" / "loop"
    loop.mkdir()
    (loop / "a.smash").symlink_to("b.smash")
    (loop / "b.smash").symlink_to("a.smash")
    err = _check(case, capsys)
    check_golden(DIAG / "import_loop.expected", err)
    assert _codes(err) == ["E0307", "E0307"]


def test_special_main_file_is_not_read(tmp_path, capsys, monkeypatch):
    """A pipe given as the file to check is refused without opening it (which would wait
    for a writer); so is a device, which would be read without end."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe.smash")
    err = _check("pipe.smash", capsys)
    assert err.startswith("pipe.smash:1:1: error[E0305]: cannot read file: it is a pipe, not a")
    err = _check("/dev/zero", capsys)
    assert err.startswith("/dev/zero:1:1: error[E0305]: cannot read file: it is a device, not")


def test_missing_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _check("nowhere.smash", capsys)
    assert err.startswith("nowhere.smash:1:1: error[E0305]: cannot read file: ")


@pytest.mark.parametrize(
    "argv,where",
    [
        (["search", "--preset", "smoke", "--out", "blocker"], "blocker"),
        (["search", "--preset", "smoke", "--out", "blocker/run"], "blocker/run"),
        (["train", "EX", "--preset", "smoke", "--out", "blocker/run"], "blocker/run"),
        (["compile", "EX", "-o", "blocker/pkg"], "blocker/pkg"),
        (["visualize", "EX", "-o", "blocker/d.svg"], "blocker"),
    ],
    ids=["search-out-is-a-file", "search-out-below-a-file", "train", "compile", "visualize"],
)
def test_an_output_that_cannot_be_written_is_reported(argv, where, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a folder\n")
    example = str(ROOT / "examples" / "resnet20.smash")
    rc = main([example if a == "EX" else a for a in argv])
    out, err = capsys.readouterr()
    assert rc == 1
    head = f"{where}:1:1: error[E0306]: cannot write here: a file is in the way"
    assert err.startswith(head), err
    assert "Traceback" not in err and out == ""


def test_several_files_report_each(capsys, monkeypatch):
    """``smashc check`` goes on after a failing file and exits 1."""
    monkeypatch.chdir(ROOT)
    files = ["tests/diagnostics/unknown_op.smash", "tests/diagnostics/even_kernel.smash"]
    rc = main(["check", *files])
    out, err = capsys.readouterr()
    assert rc == 1
    assert _codes(err) == ["E0101", "E0204"]


def test_bad_define_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc = main(["check", "-D", "width", "tests/diagnostics/unknown_op.smash"])
    _, err = capsys.readouterr()
    assert rc == 1
    assert "error[E0102]: -D expects NAME=INTEGER, got 'width'" in err


# --- known bugs --------------------------------------------------------------------------------

_NET = """\
network n {{
    input 3 x 32 x 32
    classes 10
{body}
    head {{ gap -> linear(out=10) }}
}}
"""


def _diagnostics(text: str, file: str = "t.smash"):
    try:
        program = load_text(text, file)
        if program.network is not None:
            expand(program)
    except SmashError as exc:
        return exc.diagnostics
    return ()


@pytest.mark.parametrize(
    "body",
    [
        "    stem { conv(out=16) -> rleu }",
        "    stem { conv(out=16, kernel=2) }",
        "    block = nothing(1)",
    ],
)
def test_no_spurious_missing_head_after_failed_stage(body):
    messages = [d.message for d in _diagnostics(_NET.format(body=body))]
    assert len(messages) == 1, messages


def test_errors_in_later_stages_are_reported_too():
    body = (
        "    stem { conv(out=16) -> rleu }\n"
        "    block {\n"
        "        banks 1 x 16\n"
        "        layer read 0 write 0 = conv(out=16, kernel=4)\n"
        "    }"
    )
    codes = [d.code for d in _diagnostics(_NET.format(body=body))]
    assert codes == ["E0101", "E0204"]


@pytest.mark.parametrize(
    "body",
    [
        "    stem { conv(out=16) -> bn relu }",
        "    stem { conv(out=16) bn -> relu }",
        "    block {\n        banks 1 x 16\n        layer read 0 write 0 = bn relu\n    }",
    ],
)
def test_missing_arrow_after_other_statements(body):
    with pytest.raises(SmashError) as info:
        parse(_NET.format(body=body))
    assert info.value.diagnostics[0].message.startswith("ops in a sequence are joined with '->'")


def test_expected_list_names_only_acceptable_tokens():
    with pytest.raises(SmashError) as info:
        parse("network n { stem { conv(out=16) bn } }")
    message = info.value.diagnostics[0].message
    assert "')'" not in message and "'%'" not in message


def test_recursive_macro_is_called_a_macro():
    text = "def loop(w) = conv(out=w) -> loop(w)\n" + _NET.format(
        body="    stem { conv(out=16) }\n"
        "    block {\n        banks 1 x 16\n        layer read 0 write 0 = loop(16)\n    }"
    )
    (diag,) = _diagnostics(text)
    assert diag.code == "E0301"
    assert "template" not in diag.message


@pytest.mark.parametrize("sep", ["\u2028", "\f", "\x1c"])
def test_excerpt_shows_the_reported_line(sep):
    text = f"# odd{sep}comment\n" + _NET.format(body="    stem { conv(out=16) -> rleu }")
    with pytest.raises(SmashError) as info:
        expand(load_text(text, "t.smash"))
    diag = info.value.diagnostics[0]
    assert diag.span.line == 5
    rendered = info.value.render().splitlines()
    assert rendered[2] == "5 |     stem { conv(out=16) -> rleu }"


# --- networks too large to give weights to: refused before anything is allocated --------

COMPILE_CASES = sorted((DIAG / "compile").glob("*.smash"))


def _no_weights(*args, **kwargs):
    raise AssertionError("weights were built for a network over the cap")


@pytest.mark.parametrize("case", COMPILE_CASES, ids=lambda p: p.stem)
@pytest.mark.parametrize("emit", [["-o", "PKG"], ["--emit", "code"]], ids=["package", "code"])
def test_network_over_the_parameter_cap(case, emit, tmp_path, capsys, monkeypatch):
    """``compile -o`` and ``--emit code`` stop at the largest layer before building any
    module, and write nothing."""
    from smashc.backends import fx

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(fx._Builder, "build", _no_weights)
    emit = [str(tmp_path / "pkg") if a == "PKG" else a for a in emit]
    rc = main(["compile", case.relative_to(ROOT).as_posix(), *emit])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    check_golden(case.with_suffix(".expected"), err)
    assert _codes(err) == ["E0406"]
    assert not (tmp_path / "pkg").exists()


def test_parameter_cap_is_checked_before_torch_is_imported():
    """In a fresh interpreter: the refusal comes before the fx backend (and torch) loads."""
    code = (
        "import sys; from smashc.cli import main; "
        "rc = main(['compile', 'tests/diagnostics/compile/too_many_params.smash', '-o', "
        "'never']); assert 'torch' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert ": error[E0406]: the network has 2,583,691,738 parameters" in done.stderr
    assert not (ROOT / "never").exists()


def test_parameter_cap_is_a_flag(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    case = "tests/diagnostics/compile/too_many_params.smash"
    assert main(["compile", case, "--emit", "code", "--max-params", "1000"]) == 1
    assert "more than the cap of 1,000;" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="1"):
        main(["compile", case, "--max-params", "0"])
    assert "--max-params: expected a positive integer, got '0'" in capsys.readouterr().err
    small = "examples/resnet20.smash"
    assert main(["compile", small, "--emit", "code", "--max-params", "100000"]) == 1
    assert "the network has 269,722 parameters, more than the cap of 100,000" in (
        capsys.readouterr().err
    )


TWO_CONVS = (
    "network m {\n    input 3 x 8 x 8\n    classes 2\n"
    "    stem { conv(out=1000) -> conv(out=10) }\n    head { gap -> linear(out=2) }\n}\n"
)


def test_weights_over_the_memory_available():
    """Below the cap but more than the memory there is: E0407 at the largest layer."""
    from smashc.backends.budget import check_fits
    from smashc.pipeline import compile_text

    ir = compile_text(TWO_CONVS)
    check_fits(ir, available=10**9)  # 117,022 parameters: 468 KB
    with pytest.raises(SmashError) as info:
        check_fits(ir, available=400_000)
    d = info.value.diagnostics[0]
    assert d.headline() == (
        "<string>:4:30: error[E0407]: the network's weights need 0.4 MiB (117,022 "
        "parameters), more than the 0.4 MiB of memory available; the largest layer is this conv"
    )
    assert d.notes[0].message == "this conv has 90,000 of them (0.3 MiB)"


def test_runtime_free_module_checks_first(monkeypatch):
    """The runtime's door (``compiler.free_module``, what ``smashc train`` uses)."""
    from smashc import compiler
    from smashc.backends import fx
    from smashc.pipeline import compile_text

    ir = compile_text(TWO_CONVS)
    monkeypatch.setattr(fx._Builder, "build", _no_weights)
    with pytest.raises(SmashError) as info:
        compiler.free_module(ir, max_params=100_000)
    assert info.value.diagnostics[0].code == "E0406"
    assert str(info.value.diagnostics[0].span) == "<string>:4:30"


@pytest.mark.parametrize("command", ["check", "fmt", "expand", "compile"])
def test_deep_nesting_is_located_by_every_command(command, capsys, monkeypatch):
    """250 nested 'if's crashed check, expand, fmt and compile with a VisitError."""
    monkeypatch.chdir(ROOT)
    case = "tests/diagnostics/nested_statements.smash"
    assert main([command, case]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"{case}:37:69: error[E0207]: statements ('if', 'repeat', 'block') ")
