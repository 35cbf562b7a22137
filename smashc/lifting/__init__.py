"""Lifting: a PyTorch ``nn.Module`` to a ``.smash`` network in memory-bank form, weights along.

``lift(module, example)`` traces the module with torch.fx (``trace``), maps each traced node
onto a primitive op (``ops``), cuts the graph into op sequences and blocks of banks
(``structure``, ``banks``), writes recognised blocks as the standard library's templates
(``templates``) and prints canonical text with the module paths as comments; the weights
come out keyed like the compiled package's (``weights``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
from torch import nn

from smashc import arch
from smashc.diagnostics import NOSPAN, SmashError, Span, error
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import block as block_ast
from smashc.frontend.flatten import seq as seq_ast
from smashc.frontend.loader import Program, load_text
from smashc.frontend.parser import parse
from smashc.ir.graph import Pattern
from smashc.lifting import structure, templates
from smashc.lifting.banks import LBlock, to_arch
from smashc.lifting.ops import primitives
from smashc.lifting.trace import node_span, trace
from smashc.lifting.weights import transfer

__all__ = ["Lifted", "lift"]


@dataclass(frozen=True)
class Lifted:
    """A lifted module: its ``.smash`` text (canonical, module paths as comments), that text
    loaded (``compiler.for_training`` compiles it), the network it defines, and the module's
    weights as a state dict of the compiled package's module (``compile -o``; ``--weights``)."""

    text: str
    program: Program
    network: arch.Network
    weights: dict[str, torch.Tensor]


def snake(name: str) -> str:
    """``DenseNetBC`` -> ``dense_net_bc``: a network name from a class name."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    s = re.sub(r"\W+", "_", s).strip("_")
    return s if s and not s[0].isdigit() else f"net_{s}"


def _pattern(b: LBlock, entry: tuple[int, int, int]) -> Pattern:
    from smashc.compiler import for_training

    head = arch.Stage("head", "head", (arch.GlobalAvgPool(), arch.Linear(1)))
    net = arch.Network("probe", entry, 1, (to_arch(b, "b"), head))
    try:
        patterns = for_training(net).patterns
    except SmashError:
        return Pattern("custom", ())
    assert patterns is not None
    return patterns["b"]


_LAYER = re.compile(r"^(.*)_l\d+$")  # a compiled network's layer: ``stage1_l0``
_RESERVED = {"stem", "head", "block", "layer", "banks", "input", "classes", "network", "output"}


def _common(paths: tuple[str, ...]) -> str:
    named = [p for p in dict.fromkeys(paths) if p]
    common = named[0] if named else ""
    for p in named[1:]:
        while common and not (p == common or p.startswith(common + ".")):
            common = common.rpartition(".")[0]
    return common


def _block_name(part: structure.BlockPart, taken: set[str], template: str | None) -> str | None:
    """A block's name: its modules' common path (``layer1``), or in a compiled network the
    name its layers carry (``stage1_l0`` -> ``stage1``); None where there is none or it is
    one the front end gives an unnamed block (``block2``, ``dense_block_1``)."""
    owners = {p for p in part.owners if p}
    names = {m.group(1) for o in owners if (m := _LAYER.match(o))}
    if len(names) == 1 and all(_LAYER.match(o) for o in owners):
        name = names.pop()
    else:
        name = _common(part.paths).replace(".", "_")
    given = rf"(transition|block)\d*|{re.escape(template or 'block')}(_\d+)?"
    ok = re.fullmatch(r"[A-Za-z_]\w*", name) and not re.fullmatch(given, name)
    if not ok or name in _RESERVED or name in taken:
        return None
    taken.add(name)
    return name


def _comment(paths: tuple[str, ...]) -> str:
    named = [p for p in dict.fromkeys(paths) if p]
    if not named:
        return ""
    text = _common(paths) or ", ".join(named[:4]) + (", ..." if len(named) > 4 else "")
    return f"# {text}"


def _text(name: str, cls: str, parts: list, entry, classes: int) -> tuple[str, list]:
    """The canonical text, and per part the LBlock in the order of its printed layers."""
    c, h, w = entry
    lines = [f"# lifted from {cls} by smashc lift", f"network {name} {{"]
    lines += [f"    input {c} x {h} x {w}", f"    classes {classes}"]
    ordered: list = []
    uses_std = False
    taken: set[str] = set()
    for part in parts:
        comment = _comment(part.paths)
        if comment:
            lines.append(f"    {comment}")
        if isinstance(part, structure.OpRun):
            lines.append(f"    {part.kind} {{ {printer.seq(seq_ast(part.ops))} }}")
            ordered.append(part)
            continue
        blk = part.block
        entry_shape = part.entry
        pat = _pattern(blk, entry_shape)
        found = templates.match(blk, pat.family, dict(pat.params), entry_shape)
        label = _block_name(part, taken, found[0] if found else None)
        if found is not None:
            template, args, blk = found
            uses_std = True
            lines.append(f"    block {label + ' ' if label else ''}= {template}({args})")
        else:
            node = block_ast(to_arch(blk, "b"))
            body = tuple(replace(s, name=None) if hasattr(s, "reads") else s for s in node.body)
            lines += printer.stmt(replace(node, name=label, body=body), 1)
        ordered.append(replace(part, block=blk))
    lines.append("}")
    if uses_std:
        lines.insert(1, "import std")
    text = "\n".join(lines) + "\n"
    return printer.module(parse(text, "<lifted>")), ordered


def lift(
    module: nn.Module,
    example: torch.Tensor,
    name: str | None = None,
    where: Span = NOSPAN,
) -> Lifted:
    """``module`` (in eval mode) as a ``.smash`` network, traced on ``example`` (N, C, H, W).

    Raises SmashError: E0801 for an op with no memory-bank form, E0802 for code torch.fx
    cannot trace, E0803 for an input the module does not run on, E0804 for a graph that is
    not a network of op sequences and blocks; located at the user's source line where one
    is known, else at ``where``.
    """
    traced = trace(module, example, where)
    sources: dict[str, str] = dict(traced.sources)
    prims = primitives(traced.gm, sources, where)

    def family(b: LBlock, entry) -> str:
        return _pattern(b, entry).family

    def templated(b: LBlock, entry) -> bool:
        pat = _pattern(b, entry)
        return templates.match(b, pat.family, dict(pat.params), entry) is not None

    try:
        parts = structure.parts(prims, family, templated)
    except structure.NoForm as exc:
        node = next(n for n in traced.gm.graph.nodes if n.name == exc.prim.id)
        span = node_span(node, sources, where)
        path = exc.prim.path or "(the model)"
        raise SmashError([error("E0804", f"{path}: {exc.message}", span)], sources) from None
    entry = prims[0].shape
    classes = next(p for p in prims if p.id == "output").shape[0]
    cls = type(module).__name__
    text, ordered = _text(name or snake(cls), cls, parts, entry, classes)
    program = load_text(text, f"{name or snake(cls)}.smash")
    net = expand(program)
    by_id = {p.id: p for p in prims}
    return Lifted(text, program, net, transfer(module, net, ordered, by_id))
