"""The interop commands: ``lift`` (PyTorch module -> .smash) and the weights and ONNX
outputs of ``compile`` (``--weights``, ``--emit onnx``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smashc.cli.common import UsageError
from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error


def _at(path: str) -> Span:
    return Span(path, 1, 1, 1, 1)


def load_weights(path: str) -> dict:
    """A state dict from ``path``: a ``.pt`` file, or a compiled package's folder (its
    ``weights.pt``). SmashError E0812 when it cannot be read as one."""
    import torch

    file = Path(path)
    if file.is_dir():
        file = file / "weights.pt"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SmashError([error("E0812", "no weights file here", _at(str(file)))]) from None
    except Exception as exc:  # torch raises many kinds for a corrupt or foreign file
        msg = f"cannot read weights: torch.load refused the file ({type(exc).__name__})"
        raise SmashError([error("E0812", msg, _at(str(file)))]) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        msg = "not a state dict (a mapping of names to tensors)"
        raise SmashError([error("E0812", msg, _at(str(file)))])
    return state


def with_weights(gm, state: dict, path: str):
    """``gm`` with ``state`` loaded; SmashError E0813 naming what does not fit."""
    own = gm.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if extra:
        problems.append(f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    for k in shapes[:3]:
        problems.append(f"{k} is {tuple(state[k].shape)}, the network needs {tuple(own[k].shape)}")
    if problems:
        msg = "these weights do not fit the network: " + "; ".join(problems)
        raise SmashError([error("E0813", msg, _at(path))])
    gm.load_state_dict(state)
    return gm


def emit_onnx(ir, args: argparse.Namespace) -> None:
    """``compile --emit onnx -o FILE.onnx [--weights W]``."""
    if args.output is None or not args.output.endswith(".onnx"):
        raise UsageError([error("E0102", "--emit onnx needs -o FILE.onnx", COMMAND_LINE)])
    try:
        from smashc.backends.onnx import to_onnx
    except ImportError:
        msg = "--emit onnx needs the onnx package (pip install onnx)"
        raise SmashError([error("E0811", msg, COMMAND_LINE)]) from None
    from smashc.backends.fx import to_fx

    gm = to_fx(ir, args.max_params)
    if args.weights is not None:
        gm = with_weights(gm, load_weights(args.weights), args.weights)
    model = to_onnx(ir, gm.state_dict())
    Path(args.output).write_bytes(model.SerializeToString())
    print(f"wrote {args.output} (input x: N x {'x'.join(map(str, ir.input))})", file=sys.stderr)


def _value(text: str):
    """A ``--arg`` value: a Python literal (``3``, ``(2, 2)``, ``True``), else the string."""
    import ast as pyast

    try:
        return pyast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        msg = f"--input expects CxHxW (three positive integers), got '{text}'"
        raise UsageError([error("E0102", msg, COMMAND_LINE)])
    c, h, w = (int(p) for p in parts)
    return c, h, w


def _module(target: str, pairs: list[str]):
    """The module ``path.py:Class`` built with ``--arg`` keyword arguments."""
    import importlib.util
    import traceback

    from smashc.lifting.trace import source_of, user_span

    path, sep, cls = target.rpartition(":")
    if not sep or not path or not cls.isidentifier():
        msg = f"expected MODEL.py:ClassName, got '{target}'"
        raise UsageError([error("E0102", msg, COMMAND_LINE)])
    kwargs = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.isidentifier():
            raise UsageError(
                [error("E0102", f"--arg expects NAME=VALUE, got '{pair}'", COMMAND_LINE)]
            )
        kwargs[name] = _value(value)
    if not Path(path).is_file():
        raise SmashError([error("E0805", "no such model file", _at(path))])
    spec = importlib.util.spec_from_file_location(f"smashc_lift_{Path(path).stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        make = getattr(module, cls, None)
        if make is None:
            raise SmashError([error("E0805", f"{path} defines no '{cls}'", _at(path))])
        return make(**kwargs)
    except SmashError:
        raise
    except Exception as exc:  # the user's code failed: say where
        span = user_span(traceback.extract_tb(exc.__traceback__)) or _at(path)
        sources: dict[str, str] = {}
        source_of(span, sources)
        msg = f"building {cls}({', '.join(pairs)}) failed: {type(exc).__name__}: {exc}"
        raise SmashError([error("E0806", msg.splitlines()[0], span)], sources) from None


def cmd_lift(args: argparse.Namespace) -> int:
    import torch

    from smashc.lifting import lift

    try:
        c, h, w = _shape(args.input)
        torch.manual_seed(args.seed)  # a module's initial weights are reproducible
        model = _module(args.model, args.arg)
        if not isinstance(model, torch.nn.Module):
            msg = f"{args.model} is not a torch.nn.Module"
            raise SmashError([error("E0805", msg, _at(args.model.rpartition(":")[0]))])
        x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
        params = next(model.parameters(), None)
        if params is not None:
            x = x.to(params.dtype)
        lifted = lift(model, x, args.name, _at(args.model.rpartition(":")[0]))
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(lifted.text)
    else:
        Path(args.output).write_text(lifted.text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    if args.weights:
        target = Path(args.output or f"{lifted.network.name}.smash").with_suffix(".pt")
        torch.save(lifted.weights, target)
        print(f"wrote {target} (smashc compile ... --weights {target})", file=sys.stderr)
    return 0


def add_commands(sub) -> None:
    """``lift``, as a subcommand of ``sub``."""
    k = sub.add_parser("lift", help="trace a PyTorch nn.Module into a .smash network")
    k.add_argument("model", metavar="MODEL.py:Class", help="the file and the nn.Module class")
    k.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keyword argument of the class (a Python literal; repeatable)",
    )
    k.add_argument(
        "--input", default="3x32x32", metavar="CxHxW", help="input shape (default 3x32x32)"
    )
    k.add_argument(
        "--seed", type=int, default=0, help="torch's seed when building the module (default 0)"
    )
    k.add_argument("--name", help="the network's name (default: the class name in snake_case)")
    k.add_argument("-o", dest="output", metavar="OUT.smash", help="write here (default: stdout)")
    k.add_argument(
        "--weights",
        action="store_true",
        help="also write the module's weights beside -o (OUT.pt) for `compile --weights`",
    )
    k.set_defaults(run=cmd_lift)
