"""The SMASH architecture encoding c (a ±1 BCHW tensor) and its inverse, decode.

Layout (see docs/encoding.md): width axis = slices of ``depth_compression * unit`` input
channels of the ops' 1x1 convs, ops one after another through the blocks; height axis =
groups of ``unit`` bottleneck channels (an op with bottleneck B marks rows ``:B/unit``);
channels = the fields of ``EncodingConfig.fields()``. Unmarked positions are all -1.

Differences from the reference implementation, each a fix of one of its defects:
the height axis covers the largest bottleneck (no truncation at 64 columns); the kernel
field always has one channel per allowed size (the layout never shifts while the kernel
size is annealed); every field starts where ``fields()`` says; a bank-size field and an
op-start flag make the encoding decodable (the reference's op field carried nothing);
the read field is multi-hot where a slice spans two narrow banks, so no channel is lost.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from smashc import arch
from smashc.diagnostics import DiagnosticBag, Span
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import OpNode
from smashc.ir.query import LayerAccess, layer_accesses
from smashc.ops.registry import op_kind


@dataclass(frozen=True)
class EncodingConfig:
    """Search-space settings that fix the encoding's shape (the reference's defaults)."""

    unit: int = 8  # N: channels per bank-size step and per output-unit group
    max_units: int = 64  # N_max: largest op output and largest bank
    depth_compression: int = 2  # slices hold depth_compression * unit input channels
    max_bottleneck: int = 2  # largest bottleneck = max_bottleneck * max_units
    max_banks: int = 32
    block_inputs: tuple[int, ...] = (64, 96, 112)
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    max_dilation: int = 3
    groups: tuple[int, ...] = (1, 2, 4, 8)
    convs_per_op: int = 1  # 1: the paper's default op; 4: the variable 2x2 op
    input: tuple[int, int, int] = (3, 32, 32)
    classes: int = 100
    stem_kernel: int = 7

    @property
    def slice_width(self) -> int:
        return self.depth_compression * self.unit

    @property
    def rows(self) -> int:
        return self.max_bottleneck * self.max_units // self.unit

    @property
    def stem_width(self) -> int:
        return self.block_inputs[0]

    def fields(self) -> dict[str, tuple[int, int]]:
        """Field name -> (first channel, number of channels), in channel order."""
        return dict(_layout(self))

    def _layout(self) -> dict[str, tuple[int, int]]:
        sizes: list[tuple[str, int]] = [
            ("read", self.max_banks),
            ("write", self.max_banks),
            ("block", len(self.block_inputs)),
            ("units", self.max_units // self.unit),
        ]
        for p in range(self.convs_per_op):
            sizes += [
                (f"c{p}.dilation_h", self.max_dilation),
                (f"c{p}.dilation_w", self.max_dilation),
                (f"c{p}.kernel_h", len(self.kernel_sizes)),
                (f"c{p}.kernel_w", len(self.kernel_sizes)),
                (f"c{p}.groups", len(self.groups)),
            ]
        if self.convs_per_op == 4:
            sizes.append(("active", 4))
        sizes += [("bank_size", self.max_units // self.unit), ("op_start", 1)]
        out, at = {}, 0
        for name, n in sizes:
            out[name] = (at, n)
            at += n
        return out

    @property
    def channels(self) -> int:
        start, n = list(_layout(self).values())[-1]
        return start + n


@functools.lru_cache(maxsize=32)
def _layout(cfg: EncodingConfig) -> dict[str, tuple[int, int]]:
    """``cfg.fields()``, computed once per configuration (encode asks for it per op)."""
    return cfg._layout()


@dataclass(frozen=True)
class OpSlot:
    """Where one SMASH op sits in c, and the 1x1 weight it takes from the HyperNet output."""

    node: str  # IR node id of the op
    block: int
    first_slice: int
    slices: int
    rows: int  # bottleneck / unit
    in_channels: int
    bottleneck: int


@dataclass(frozen=True)
class Encoding:
    tensor: torch.Tensor  # (1, C, rows, S), +1 / -1
    slots: tuple[OpSlot, ...]
    config: EncodingConfig


# --- the fixed skeleton of a SMASH-space network ------------------------------------------


def stem_ops(cfg: EncodingConfig) -> tuple[arch.Op, ...]:
    k = cfg.stem_kernel
    return (arch.Conv(cfg.stem_width, (k, k), padding=(k // 2, k // 2)), arch.Act("relu"))


def transition_ops(cfg: EncodingConfig, block: int) -> tuple[arch.Op, ...]:
    out = cfg.block_inputs[block + 1]
    conv = arch.Conv(out, (1, 1), padding=(0, 0))
    return (arch.BatchNorm(), arch.Act("relu"), conv, arch.Pool("avg"))


def head_ops(cfg: EncodingConfig) -> tuple[arch.Op, ...]:
    return (arch.BatchNorm(), arch.Act("relu"), arch.GlobalAvgPool(), arch.Linear(cfg.classes))


def network(cfg: EncodingConfig, blocks: list[arch.Block], name: str = "smash") -> arch.Network:
    """A SMASH-space network: the fixed stem, transitions and head around ``blocks``."""
    stages: list[arch.Stage | arch.Block] = [arch.Stage("stem", "stem", stem_ops(cfg))]
    for i, b in enumerate(blocks):
        stages.append(b)
        if i + 1 < len(blocks):
            stages.append(arch.Stage("transition", f"transition{i + 1}", transition_ops(cfg, i)))
    stages.append(arch.Stage("head", "head", head_ops(cfg)))
    return arch.Network(name, cfg.input, cfg.classes, tuple(stages))


# --- encode ------------------------------------------------------------------------------

# which convs of an op's 2x2 grid may be active: with one conv per op, and otherwise
_ACTIVE = (
    {(True, False, False, False)},
    {
        (True, False, False, False),
        (True, False, True, False),
        (True, True, False, False),
        (True, True, True, False),
        (True, True, True, True),
    },
)


class _Encoder:
    def __init__(self, ir: IRGraph, cfg: EncodingConfig):
        self.ir = ir
        self.cfg = cfg
        self.bag = DiagnosticBag()
        self.op_nodes: dict[str, list[str]] = {}  # stage -> its op nodes in order
        self.layer_op: dict[str, str] = {}  # layer -> its (first) op node
        for n in ir.nodes():
            p = ir.payload(n)
            if isinstance(p, OpNode):
                self.op_nodes.setdefault(p.stage, []).append(n)
                if p.layer is not None:
                    self.layer_op.setdefault(p.layer, n)

    def no(self, what: str, span: Span) -> None:
        self.bag.error("E0601", f"cannot encode {what}", span)

    def stage_ops(self, name: str) -> tuple[arch.Op, ...]:
        return tuple(self.ir.payload(n).op for n in self.op_nodes.get(name, ()))

    def skeleton(self) -> None:
        cfg, ir = self.cfg, self.ir
        kinds = [s.kind for s in ir.stages]
        nb = len(cfg.block_inputs)
        want = ["stem"] + ["block", "transition"] * (nb - 1) + ["block", "head"]
        if kinds != want:
            span = ir.stages[0].span if ir.stages else Span("<ir>", 1, 1, 1, 1)
            self.no(
                f"a network laid out as {' '.join(kinds)}: the SMASH space is {' '.join(want)}",
                span,
            )
            self.bag.raise_if_any()  # nothing else lines up with the space's stages
        if ir.input != cfg.input or ir.classes != cfg.classes:
            self.no(
                f"input {ir.input} with {ir.classes} classes: the search space has "
                f"{cfg.input} and {cfg.classes}",
                ir.stages[0].span,
            )
        expected = {"stem": stem_ops(cfg), "head": head_ops(cfg)}
        t = 0
        for st in ir.stages:
            if st.kind == "transition":
                expected[st.name] = transition_ops(cfg, t)
                t += 1
        for st in ir.stages:
            if st.kind != "block" and self.stage_ops(st.name) != expected[st.name]:
                shown = " -> ".join(op_kind(o) for o in expected[st.name])
                self.no(
                    f"this {st.kind}: the SMASH space's {st.kind} is {shown} "
                    "(with its fixed sizes)",
                    st.span,
                )

    def op(self, layer: LayerAccess, span: Span) -> arch.SmashOp | None:
        cfg = self.cfg
        if len(layer.ops) != 1 or not isinstance(layer.ops[0], arch.SmashOp):
            kinds = " -> ".join(op_kind(o) for o in layer.ops) or "nothing"
            self.no(f"layer '{layer.name}' ({kinds}): SMASH-space layers are one smash op", span)
            return None
        op = layer.ops[0]
        ok = True
        if op.out % cfg.unit or op.out > cfg.max_units:
            self.no(
                f"out={op.out}: must be a multiple of {cfg.unit} up to {cfg.max_units}", op.span
            )
            ok = False
        cap = cfg.max_bottleneck * cfg.max_units
        if op.bottleneck % cfg.unit or op.bottleneck > cap:
            self.no(
                f"bottleneck={op.bottleneck}: must be a multiple of {cfg.unit} up to {cap}", op.span
            )
            ok = False
        allowed = _ACTIVE[cfg.convs_per_op != 1]
        active = tuple(c is not None for c in op.convs)
        if active not in allowed:
            used = "{" + ", ".join(str(i) for i, a in enumerate(active) if a) + "}"
            self.no(f"active convs {used} with {cfg.convs_per_op} conv(s) per op", op.span)
            ok = False
        for c in op.convs:
            if c is None:
                continue
            if any(k not in cfg.kernel_sizes for k in c.kernel):
                self.no(f"kernel {c.kernel}: sizes are {cfg.kernel_sizes}", c.span)
                ok = False
            if any(d > cfg.max_dilation for d in c.dilation):
                self.no(f"dilation {c.dilation}: at most {cfg.max_dilation}", c.span)
                ok = False
            if c.groups not in cfg.groups:
                self.no(f"groups={c.groups}: groups are {cfg.groups}", c.span)
                ok = False
            if c.act != "relu":
                self.no(f"act={c.act}: SMASH convs use relu", c.span)
                ok = False
        return op if ok else None

    def block_layers(self, b: int, info) -> list[tuple[LayerAccess, arch.SmashOp]]:
        cfg = self.cfg
        widths = set(info.banks)
        width = info.banks[0]
        if len(widths) != 1 or width % cfg.unit or width > cfg.max_units:
            self.no(
                f"banks {list(info.banks)}: one width, a multiple of {cfg.unit} up to "
                f"{cfg.max_units}",
                info.span,
            )
            return []
        if len(info.banks) > cfg.max_banks:
            self.no(f"{len(info.banks)} banks: at most {cfg.max_banks}", info.span)
        if info.output != tuple(range(len(info.banks))):
            self.no("a block output that is not all banks", info.span)
        if not info.layers:
            self.no("a block without layers (nothing would record its bank size)", info.span)
        out = []
        for layer in layer_accesses(self.ir, info.name):
            span = next((o.span for o in layer.ops), info.span)
            op = self.op(layer, span)
            if layer.mode != "write":
                self.no(f"layer '{layer.name}' overwrites: SMASH layers add into banks", span)
                continue
            if list(layer.writes) != sorted(layer.writes):
                self.no(
                    f"layer '{layer.name}' writes banks {list(layer.writes)}: "
                    "list write banks in increasing order",
                    span,
                )
                continue
            cuts = self.straddles(layer.reads, width)
            if cuts:
                self.no(
                    f"layer '{layer.name}' reads {list(layer.reads)}: banks "
                    f"{cuts} share a {cfg.slice_width}-channel slice, so they must be "
                    "listed in increasing order",
                    span,
                )
                continue
            if op is not None:
                out.append((layer, op))
        return out

    def straddles(self, reads: tuple[int, ...], width: int) -> list[int]:
        for s_banks in _slice_banks(reads, width, self.cfg.slice_width):
            if list(s_banks) != sorted(s_banks):
                return list(s_banks)
        return []

    def run(self) -> Encoding:
        cfg, ir = self.cfg, self.ir
        self.skeleton()
        blocks = ir.blocks
        per_block = [self.block_layers(b, info) for b, info in enumerate(blocks)]
        self.bag.raise_if_any()
        f = _layout(cfg)
        conv_fields = [
            tuple(f[f"c{p}.{k}"][0] for k in ("dilation_h", "dilation_w", "kernel_h", "kernel_w"))
            + (f[f"c{p}.groups"][0],)
            for p in range(cfg.convs_per_op)
        ]
        # (channels, rows, first slice, end slice) set to +1: built first and written into
        # one array at the end (a column array per op and a dozen numpy calls each took
        # most of encoding's time)
        marks: list[tuple[list[int], int, int, int]] = []
        slots: list[OpSlot] = []
        at = 0
        for b, (info, layers) in enumerate(zip(blocks, per_block, strict=True)):
            width = info.banks[0]
            for layer, op in layers:
                banks_per_slice = _slice_banks(layer.reads, width, cfg.slice_width)
                rows = op.bottleneck // cfg.unit
                end = at + len(banks_per_slice)
                shared = [f["write"][0] + bank for bank in layer.writes]  # every slice's
                shared += (
                    f["block"][0] + b,
                    f["units"][0] + op.out // cfg.unit - 1,
                    f["bank_size"][0] + width // cfg.unit - 1,
                )
                for p, c in enumerate(op.convs[: cfg.convs_per_op]):
                    if c is None:
                        continue
                    dil_h, dil_w, k_h, k_w, groups = conv_fields[p]
                    shared += (
                        dil_h + c.dilation[0] - 1,
                        dil_w + c.dilation[1] - 1,
                        k_h + cfg.kernel_sizes.index(c.kernel[0]),
                        k_w + cfg.kernel_sizes.index(c.kernel[1]),
                        groups + cfg.groups.index(c.groups),
                    )
                if cfg.convs_per_op == 4:
                    shared += [f["active"][0] + p for p, c in enumerate(op.convs) if c is not None]
                marks.append((shared, rows, at, end))
                for s, banks in enumerate(banks_per_slice, start=at):
                    marks.append(([f["read"][0] + bank for bank in banks], rows, s, s + 1))
                marks.append(([f["op_start"][0]], rows, at, at + 1))
                cin = sum(info.banks[r] for r in layer.reads)
                node = self.layer_op[layer.name]
                slots.append(OpSlot(node, b, at, end - at, rows, cin, op.bottleneck))
                at = end
        c = np.full((cfg.channels, cfg.rows, at), -1.0, np.float32)
        for channels, rows, first, stop in marks:
            c[channels, :rows, first:stop] = 1
        tensor = torch.from_numpy(c[None])
        return Encoding(tensor, tuple(slots), cfg)


def _slice_banks(reads: tuple[int, ...], width: int, slice_width: int) -> list[tuple[int, ...]]:
    """For each slice of the concatenated reads: the banks its channels come from, in order."""
    total = len(reads) * width
    out = []
    for start in range(0, total, slice_width):
        first, last = start // width, (min(start + slice_width, total) - 1) // width
        banks: list[int] = []
        for r in reads[first : last + 1]:
            if not banks or banks[-1] != r:
                banks.append(r)
        out.append(tuple(banks))
    return out


def encode(ir: IRGraph, cfg: EncodingConfig | None = None) -> Encoding:
    """c for a SMASH-space network; SmashError (E0601) naming every construct c cannot hold."""
    return _Encoder(ir, cfg or EncodingConfig()).run()


# --- decode ------------------------------------------------------------------------------


def _hot(v: torch.Tensor, field: tuple[int, int]) -> list[int]:
    start, n = field
    return [i for i in range(n) if v[start + i] > 0]


def decode_arch(tensor: torch.Tensor, cfg: EncodingConfig | None = None) -> arch.Network:
    """The architecture encoded in ``tensor`` (1, C, rows, S), as an arch.Network."""
    cfg = cfg or EncodingConfig()
    f = cfg.fields()
    c = tensor[0]
    starts = [s for s in range(c.shape[2]) if c[f["op_start"][0], 0, s] > 0]
    bounds = list(zip(starts, starts[1:] + [c.shape[2]], strict=True))
    per_block: dict[int, list[arch.Layer]] = {b: [] for b in range(len(cfg.block_inputs))}
    widths: dict[int, int] = {}
    used: dict[int, int] = {}
    for s0, s1 in bounds:
        v = c[:, 0, s0]
        block = _hot(v, f["block"])[0]
        width = (_hot(v, f["bank_size"])[0] + 1) * cfg.unit
        widths[block] = width
        reads: list[int] = []
        for s in range(s0, s1):
            for bank in _hot(c[:, 0, s], f["read"]):
                if not reads or reads[-1] != bank:
                    reads.append(bank)
        writes = _hot(v, f["write"])
        rows = int((c[f["op_start"][0], :, s0] > 0).sum())
        out = (_hot(v, f["units"])[0] + 1) * cfg.unit
        convs: list[arch.SmashConv | None] = [None, None, None, None]
        active = _hot(v, f["active"]) if cfg.convs_per_op == 4 else [0]
        for p in active:
            k = (
                cfg.kernel_sizes[_hot(v, f[f"c{p}.kernel_h"])[0]],
                cfg.kernel_sizes[_hot(v, f[f"c{p}.kernel_w"])[0]],
            )
            d = (_hot(v, f[f"c{p}.dilation_h"])[0] + 1, _hot(v, f[f"c{p}.dilation_w"])[0] + 1)
            g = cfg.groups[_hot(v, f[f"c{p}.groups"])[0]]
            convs[p] = arch.SmashConv(k, d, g)
        op = arch.SmashOp(out, rows * cfg.unit, tuple(convs))  # type: ignore[arg-type]
        name = f"block{block}_l{len(per_block[block])}"
        per_block[block].append(arch.Layer(name, tuple(reads), tuple(writes), (op,)))
        used[block] = max([used.get(block, 0), *(r + 1 for r in reads), *(w + 1 for w in writes)])
    blocks = []
    for b, cin in enumerate(cfg.block_inputs):
        width = widths.get(b, cfg.unit)
        n = max(used.get(b, 0), -(-cin // width))
        blocks.append(arch.Block(f"block{b}", (width,) * n, tuple(per_block[b]), tuple(range(n))))
    return network(cfg, blocks)


def decode(tensor: torch.Tensor, cfg: EncodingConfig | None = None) -> IRGraph:
    """decode: c -> IR (after the default pipeline), the inverse of ``encode``."""
    from smashc.ir import lower
    from smashc.passes import run_pipeline

    return run_pipeline(lower(decode_arch(tensor, cfg))).ir


def save(enc: Encoding, path: str | Path) -> list[Path]:
    """Writes ``.pt`` or ``.npy`` (by suffix) and a ``.json`` sidecar with the config and slots."""
    path = Path(path)
    if path.suffix not in (".npy", ".pt"):
        raise ValueError(f"encoding files end in .npy or .pt, not {path.suffix or 'nothing'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        import numpy as np

        np.save(path, enc.tensor.numpy())
    else:
        torch.save(enc.tensor, path)
    side = path.with_suffix(".json")
    meta = {
        "shape": list(enc.tensor.shape),
        "config": asdict(enc.config),
        "fields": {k: list(v) for k, v in enc.config.fields().items()},
        "ops": [asdict(s) for s in enc.slots],
    }
    side.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return [path, side]


def op_weights(out: torch.Tensor, enc: Encoding) -> list[torch.Tensor]:
    """Each op's generated 1x1 weight matrix (bottleneck, in_channels) from a HyperNet output.

    ``out`` has shape (1, unit * slice_width, rows, S): position (row r, slice s) holds the
    unit-out x slice_width-in block for output units ``r*unit..`` and input channels
    ``s*slice_width..``; channel ``o * slice_width + i`` is entry (o, i) of that block.
    """
    cfg = enc.config
    n, sw = cfg.unit, cfg.slice_width
    mats = []
    for slot in enc.slots:
        h = out[0, :, : slot.rows, slot.first_slice : slot.first_slice + slot.slices]
        h = h.reshape(n, sw, slot.rows, slot.slices).permute(2, 0, 3, 1)
        m = h.reshape(slot.rows * n, slot.slices * sw)
        mats.append(m[: slot.bottleneck, : slot.in_channels])
    return mats


def _value(cfg: EncodingConfig, field: str, index: int):
    """What the ``index``-th channel of ``field`` stands for (a bank, a size, a group count)."""
    kind = field.split(".")[-1]
    if kind in ("units", "bank_size"):
        return (index + 1) * cfg.unit
    if kind.startswith("dilation"):
        return index + 1
    if kind.startswith("kernel"):
        return cfg.kernel_sizes[index]
    if kind == "groups":
        return cfg.groups[index]
    if kind == "op_start":
        return "yes"
    return index


def describe(enc: Encoding) -> str:
    """A readable dump of c: per op, its slices and rows and the +1 entries of each field."""
    cfg = enc.config
    f = cfg.fields()
    c = enc.tensor[0]
    lines = [
        f"c: shape {tuple(enc.tensor.shape)} = (batch, {cfg.channels} channels, "
        f"{cfg.rows} rows of {cfg.unit} bottleneck units, {c.shape[2]} slices of "
        f"{cfg.slice_width} input channels); -1 everywhere except these +1 entries "
        "(shown as the values they stand for: banks, channel counts, sizes):"
    ]
    for slot in enc.slots:
        s0, s1 = slot.first_slice, slot.first_slice + slot.slices
        lines.append(
            f"  op {slot.node}: slices {s0}..{s1 - 1}, rows 0..{slot.rows - 1} "
            f"(in {slot.in_channels}, bottleneck {slot.bottleneck})"
        )
        for s in range(s0, s1):
            v = c[:, 0, s]
            hot = []
            for name, (start, n) in f.items():
                on = [_value(cfg, name, i) for i in range(n) if v[start + i] > 0]
                if on:
                    hot.append(f"{name}={','.join(map(str, on))}")
            lines.append(f"    slice {s}: " + " ".join(hot))
    return "\n".join(lines) + "\n"
