"""The compiler as the runtime uses it: the only door from ``smashc.runtime`` into it.

Architectures travel through the runtime as ``Network`` objects (``smashc.arch``, the
expanded form of a ``.smash`` network); text is made from one only when a file is written
(``to_text``) and read back into one when a file is read (``from_text``). Each phase of a
run asks for the artefact it needs:

* ``for_oneshot``: the HyperNet-weight graph of a SMASH-space network and its encoding c,
  through the training pipeline (what every SMASH step and every score compiles);
* ``for_training``: the IR after the default pipeline, from which ``free_module`` builds a
  GraphModule with its own weights, ``totals`` counts parameters and MACs, ``export``
  writes the importable package, ``export_onnx`` the ONNX model and ``draw`` the diagram.

Everything a runtime module imports from the compiler is defined or re-exported here, so
the compiler's internals can move without the runtime noticing (``tests/test_layers.py``
holds the runtime to it).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from torch import fx

from smashc import arch
from smashc.arch import Network
from smashc.backends.budget import DEFAULT_MAX_PARAMS
from smashc.backends.encoding import Encoding, EncodingConfig, encode, op_weights
from smashc.backends.encoding import network as space_network
from smashc.backends.fxrun import GraphRunner
from smashc.backends.hyperfx import SharedWeights, hyper_graph
from smashc.diagnostics import SmashError
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import to_module
from smashc.frontend.loader import Program, load_file, load_text
from smashc.ir import IRGraph, lower
from smashc.passes import DEFAULT_PIPELINE, TRAINING_PIPELINE, run_pipeline
from smashc.pipeline import compile_program

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "Encoding",
    "EncodingConfig",
    "GraphRunner",
    "IRGraph",
    "Network",
    "Program",
    "SharedWeights",
    "arch",
    "draw",
    "encode_network",
    "export",
    "export_onnx",
    "fast_module",
    "for_oneshot",
    "for_training",
    "free_module",
    "from_text",
    "load_file",
    "load_text",
    "network_of",
    "op_weights",
    "space_network",
    "to_text",
    "totals",
]


def network_of(program: Program, overrides: Mapping[str, int] | None = None) -> Network:
    """The network a loaded program defines, templates and loops expanded."""
    return expand(program, overrides)


def from_text(text: str, file: str = "<string>", base: Path | None = None) -> Network:
    """The network of ``.smash`` text (a SmashError, located in ``file``, if it has none)."""
    return expand(load_text(text, file, base))


def to_text(net: Network) -> str:
    """``net`` as canonical ``.smash`` text (``from_text`` reads it back to an equal one)."""
    return printer.module(to_module(net))


def _training_ir(net: Network) -> IRGraph:
    return run_pipeline(lower(net), TRAINING_PIPELINE).ir


def for_oneshot(net: Network, shared: SharedWeights) -> tuple[IRGraph, Encoding, GraphRunner]:
    """A SMASH-space network compiled for the one-shot model on ``shared``: its IR after the
    training pipeline, its encoding c, and the runner of its HyperNet-weight graph
    (``forward(x, generated weights)``)."""
    ir = _training_ir(net)
    enc = encode(ir, shared.cfg)
    return ir, enc, GraphRunner(*hyper_graph(ir, shared, enc))


def encode_network(net: Network, cfg: EncodingConfig) -> Encoding:
    """The encoding c of a SMASH-space network, as ``for_oneshot`` computes it."""
    return encode(_training_ir(net), cfg)


def for_training(source: Network | Program, overrides: Mapping[str, int] | None = None) -> IRGraph:
    """The IR after the default pipeline (checks, analyses, recognised patterns), from a
    network or a loaded program; SmashErrors carry the program's sources."""
    if isinstance(source, Program):
        return compile_program(source, overrides).ir
    return run_pipeline(lower(source), DEFAULT_PIPELINE).ir


def free_module(ir: IRGraph, max_params: int = DEFAULT_MAX_PARAMS) -> fx.GraphModule:
    """A GraphModule computing ``ir`` with freshly initialised weights of its own; a
    SmashError at the largest layer, before allocating, if they would not fit (more than
    ``max_params`` or than the memory available)."""
    from smashc.backends.fx import to_fx

    return to_fx(ir, max_params)


def fast_module(gm: fx.GraphModule) -> fx.GraphModule:
    """``gm`` with its dilated convolutions on smashc's faster kernels; it trains and
    evaluates ``gm``'s own parameters."""
    from smashc.backends import kernels

    return kernels.fast_convs(gm)


def totals(ir: IRGraph) -> tuple[int, int]:
    """Parameters and multiply-accumulates per image of a compiled network."""
    from smashc import report

    return report.totals(ir)


def export(gm: fx.GraphModule, ir: IRGraph, outdir: str | Path) -> Path:
    """Writes ``gm`` (a ``free_module`` of ``ir``, trained or not) as an importable package."""
    from smashc.backends.export import export_package
    from smashc.backends.fx import class_name
    from smashc.ir import dump

    return export_package(gm.eval().cpu(), outdir, class_name(ir.name), dump(ir))


def export_onnx(gm: fx.GraphModule, ir: IRGraph, path: str | Path) -> Path | None:
    """Writes ``gm`` (a ``free_module`` of ``ir``, trained or not) as an ONNX model at
    ``path``; None, writing nothing, where the ``onnx`` package is not installed."""
    try:
        from smashc.backends.onnx import to_onnx
    except ImportError:
        return None
    target = Path(path)
    target.write_bytes(to_onnx(ir, gm.state_dict()).SerializeToString())
    return target


def draw(ir: IRGraph, path: Path) -> Path:
    """The memory-bank diagram of ``ir`` beside ``path``: ``.png`` where graphviz's ``dot``
    is installed, else its ``.dot`` source. Returns the file written."""
    from smashc.backends.dot import diagram, write

    fmt = "png" if shutil.which("dot") else "dot"
    target = path.with_suffix(f".{fmt}")
    try:
        return write(diagram(ir, "banks", collapse=False), target)
    except SmashError:  # graphviz could not render: its .dot source is written anyway
        return path.with_suffix(".dot")
