"""What a setting may be, and where it is written: the metadata every config field carries.

A field of a run's config is declared with ``setting(default, rule, flag=...)``. The rule
says which values are in range (``config.config_problems`` and the experiments' checks
read it), the flag says which command-line option sets it and on which commands (the CLI
builds its options from it), and ``--set`` / ``--config`` reach every field by its dotted
name. So one declaration is the whole table for a setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], bool]

# the commands whose settings come from a config tree; EXPERIMENT stands for every
# ``smashc experiment`` subcommand, an experiment's own name for that one only
SEARCH, TRAIN, EXPERIMENT = "search", "train", "experiment"
RUNS = (SEARCH, TRAIN, EXPERIMENT)


@dataclass(frozen=True)
class Rule:
    """A check on one value and the words for what it wants (``"at least 1"``)."""

    ok: Check
    wanted: str


@dataclass(frozen=True)
class Flag:
    """The option that sets a field on the commands ``commands`` (``aliases`` per command,
    e.g. ``train``'s ``--epochs`` for ``--final-epochs``). ``convert`` turns the option's
    text into the field's value where argparse's ``type`` is not enough; ``choices`` and
    ``store_true`` are argparse's."""

    name: str
    commands: tuple[str, ...] = RUNS
    help: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    store_true: bool = False
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    convert: Callable[[str], Any] | None = None

    def names(self, command: str) -> tuple[str, ...]:
        return (self.name, *dict(self.aliases).get(command, ()))

    def on(self, command: str, experiment: bool) -> bool:
        """Whether the command ``command`` (an experiment's when ``experiment``) has it."""
        return command in self.commands or (experiment and EXPERIMENT in self.commands)


def setting(
    default: Any = dataclasses.MISSING,
    rule: Rule | None = None,
    flag: Flag | None = None,
    *,
    factory: Callable[[], Any] | None = None,
    own_names: bool = False,
) -> Any:
    """A dataclass field with its range rule and its command-line flag in its metadata.
    ``own_names``: a nested config whose settings messages name as they are named in its
    own runs (an experiment's ``search`` settings read ``train.epochs``, as in a search)."""
    meta = {"rule": rule, "flag": flag, "own_names": own_names}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def rule_of(f: dataclasses.Field) -> Rule | None:
    return f.metadata.get("rule")


def flag_of(f: dataclasses.Field) -> Flag | None:
    return f.metadata.get("flag")


# --- rules ---------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def count(least: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= least, f"at least {least}")


def optional_count(least: int) -> Rule:
    return Rule(lambda v: v is None or (_is_int(v) and v >= least), f"None or at least {least}")


def number(
    low: float, high: float = math.inf, low_open: bool = False, high_open: bool = True
) -> Rule:
    def ok(v) -> bool:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    if math.isinf(high) and low == 0:
        return Rule(ok, "a positive number" if low_open else "a number of at least 0")
    if math.isinf(high):
        return Rule(ok, f"a number above {low:g}" if low_open else f"a number of at least {low:g}")
    return Rule(ok, f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")


def positive() -> Rule:
    return number(0, low_open=True)


def pair(inner: Rule) -> Rule:
    def both(v) -> bool:
        return isinstance(v, tuple | list) and len(v) == 2 and all(inner.ok(x) for x in v)

    return Rule(both, f"two numbers {inner.wanted}")


def one_of(*names: str) -> Rule:
    return Rule(lambda v: v in names, "one of " + ", ".join(names))


def counts(least: int) -> Rule:
    inner = count(least)
    return Rule(
        lambda v: isinstance(v, tuple) and len(v) > 0 and all(inner.ok(x) for x in v),
        f"a list of integers of at least {least}",
    )


def odd(low: int, high: int) -> Rule:
    allowed = range(low, high + 1, 2)
    return Rule(lambda v: _is_int(v) and v in allowed, "one of " + ", ".join(map(str, allowed)))


def power_of_two() -> Rule:
    return Rule(lambda v: _is_int(v) and v >= 1 and v & (v - 1) == 0, "a power of two")


def distinct_among(names: tuple[str, ...], what: str) -> Rule:
    return Rule(
        lambda v: isinstance(v, tuple) and 0 < len(v) == len(set(v)) and set(v) <= set(names),
        f"a list of distinct {what} among " + ", ".join(names),
    )


# --- checking a config tree -----------------------------------------------------------------


def problems(cfg, prefix: str = "") -> list[str]:
    """Every field of the config dataclass ``cfg`` (and the dataclasses inside it) whose
    value breaks its rule, one message each, naming the flag that sets it where there is
    one; then the cross-field checks of each dataclass whose own fields are all in range
    (its ``cross_checks()`` method, if it has one)."""
    out: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            out += problems(value, "" if f.metadata.get("own_names") else name + ".")
            continue
        rule, flag = rule_of(f), flag_of(f)
        if rule is None or rule.ok(value):
            continue
        if flag is not None:
            out.append(f"{flag.name} must be {rule.wanted}, got {value!r} ({name})")
        else:
            out.append(f"{name} must be {rule.wanted}, got {value!r}")
    cross = getattr(cfg, "cross_checks", None)
    if cross is not None and not out:
        out += cross()
    return out
