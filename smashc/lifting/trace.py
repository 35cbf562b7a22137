"""Tracing: an ``nn.Module`` to a ShapeProp'd ``fx.GraphModule``, untraceable code as E0802.

``torch.fx.symbolic_trace`` follows the module's Python code with proxies; code whose
control flow depends on tensor values cannot be followed, and is reported at the line of
the user's source where fx gave up, with the module path being traced.
"""

from __future__ import annotations

import contextlib
import io
import linecache
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from smashc.diagnostics import Diagnostic, Note, SmashError, Span, error


@dataclass(frozen=True)
class Traced:
    """The traced graph (shapes in ``node.meta["tensor_meta"]``) and the sources of the
    files its stack traces point into, for rendering diagnostics."""

    gm: fx.GraphModule
    sources: dict[str, str]


class _Tracer(fx.Tracer):
    """fx's tracer, remembering the module path being traced when it fails."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True
        self.path: list[str] = []
        self.failed_in = ""  # the innermost module whose forward raised

    def call_module(self, m, forward, args, kwargs):
        self.path.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            self.failed_in = self.failed_in or self.path[-1]
            raise
        finally:
            self.path.pop()


def _display(file: str) -> str:
    """``file`` relative to the working directory when it lies below it."""
    try:
        return os.path.relpath(file) if Path(file).resolve().is_relative_to(Path.cwd()) else file
    except (OSError, ValueError):
        return file


_NOT_USER = (str(Path(torch.__file__).parent), str(Path(__file__).parent.parent))


def _torch_frame(filename: str) -> bool:
    """Whether a frame is torch's or smashc's own, not the user's."""
    return filename.startswith(_NOT_USER) or filename.startswith("<")


def user_span(frames: list[traceback.FrameSummary]) -> Span | None:
    """The innermost frame outside torch: where the user's code asked for the operation."""
    for fr in reversed(frames):
        if _torch_frame(fr.filename) or fr.lineno is None:
            continue
        line = linecache.getline(fr.filename, fr.lineno)
        col = len(line) - len(line.lstrip()) + 1
        return Span(_display(fr.filename), fr.lineno, col, fr.lineno, len(line.rstrip()) + 1)
    return None


def source_of(span: Span, sources: dict[str, str]) -> None:
    """Adds the text of the file ``span`` points into to ``sources``."""
    if span.file not in sources:
        lines = linecache.getlines(str(Path(span.file).resolve()))
        if lines:
            sources[span.file] = "".join(lines)


def _untraceable(exc: Exception, tracer: _Tracer, where: Span) -> SmashError:
    frames = traceback.extract_tb(exc.__traceback__)
    span = user_span(frames) or where
    path = tracer.failed_in or "(the model)"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    diag = error(
        "E0802",
        f"{path}: torch.fx cannot trace this code: {reason}",
        span,
        Note("control flow that depends on tensor values has no fixed graph to lift"),
    )
    sources: dict[str, str] = {}
    source_of(span, sources)
    return SmashError([diag], sources)


def trace(module: nn.Module, example: torch.Tensor, where: Span) -> Traced:
    """``module`` traced in eval mode, with fx's ShapeProp run on ``example``.

    ``where`` locates errors that have no line of user code (the command line, the call).
    Raises SmashError E0802 for code fx cannot trace, E0803 for an example input the
    module does not run on.
    """
    module = module.eval()
    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # fx raises TraceError, TypeError, ... from user code
        raise _untraceable(exc, tracer, where) from None
    gm = fx.GraphModule(tracer.root, graph, type(module).__name__)
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # it prints tracebacks
            ShapeProp(gm).propagate(example)
    except Exception as exc:
        root = exc
        while root.__cause__ is not None:  # ShapeProp wraps the module's own error
            root = root.__cause__
        span = user_span(traceback.extract_tb(root.__traceback__)) or where
        reason = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
        msg = f"the module does not run on an input of shape {tuple(example.shape)}: {reason}"
        diags: list[Diagnostic] = [error("E0803", msg.splitlines()[0], span)]
        sources: dict[str, str] = {}
        source_of(span, sources)
        raise SmashError(diags, sources) from None
    return Traced(gm, {})


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def node_span(node: fx.Node, sources: dict[str, str], where: Span) -> Span:
    """Where the user's code created ``node`` (from its recorded stack trace), else ``where``;
    the file's text is added to ``sources``."""
    frames = [
        traceback.FrameSummary(m["file"], int(m["line"]), "")
        for m in _FRAME.finditer(node.stack_trace or "")
    ]
    span = user_span(frames)
    if span is None:
        return where
    source_of(span, sources)
    return span
