"""The run commands: search, train and experiment. Their options come from the config
tree (``cli.flags``); the settings resolve as preset, then ``--config``, then the options,
then each ``--set``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import sys
from pathlib import Path

from smashc.cli.common import ArgumentParser, report
from smashc.cli.flags import add_flags, apply_flags
from smashc.diagnostics import SmashError, Span, error
from smashc.frontend import ast
from smashc.frontend.loader import load_file, read_source

COMMANDS = ("search", "train", "experiment")


def _settings(presets: dict, args: argparse.Namespace):
    from smashc.runtime import settings

    cfg = presets[args.preset]
    if args.config is not None:
        cfg = settings.load(cfg, args.config)
    cfg = apply_flags(cfg, args)
    for item in args.set:
        cfg = settings.assign(cfg, item)
    return cfg


def _print_config(cfg) -> int:
    """``--print-config``: the resolved settings as the JSON that ``--config`` reads, once
    they are found in range; nothing runs. (A run's config.json also has the space's input
    shape and classes from the dataset it loads, and its precision resolved.)"""
    from smashc.runtime.config import check_config

    check_config(cfg)
    print(json.dumps(cfg.to_json(), indent=2))
    return 0


def _interrupted(argv: list[str]) -> int:
    """Ctrl-C: what was saved, and the command line that goes on from it."""
    argv = [a for a in argv if a != "--resume"]
    again = shlex.join(["smashc", argv[0], "--resume", *argv[1:]])
    print(f"interrupted; the work so far is saved. Continue with: {again}", file=sys.stderr)
    return 130


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _launch(nproc: int, argv: list[str]) -> int:
    """``torch.distributed.run --standalone --nproc-per-node nproc -m smashc ARGV``, in this
    process; 1 when a process failed (each prints its own error)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launch = ["--standalone", f"--nproc-per-node={nproc}", "--module", "smashc", *argv]
    try:
        run(get_args_parser().parse_args(launch))
    except ChildFailedError:
        return 1
    return 0


def _in_group(cmd):
    """A run command as one process of a process group: ``--nproc N`` (above 1) starts N of
    them on this machine through ``torch.distributed.run`` and waits for them; a process
    ``torchrun`` started leaves its group at the end, and prints nothing on stdout unless
    it is rank 0 (the group's output is rank 0's)."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        from smashc.runtime import distributed

        if args.nproc < 1:
            msg = f"--nproc must be at least 1, got {args.nproc}"
            return report(SmashError([error("E0704", msg, Span("<command line>", 1, 1, 1, 1))]))
        if args.nproc > 1 and not distributed.requested():
            return _launch(args.nproc, _without_nproc(args.argv))
        quiet = os.environ.get("RANK", "0") != "0"
        try:
            with open(os.devnull, "w") if quiet else contextlib.nullcontext(sys.stdout) as out:
                with contextlib.redirect_stdout(out):
                    return cmd(args)
        finally:
            distributed.leave()

    return run


@_in_group
def cmd_search(args: argparse.Namespace) -> int:
    from smashc.runtime import alloc, runs, search
    from smashc.runtime.presets import PRESETS

    alloc.tune_process()
    try:
        cfg = _settings(PRESETS, args)
        if args.print_config:
            return _print_config(cfg)
        summary = search.search(cfg, Path(args.out), resume=args.resume, final=not args.no_final)
    except SmashError as exc:
        return report(exc)
    except runs.Interrupted:
        return _interrupted(args.argv)
    if not summary:  # a rank other than 0 of a process group
        return 0
    print(f"ranking:            {summary['ranking']}")
    err = summary["best_smash_error"]
    print(f"best architecture:  {summary['best_smash']} (SMASH error {err:.3f})")
    print(f"its diagram:        {summary['best_diagram']}")
    print(f"score histogram:    {summary['histogram']}")
    if "training_curve" in summary:
        print(f"HyperNet training:  {summary['training_curve']}")
    if "final_test_accuracy" in summary:
        print(
            f"final test accuracy: {summary['final_test_accuracy']:.4f} "
            f"(model, curves, metrics in {summary['final_dir']})"
        )
    for name, b in summary.get("baselines", {}).items():
        print(
            f"  baseline {name + ':':<10} {b['test_accuracy']:.4f} test accuracy, same recipe "
            f"({b['params']:,} parameters; {b['dir']})"
        )
    return 0


def _header_span(program, which: str, file: str) -> Span:
    """Where the network states its ``input`` or ``classes`` (else the network itself)."""
    net = program.network
    if net is None:
        return Span(file, 1, 1, 1, 1)
    kind = ast.Input if which == "input" else ast.Classes
    return next((st.span for st in net.body if isinstance(st, kind)), net.span)


@_in_group
def cmd_train(args: argparse.Namespace) -> int:
    from smashc.compiler import network_of
    from smashc.runtime import alloc, runs
    from smashc.runtime.context import open_run
    from smashc.runtime.final import misfit, train_final
    from smashc.runtime.presets import PRESETS

    alloc.tune_process()
    out = Path(args.out)
    try:
        cfg = _settings(PRESETS, args)
        if args.print_config:
            return _print_config(cfg)
        name, text = read_source(args.file)
        program = load_file(args.file)
        net = network_of(program)  # located errors before any data is loaded
        ctx = open_run(cfg, out, args.resume, searches=False)
        problem = misfit(net, ctx)
        if problem is not None:
            which = "input" if net.input != ctx.data.shape else "classes"
            span = _header_span(program, which, name)
            raise SmashError([error("E0704", problem, span)], program.sources)
        result = train_final(ctx, net, out, resume=args.resume, text=text)
    except SmashError as exc:
        return report(exc)
    except runs.Interrupted:
        return _interrupted(args.argv)
    print(f"test accuracy {result['test_acc']:.4f}; model, curves and metrics in {out}")
    return 0


@_in_group
def cmd_experiment(args: argparse.Namespace) -> int:
    from smashc.runtime import alloc, distributed, runs
    from smashc.runtime.experiments import EXPERIMENTS

    alloc.tune_process()
    experiment = EXPERIMENTS[args.experiment]
    out = Path(args.out or f"runs/{args.experiment}")
    try:
        if distributed.requested():
            msg = (
                "smashc experiment runs in one process: start it without torchrun or "
                "--nproc (its HyperNet training can be a distributed smashc search, "
                "passed with --checkpoint)"
            )
            raise SmashError([error("E0754", msg, Span("<command line>", 1, 1, 1, 1))])
        cfg = _settings(experiment.presets, args)
        if args.print_config:
            return _print_config(cfg)
        summary = experiment.run(cfg, out)
    except SmashError as exc:
        return report(exc)
    except runs.Interrupted:
        again = shlex.join(["smashc", *args.argv])
        print(f"interrupted; finished work is kept. Continue with: {again}", file=sys.stderr)
        return 130
    experiment.show(summary)
    return 0


def _run_options(presets: dict) -> ArgumentParser:
    run = ArgumentParser(add_help=False)
    run.add_argument(
        "--preset",
        choices=tuple(presets),
        default="demo",
        help="settings to start from (default: demo; smoke: seconds, for tests)",
    )
    run.add_argument(
        "--config",
        metavar="FILE.json",
        help="settings over the preset's: a run's config.json repeats that run, a file with a "
        "few of its keys changes those",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change any setting, after the other flags (repeatable): --set final.momentum=0.8 "
        "--set space.max_kernel=5; the keys are those of config.json (docs/search.md)",
    )
    run.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="run as N processes on this machine (torch.distributed.run --standalone; "
        "docs/distributed.md); torchrun starts them on several machines",
    )
    run.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings as JSON (what --config reads) and stop",
    )
    return run


_HELP = {
    "search": "run a SMASH architecture search",
    "train": "train one architecture normally",
    "experiment": "the paper's experiments on the SMASH score",
}


def add_commands(sub, full: bool) -> None:
    """search, train and experiment as subcommands of ``sub``; unless ``full``, only their
    names and help (their options come from the runtime's config tree, which needs torch)."""
    if not full:
        for name in COMMANDS:
            sub.add_parser(name, help=_HELP[name], add_help=False)
        return
    from smashc.runtime.config import SearchConfig
    from smashc.runtime.experiments import EXPERIMENTS
    from smashc.runtime.presets import PRESETS

    s = sub.add_parser("search", parents=[_run_options(PRESETS)], help=_HELP["search"])
    add_flags(s, SearchConfig, "search", experiment=False)
    s.add_argument("--out", default="runs/search", help="output folder (default: runs/search)")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    s.add_argument("--no-final", action="store_true", help="stop after the ranking")
    s.set_defaults(run=cmd_search)

    t = sub.add_parser("train", parents=[_run_options(PRESETS)], help=_HELP["train"])
    t.add_argument("file", metavar="ARCH.smash")
    add_flags(t, SearchConfig, "train", experiment=False)
    t.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.set_defaults(run=cmd_train)

    x = sub.add_parser("experiment", help=_HELP["experiment"])
    xs = x.add_subparsers(dest="experiment", required=True)
    for exp in EXPERIMENTS.values():
        p = xs.add_parser(exp.name, parents=[_run_options(exp.presets)], help=exp.help)
        p.add_argument(
            "--out", metavar="DIR", help="output folder (default: runs/EXPERIMENT); rerun to resume"
        )
        add_flags(p, type(next(iter(exp.presets.values()))), exp.name, experiment=True)
        p.set_defaults(run=cmd_experiment)
