"""Settings from outside the presets: ``--set KEY=VALUE`` and ``--config FILE``.

A run's settings are one tree of frozen dataclasses (``config.SearchConfig``; an
experiment's config holds one under ``search``). A key names a leaf of that tree with dots
(``final.momentum``, ``space.max_kernel``); ``keys`` lists them all. ``assign`` sets one
from command-line text, ``load`` rebuilds a whole tree from the ``config.json`` every run
writes (or any JSON file holding some of its keys) over a config, so a run can be repeated
or varied from its own record.

Values are read by the field's type, not guessed: ``final.nesterov=false``,
``space.block_inputs=64,96,112`` (or ``[64, 96, 112]``), ``data_dir=none`` where a field
may be None. Wrong names and wrong types are SmashErrors (E0704) that say what was
expected; whether a well-typed value is in range is ``config.config_problems``' business.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from pathlib import Path

from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error


class _Bad(Exception):
    """A value that does not fit its field's type; the message says what was expected."""


@functools.cache
def _fields(cls) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def keys(cls) -> list[str]:
    """Every settable key of the config class ``cls``, in field order."""
    return [key for key, _, _ in leaves(cls)]


def _optional(tp) -> tuple[typing.Any, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        return (rest[0] if len(rest) == 1 else tp), len(rest) < len(typing.get_args(tp))
    return tp, False


_NAMES = {
    bool: ("true or false", "true/false values"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}


def _describe(tp) -> str:
    tp, optional = _optional(tp)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            what = f"a list of {_NAMES[args[0]][1]}"
        else:
            what = f"a list of {len(args)} {_NAMES[args[0]][1]}"
    else:
        what = _NAMES[tp][0]
    return f"{what} or none" if optional else what


def _coerce(tp, value):
    """``value`` (parsed JSON) as a value of type ``tp``; _Bad if it is not one."""
    wanted = _describe(tp)
    tp, optional = _optional(tp)
    if value is None:
        if optional:
            return None
        raise _Bad(wanted)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise _Bad(wanted)
        variadic = len(args) == 2 and args[1] is Ellipsis  # may be empty: its rule decides
        if variadic:
            args = (args[0],) * len(value)
        if len(args) != len(value) or not (value or variadic):
            raise _Bad(wanted)
        try:
            return tuple(_coerce(a, v) for a, v in zip(args, value, strict=True))
        except _Bad:
            raise _Bad(wanted) from None
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise _Bad(wanted)
    return float(value) if tp is float else value


def _parse(tp, text: str):
    """Command-line text as the JSON value it stands for in a field of type ``tp``."""
    base, optional = _optional(tp)
    if optional and text.strip().lower() in ("none", "null"):
        return None
    if base is str:
        return text
    if typing.get_origin(base) is tuple and not text.strip().startswith("["):
        return [_parse(typing.get_args(base)[0], part) for part in text.split(",")]
    low = text.strip().lower()
    if base is bool and low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _unknown(cls, key: str, prefix: str = "") -> str:
    known = [prefix + k for k in keys(cls)]
    key = prefix + key
    groups = {k.split(".")[0] for k in known if "." in k}
    if key in groups:
        members = ", ".join(k for k in known if k.startswith(key + "."))
        return f"{key} is a group of settings; set one of them: {members}"
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = " (the keys are those of config.json)"
    if close:
        hint = f"; did you mean {' or '.join(close)}?"
    return f"unknown setting {key!r}{hint}"


def _field_type(cls, key: str):
    """The type of the leaf ``key`` of ``cls``, or None when there is no such leaf."""
    head, _, rest = key.partition(".")
    tp = _fields(cls).get(head)
    if tp is None or dataclasses.is_dataclass(tp) != bool(rest):
        return None
    return _field_type(tp, rest) if rest else tp


def _replace(cfg, key: str, value):
    head, _, rest = key.partition(".")
    if rest:
        value = _replace(getattr(cfg, head), rest, value)
    return dataclasses.replace(cfg, **{head: value})


def leaves(cls, prefix: str = ""):
    """``(key, field, type)`` of every leaf setting of the config class ``cls``."""
    for f in dataclasses.fields(cls):
        tp = _fields(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            yield from leaves(tp, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, f, tp


def scalar(tp):
    """The type argparse reads a value of the field type ``tp`` as (None allowed or not)."""
    return _optional(tp)[0]


def put(cfg, key: str, value):
    """``cfg`` with the leaf ``key`` set to ``value`` (already of the field's type)."""
    return _replace(cfg, key, value)


def assign(cfg, item: str):
    """``cfg`` with the setting ``KEY=VALUE`` of ``item`` (from ``--set``) applied."""
    key, eq, text = item.partition("=")
    key = key.strip()
    if not eq or not key:
        raise _error(f"--set wants KEY=VALUE, got {item!r}")
    tp = _field_type(type(cfg), key)
    if tp is None:
        raise _error(f"--set {item}: {_unknown(type(cfg), key)}")
    try:
        value = _coerce(tp, _parse(tp, text))
    except _Bad as exc:
        raise _error(f"--set {item}: {key} must be {exc}, got {text!r}") from None
    return _replace(cfg, key, value)


def overlay(cfg, data, text: str, path: str, prefix: str = ""):
    """``cfg`` with the settings of ``data`` (a JSON object from the file ``path`` whose text
    is ``text``) put over it: a whole ``config.json`` replaces every setting, a file with a
    few keys changes those. A SmashError (E0704) at the offending key's line names the
    first setting that is unknown or of the wrong type."""
    if not isinstance(data, dict):
        raise _error("a config file holds a JSON object", _locate(text, path, prefix), text)
    fields = _fields(type(cfg))
    changes = {}
    for name, value in data.items():
        key = prefix + name
        if name not in fields:
            where = _locate(text, path, key)
            raise _error(_unknown(type(cfg), name, prefix), where, text)
        tp = fields[name]
        if dataclasses.is_dataclass(tp):
            changes[name] = overlay(getattr(cfg, name), value, text, path, key + ".")
            continue
        try:
            changes[name] = _coerce(tp, value)
        except _Bad as exc:
            where = _locate(text, path, key)
            raise _error(f"{key} must be {exc}, got {json.dumps(value)}", where, text) from None
    return dataclasses.replace(cfg, **changes)


def _locate(text: str, path: str, key: str) -> Span:
    """Where the dotted ``key`` is written in the JSON ``text`` (each part searched for
    after the one before it); the file's start when it cannot be found."""
    at, line, col = 0, 1, 1
    for part in filter(None, key.rstrip(".").split(".")):
        found = text.find(json.dumps(part), at)
        if found < 0:
            return Span(path, 1, 1, 1, 1)
        at = found
        line = text.count("\n", 0, found) + 1
        col = found - (text.rfind("\n", 0, found) + 1) + 1
    return Span(path, line, col, line, col + len(json.dumps(key.rstrip(".").split(".")[-1])))


# a run's config.json is some 2 KB and nests 3 deep: bounds far beyond any real config file,
# so that a device (/dev/zero) or a crafted file is refused instead of read without end
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_DEPTH = 32


def _read_bounded(path: str | Path, start: Span) -> str:
    """The text of the config file ``path``, read no further than ``MAX_CONFIG_BYTES``."""
    try:
        with Path(path).open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise _error("config file not found", start) from None
    except OSError as exc:
        raise _error(f"cannot read this config file: {exc.strerror or exc}", start) from None
    if len(raw) > MAX_CONFIG_BYTES:
        msg = f"this config file is larger than {MAX_CONFIG_BYTES:,} bytes: not a run's settings"
        raise _error(msg, start)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(f"cannot read this config file: {exc}", start) from None


_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _too_deep(text: str, path: str) -> Span | None:
    """Where the JSON ``text`` first nests deeper than ``MAX_CONFIG_DEPTH``, if it does."""
    depth = 0
    for m in _NESTING.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_CONFIG_DEPTH:
                at = m.start()
                line = text.count("\n", 0, at) + 1
                col = at - (text.rfind("\n", 0, at) + 1) + 1
                return Span(path, line, col, line, col + 1)
        elif token in "]}":
            depth -= 1
    return None


def load(cfg, path: str | Path):
    """``cfg`` with the settings in the JSON file ``path`` over it (``overlay``). A file
    over ``MAX_CONFIG_BYTES`` or nesting deeper than ``MAX_CONFIG_DEPTH`` is refused."""
    name = str(path)
    text = _read_bounded(path, Span(name, 1, 1, 1, 1))
    deep = _too_deep(text, name)
    if deep is not None:
        msg = f"this config file nests deeper than {MAX_CONFIG_DEPTH} levels: not a run's settings"
        raise _error(msg, deep)  # no excerpt: such a line may run to megabytes
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        at = Span(name, exc.lineno, exc.colno, exc.lineno, exc.colno)
        raise _error(f"not a JSON config file: {exc.msg}", at, text) from None
    return overlay(cfg, data, text, name)


def _error(msg: str, where: Span = COMMAND_LINE, text: str | None = None) -> SmashError:
    """E0704 at ``where``, with its line and a caret when the file's ``text`` is given."""
    return SmashError([error("E0704", msg, where)], {where.file: text} if text else None)
