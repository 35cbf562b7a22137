"""Source spans, the one Diagnostic type, its `file:line:col` rendering, and SmashError."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A 1-based, end-exclusive region of one source file."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOSPAN = Span("<unknown>", 0, 0, 0, 0)
COMMAND_LINE = Span("<command line>", 1, 1, 1, 1)  # where flag and setting errors point


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" or "warning"
    code: str
    message: str
    span: Span
    notes: tuple[Note, ...] = field(default=())

    def headline(self) -> str:
        return f"{self.span}: {self.severity}[{self.code}]: {self.message}"


def error(code: str, message: str, span: Span, *notes: Note) -> Diagnostic:
    return Diagnostic("error", code, message, span, tuple(notes))


EXCERPT_WIDTH = 120  # characters of a source line shown under a diagnostic


def _excerpt(span: Span, sources: Mapping[str, str]) -> list[str]:
    text = sources.get(span.file)
    if text is None or span.line < 1:
        return []
    lines = text.split("\n")  # Lark counts only \n as a line break
    if span.line > len(lines):
        return []
    # control characters would act on the terminal: each shows as one replacement character
    line = "".join(c if c.isprintable() else "\ufffd" for c in lines[span.line - 1].expandtabs(1))
    width = 1
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    column = span.column
    if len(line) > EXCERPT_WIDTH:  # a window around the span (a long line, or not source text)
        start = max(0, min(column - 1 - EXCERPT_WIDTH // 4, len(line) - EXCERPT_WIDTH))
        head, tail = ("..." if start else ""), ("..." if start + EXCERPT_WIDTH < len(line) else "")
        line = head + line[start : start + EXCERPT_WIDTH] + tail
        column = column - start + len(head)
        width = min(width, EXCERPT_WIDTH + len(head) - column + 1)
    caret = " " * (column - 1) + "^" * max(1, min(width, len(line) - column + 1))
    gutter = " " * len(str(span.line))
    return [f"{gutter} |", f"{span.line} | {line}", f"{gutter} | {caret}"]


def render(diag: Diagnostic, sources: Mapping[str, str]) -> str:
    """``file:line:col: error[CODE]: message``, the source line with a caret, then the notes."""
    out = [diag.headline(), *_excerpt(diag.span, sources)]
    for note in diag.notes:
        where = f"{note.span}: " if note.span is not None else ""
        out.append(f"  = note: {where}{note.message}")
    return "\n".join(out)


class SmashError(Exception):
    """A user error: one or more located diagnostics. Never a bug in smashc."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: Mapping[str, str] | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(render(d, self.sources) for d in self.diagnostics)


class DiagnosticBag:
    """Collects diagnostics so that all errors of a file are reported together."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, diag: Diagnostic) -> None:
        if diag not in self.items:
            self.items.append(diag)

    def error(self, code: str, message: str, span: Span, *notes: Note) -> None:
        self.add(error(code, message, span, *notes))

    def raise_if_any(self, sources: Mapping[str, str] | None = None) -> None:
        if self.items:
            raise SmashError(self.items, sources)
