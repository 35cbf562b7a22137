"""Run commands' options, made from the config tree: each setting whose field declares a
``rules.Flag`` for a command becomes that command's option, and a given option is put
into the config by the field's dotted key (as ``--set`` would)."""

from __future__ import annotations

import argparse

from smashc.runtime import settings
from smashc.runtime.rules import flag_of


def add_flags(parser: argparse.ArgumentParser, cls, command: str, experiment: bool) -> None:
    """The options of ``command`` (an experiment's when ``experiment``) for the settings of
    the config class ``cls``."""
    for key, f, tp in settings.leaves(cls):
        flag = flag_of(f)
        if flag is None or not flag.on(command, experiment):
            continue
        kw: dict = {"dest": key, "default": None, "help": flag.help}
        if flag.store_true:
            kw["action"] = "store_true"
        else:
            if flag.metavar is not None:
                kw["metavar"] = flag.metavar
            if flag.choices is not None:
                kw["choices"] = flag.choices
            elif flag.convert is None:
                kw["type"] = settings.scalar(tp)
        parser.add_argument(*flag.names(command), **kw)


def apply_flags(cfg, args: argparse.Namespace):
    """``cfg`` with every option of ``add_flags`` that the command line gave."""
    for key, f, _ in settings.leaves(type(cfg)):
        flag = flag_of(f)
        value = getattr(args, key, None)
        if flag is None or value is None:
            continue
        cfg = settings.put(cfg, key, flag.convert(value) if flag.convert else value)
    return cfg
