"""Mapping: each node of a traced graph to a primitive of the memory-bank form.

A primitive is an op of ``smashc.arch`` (conv, bn, activations, pools, linear, chanpad),
an elementwise ``add`` or a channel ``cat``; reshapes that only flatten a 1x1 map, dropout
and identities are passed through. Anything else is an E0801 naming the module path, the
op and why.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx, nn

from smashc import arch
from smashc.diagnostics import SmashError, Span, error
from smashc.lifting.trace import node_span

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Prim:
    """One value of the lifted graph: ``kind`` is input, op, add or cat.

    ``module`` is the qualified name of the submodule holding the op's weights (None for
    weight-free ops); ``path`` the module path the op was called from (for comments and
    layer boundaries); ``inputs`` are the ids of the operand values, in order.
    """

    id: str
    kind: str
    inputs: tuple[str, ...]
    shape: Shape3
    op: arch.Op | None = None
    module: str | None = None
    path: str = ""
    owner: str = ""  # the unit the op belongs to: a layer's ops share one
    unit: str = ""  # the stage-level unit (``layer2.0``): transitions split between them


class Unliftable(Exception):
    """A node with no memory-bank form: the message, and the node (for its location)."""

    def __init__(self, node: fx.Node, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def path_of(node: fx.Node) -> str:
    """The module path ``node`` was created in (``layer1.0``), "" at the top."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


# smashc's own names: a layer's op ``stage1_l0_0conv`` -> ``stage1_l0``, a stage's ``stem_0conv``
_COMPILED = re.compile(r"^(.*_l\d+)_\d|^(.*?)_\d")


def owners(node: fx.Node, flat: bool) -> tuple[str, str]:
    """(owner, unit) of a node. In a nested module the owner is the module whose forward made
    the op (a leaf's parent) and the unit that owner cut to two levels; in a flat module (a
    compiled smashc network) both are read off the node name."""
    if flat:  # function nodes are named after their function: the caller gives the owner
        m = _COMPILED.match(node.name)
        owner = (m.group(1) or m.group(2)) if m and node.op == "call_module" else ""
        return owner, owner
    path = path_of(node)
    owner = path.rpartition(".")[0] if node.op == "call_module" else path
    return owner, ".".join(owner.split(".")[:2])


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _chw(node: fx.Node) -> Shape3:
    s = _shape(node)
    if s is None or len(s) not in (2, 4):
        raise Unliftable(
            node, f"a {len(s or ())}-d value has no memory-bank form (only N x C x H x W)"
        )
    return (s[1], 1, 1) if len(s) == 2 else (s[1], s[2], s[3])


def _module_op(node: fx.Node, mod: nn.Module) -> arch.Op | None | str:
    """The op of a leaf module; None to pass it through; a string says why it cannot be."""
    name = f"nn.{type(mod).__name__}"
    match mod:
        case nn.Conv2d():
            if mod.padding_mode != "zeros":
                return f"{name} with padding_mode={mod.padding_mode!r}: only zero padding lifts"
            if isinstance(mod.padding, str):
                return f"{name} with padding={mod.padding!r}: give the padding as numbers"
            return arch.Conv(
                mod.out_channels,
                _pair(mod.kernel_size),
                _pair(mod.stride),
                _pair(mod.padding),
                _pair(mod.dilation),
                mod.groups,
                mod.bias is not None,
            )
        case nn.BatchNorm2d():
            if not (mod.affine and mod.track_running_stats) or mod.momentum is None:
                return f"{name} without affine weights, running statistics or momentum"
            return arch.BatchNorm(mod.eps, mod.momentum)
        case nn.ReLU():
            return arch.Act("relu")
        case nn.ReLU6():
            return arch.Act("relu6")
        case nn.LeakyReLU():
            return arch.Act("leaky_relu", mod.negative_slope)
        case nn.Identity() | nn.Dropout() | nn.Flatten():
            return None
        case nn.AvgPool2d():
            if mod.ceil_mode or not mod.count_include_pad or mod.divisor_override:
                return f"{name} with ceil_mode, count_include_pad=False or a divisor"
            return _pool("avg", mod.kernel_size, mod.stride, mod.padding)
        case nn.MaxPool2d():
            if mod.ceil_mode or _pair(mod.dilation) != (1, 1):
                return f"{name} with ceil_mode or dilation"
            return _pool("max", mod.kernel_size, mod.stride, mod.padding)
        case nn.AdaptiveAvgPool2d() if _pair(mod.output_size) == (1, 1):
            return arch.GlobalAvgPool()
        case nn.Linear():
            return arch.Linear(mod.out_features, mod.bias is not None)
    return f"{name} has no memory-bank form"


def _pool(kind: str, kernel, stride, padding) -> arch.Pool:
    k = _pair(kernel)
    return arch.Pool(kind, k, _pair(stride) if stride else k, _pair(padding))


_RELU = (F.relu, torch.relu, "relu")
_ADD = (operator.add, operator.iadd, torch.add, "add", "add_")
_FLAT = (torch.flatten, "flatten", "view", "reshape")


def _arg(node: fx.Node, i: int, key: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


def _function_op(node: fx.Node) -> tuple[str, arch.Op | None] | str:
    """(kind, op) of a call_function / call_method node, or why it cannot be lifted."""
    t = node.target
    if t in _RELU:
        return "op", arch.Act("relu")
    if t in (F.relu6,):
        return "op", arch.Act("relu6")
    if t in (F.leaky_relu,):
        return "op", arch.Act("leaky_relu", float(_arg(node, 1, "negative_slope", 0.01)))
    if t in _ADD:
        return "add", None
    if t in (torch.cat, torch.concat):
        if _arg(node, 1, "dim", 0) not in (1, -3):
            return "a concatenation along an axis other than channels"
        return "cat", None
    if t in _FLAT:
        src = _shape(node.all_input_nodes[0]) or ()
        dst = _shape(node) or ()
        if len(dst) == 2 and len(src) in (2, 4) and all(d == 1 for d in src[2:]):
            return "pass", None  # (N, C, 1, 1) -> (N, C): the same value in the memory-bank form
        return f"reshaping {tuple(src[1:])} to {tuple(dst[1:])} has no memory-bank form"
    if t in (F.dropout, "contiguous"):
        return "pass", None
    if t in (F.avg_pool2d, F.max_pool2d):
        kind = "avg" if t is F.avg_pool2d else "max"
        k = _arg(node, 1, "kernel_size")
        return "op", _pool(kind, k, _arg(node, 2, "stride"), _arg(node, 3, "padding", 0))
    if t in (F.adaptive_avg_pool2d,) and _pair(_arg(node, 1, "output_size")) == (1, 1):
        return "op", arch.GlobalAvgPool()
    if t in ("mean", torch.mean) and tuple(_arg(node, 1, "dim", ())) in ((2, 3), (-2, -1)):
        return "op", arch.GlobalAvgPool()
    if t is F.pad:
        pad = tuple(_arg(node, 1, "pad"))
        if (
            len(pad) == 6
            and pad[:5] == (0, 0, 0, 0, 0)
            and _arg(node, 2, "mode", "constant") == "constant"
        ):
            if not _arg(node, 3, "value", None):
                return "op", arch.ChannelPad(_chw(node)[0])
        return "F.pad other than zero channels appended (chanpad)"
    if t is operator.getitem:
        return _subsample(node)
    name = getattr(t, "__name__", str(t))
    return f"{name} has no memory-bank form"


def _subsample(node: fx.Node) -> tuple[str, arch.Op] | str:
    """``x[:, :, ::s, ::s]``: a 1x1 average pool with stride s (ResNet option-A shortcuts)."""
    index = node.args[1]
    full = slice(None)
    if isinstance(index, tuple) and len(index) == 4 and index[:2] == (full, full):
        hs, ws = index[2], index[3]
        if all(isinstance(s, slice) and s.start in (None, 0) and s.stop is None for s in (hs, ws)):
            stride = (hs.step or 1, ws.step or 1)
            return "op", arch.Pool("avg", (1, 1), stride, (0, 0))
    return f"indexing {index!r} has no memory-bank form (only x[:, :, ::s, ::s])"


def _prim(gm: fx.GraphModule, node: fx.Node, ref, flat: bool, out: list[Prim]):
    """The primitive of ``node``; the id of the value it passes through (a string); None
    for a non-tensor value. Raises Unliftable."""
    if node.op == "output":
        (res,) = node.args
        return Prim("output", "output", (ref(res),), _chw(res))
    if node.op == "get_attr":
        raise Unliftable(node, f"the tensor {node.target} used as a value has no memory-bank form")
    if node.op == "call_module":
        what = _module_op(node, gm.get_submodule(str(node.target)))
        if isinstance(what, str):
            raise Unliftable(node, what)
    if _shape(node) is None:  # sizes and other non-tensor values (x.size(0))
        return None
    tensors = [a for a in node.all_input_nodes if _shape(a) is not None]
    if node.op == "call_module":
        kind, op = ("pass", None) if what is None else ("op", what)
        weighted = isinstance(what, arch.Conv | arch.BatchNorm | arch.Linear)
        module = str(node.target) if weighted else None
    else:
        what = _function_op(node)
        if isinstance(what, str):
            raise Unliftable(node, what)
        kind, op = what
        module = None
    if kind == "pass":
        return ref(tensors[0])
    ins = (ref(tensors[0]),) if kind == "op" else tuple(ref(a) for a in tensors)
    if kind == "add" and len(ins) != 2:
        raise Unliftable(node, "an addition of other than two tensors has no memory-bank form")
    owner, unit = owners(node, flat)
    if flat and node.op != "call_module":
        owner = unit = next((p.owner for p in out if p.id == ins[0]), "")
    return Prim(node.name, kind, ins, _chw(node), op, module, path_of(node), owner, unit)


def primitives(gm: fx.GraphModule, sources: dict[str, str], where: Span) -> list[Prim]:
    """The traced graph as primitives, in graph order; passed-through nodes are folded into
    their operand. Raises SmashError E0801 at every node with no memory-bank form (values
    computed from one are not reported again, except modules)."""

    out: list[Prim] = []
    alias: dict[str, str] = {}
    flat = all("." not in name for name, _ in gm.named_modules())
    errors: list = []
    tainted: set[str] = set()  # values computed from an unliftable one

    def ref(a) -> str:
        return alias.get(a.name, a.name)

    def fail(node: fx.Node, message: str) -> None:
        path = path_of(node) or "(the model)"
        span = node_span(node, sources, where)
        errors.append(error("E0801", f"{path}: {message}", span))
        tainted.add(node.name)

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            out.append(Prim(node.name, "input", (), _chw(node)))
            continue
        if any(a.name in tainted for a in node.all_input_nodes):
            tainted.add(node.name)  # reported where it started; a module is reported too
            if node.op != "call_module":
                continue
        try:
            prim = _prim(gm, node, ref, flat, out)
        except Unliftable as exc:
            fail(exc.node, exc.message)
            continue
        if node.name in tainted:
            continue
        if isinstance(prim, str):
            alias[node.name] = prim
        elif prim is not None:
            out.append(prim)
    if errors:
        raise SmashError(errors, sources)
    return out
