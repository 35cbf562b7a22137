"""Reads .smash files, follows imports, and gathers every definition visible to the main file."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from smashc.diagnostics import Diagnostic, DiagnosticBag, Note, SmashError, Span, error
from smashc.frontend import ast
from smashc.frontend.parser import parse


@dataclass
class Program:
    """A parsed main file with the macros and templates of it and everything it imports."""

    main: ast.Module
    file: str
    macros: dict[str, ast.Macro] = field(default_factory=dict)
    templates: dict[str, ast.Template] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def network(self) -> ast.Network | None:
        nets = [i for i in self.main.items if isinstance(i, ast.Network)]
        return nets[0] if nets else None


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        text = data.decode("utf-8", errors="replace")
        span = Span(file, line, col, line, col + 1)
        msg = f"file is not valid UTF-8: {exc.reason} in the bytes from 0x{data[exc.start]:02x} on"
        raise SmashError([error("E0304", msg, span)], {file: text}) from None


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (shorter messages)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


MAX_SOURCE_BYTES = 16 * 2**20  # far above any real network; a bound on what is read
MAX_IMPORT_DEPTH = 64  # files importing files; the loader follows imports recursively


def read_source(path: str | Path) -> tuple[str, str]:
    """(display name, text) of a file; SmashError if it is unreadable, not a regular file
    (a device or pipe would be read without end), too large or not UTF-8."""
    name = str(path)
    span = Span(name, 1, 1, 1, 1)
    data = b""
    try:  # stat first: opening a pipe would wait for a writer
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_SOURCE_BYTES:
            with open(path, "rb") as f:
                data = f.read(MAX_SOURCE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) else "the path holds a NUL byte"
        raise SmashError([error("E0305", f"cannot read file: {reason}", span)]) from None
    if not stat.S_ISREG(info.st_mode):
        msg = f"cannot read file: it is {_kind(info.st_mode)}, not a .smash source"
        raise SmashError([error("E0305", msg, span)])
    if info.st_size > MAX_SOURCE_BYTES or len(data) > MAX_SOURCE_BYTES:
        msg = f"cannot read file: larger than the {MAX_SOURCE_BYTES // 2**20} MiB a source may be"
        raise SmashError([error("E0305", msg, span)])
    return name, _decode(data, name)


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _printable(target: str) -> str:
    """An import target for a message: control characters written as escapes."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in target)


def _import_path(imp: ast.Import, base: Path | None) -> Path | Diagnostic | None:
    """The regular .smash file a path import names, a diagnostic saying why it cannot be
    imported, or None when nothing is there. Only ``stat`` touches the file: nothing is
    read before it is known to be a .smash source."""
    shown = _printable(imp.target)
    bad = next((c for c in imp.target if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        msg = f"import path '{shown}' holds the control character U+{ord(bad):04X}"
        return error("E0307", msg, imp.span)
    try:
        path = ((base or Path.cwd()) / imp.target).resolve()
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except RuntimeError:  # Path.resolve on a symlink loop (Python 3.11, 3.12)
        return error("E0307", f"cannot import file '{shown}': a symlink loop", imp.span)
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror
        return error("E0307", f"cannot import file '{shown}': {reason}", imp.span)
    if not stat.S_ISREG(info.st_mode):
        msg = f"cannot import file '{shown}': it is {_kind(info.st_mode)}"
        return error("E0308", msg, imp.span)
    if path.suffix != ".smash":
        where = "" if Path(imp.target).name == path.name else f" (it leads to '{path}')"
        msg = f"cannot import file '{shown}'{where}: only files named *.smash can be imported"
        return error("E0308", msg, imp.span)
    return path


def _stdlib_file(name: str) -> tuple[str, str] | None:
    ref = resources.files("smashc.stdlib").joinpath(f"{name}.smash")
    if not ref.is_file():
        return None
    return f"<stdlib>/{name}.smash", ref.read_text(encoding="utf-8")


class _Loader:
    def __init__(self) -> None:
        self.bag = DiagnosticBag()
        self.sources: dict[str, str] = {}
        self.done: dict[str, ast.Module] = {}
        self.macros: dict[str, ast.Macro] = {}
        self.templates: dict[str, ast.Template] = {}

    def load(self, key: str, name: str, text: str, stack: tuple[str, ...], base: Path | None):
        self.sources[name] = text
        try:
            module = parse(text, name)
        except SmashError as exc:
            for d in exc.diagnostics:
                self.bag.add(d)
            return None
        self.done[key] = module
        for item in module.items:
            if isinstance(item, ast.Import):
                self._import(item, stack + (key,), base)
            elif isinstance(item, ast.Macro | ast.Template):
                self._define(item)
        return module

    def _define(self, item: ast.Macro | ast.Template) -> None:
        prev = self.macros.get(item.name) or self.templates.get(item.name)
        if prev is not None:
            was = "template" if isinstance(prev, ast.Template) else "macro"
            note = Note(f"first defined here (as a {was})", prev.span)
            self.bag.error("E0103", f"'{item.name}' is defined twice", item.span, note)
            return
        table = self.templates if isinstance(item, ast.Template) else self.macros
        table[item.name] = item  # type: ignore[assignment]

    def _import(self, imp: ast.Import, stack: tuple[str, ...], base: Path | None) -> None:
        if len(stack) > MAX_IMPORT_DEPTH:
            msg = f"imports nest too deeply: a chain of more than {MAX_IMPORT_DEPTH} files"
            self.bag.error("E0309", msg, imp.span)
            return
        if imp.is_path:
            located = _import_path(imp, base)
            if isinstance(located, Diagnostic):
                self.bag.add(located)
                return
            path = located or (base or Path.cwd()) / imp.target
            key = str(path)
            found = None if located is None else (key, None)
        else:
            key = f"<stdlib>/{imp.target}"
            found = _stdlib_file(imp.target)
            path = None
        if key in stack:
            cycle = " -> ".join(Path(k).name for k in stack[stack.index(key) :] + (key,))
            self.bag.error("E0302", f"import cycle: {cycle}", imp.span)
            return
        if key in self.done:
            return
        if found is None:
            what = f"file '{imp.target}'" if imp.is_path else f"library '{imp.target}'"
            self.bag.error("E0303", f"cannot import {what}: not found", imp.span)
            return
        if path is not None:
            try:
                name, text = read_source(_display(path))
            except SmashError as exc:
                for d in exc.diagnostics:
                    self.bag.add(d)
                self.sources.update(exc.sources)
                return
            self.load(key, name, text, stack, path.parent)
        else:
            name, text = found
            self.load(key, name, text, stack, None)


def load_text(text: str, file: str = "<string>", base: Path | None = None) -> Program:
    """Parses ``text`` and its imports; raises SmashError with every load error found."""
    loader = _Loader()
    key = str((base / Path(file).name).resolve()) if base is not None else file
    module = loader.load(key, file, text, (), base)
    loader.bag.raise_if_any(loader.sources)
    assert module is not None
    nets = [i for i in module.items if isinstance(i, ast.Network)]
    for extra in nets[1:]:
        loader.bag.error(
            "E0103", "a file defines at most one network", extra.span, Note("first", nets[0].span)
        )
    loader.bag.raise_if_any(loader.sources)
    return Program(module, file, loader.macros, loader.templates, loader.sources)


def load_file(path: str | Path) -> Program:
    """Reads and parses a .smash file and everything it imports."""
    name, text = read_source(path)
    return load_text(text, name, Path(path).resolve().parent)
