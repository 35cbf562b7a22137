"""Reads .smash files, follows imports, and gathers every definition visible to the main file."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from smashc.diagnostics import DiagnosticBag, Note, SmashError, Span, error
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


def read_source(path: str | Path) -> tuple[str, str]:
    """(display name, text) of a file; SmashError if it is unreadable or not UTF-8."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        span = Span(name, 1, 1, 1, 1)
        raise SmashError([error("E0305", f"cannot read file: {exc.strerror}", span)]) from None
    return name, _decode(data, name)


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
        if imp.is_path:
            path = ((base or Path.cwd()) / imp.target).resolve()
            key = str(path)
            found = (str(path), None) if path.is_file() else None
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
