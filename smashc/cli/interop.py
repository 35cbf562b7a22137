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

    gm = to_fx(ir)
    if args.weights is not None:
        gm = with_weights(gm, load_weights(args.weights), args.weights)
    model = to_onnx(ir, gm.state_dict())
    Path(args.output).write_bytes(model.SerializeToString())
    print(f"wrote {args.output} (input x: N x {'x'.join(map(str, ir.input))})", file=sys.stderr)
