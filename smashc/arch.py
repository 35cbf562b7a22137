"""The expanded architecture: concrete ops, layers, blocks and stages, with no templates or loops.

This is what the front end hands to the IR lowering. Every number is resolved; every
node keeps the span of the .smash text it came from (not part of equality).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smashc.diagnostics import NOSPAN, Span

Pair = tuple[int, int]

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "identity")


def same_padding(kernel: Pair, dilation: Pair) -> Pair:
    """Padding that keeps the spatial size of a stride-1 conv with an odd kernel."""
    return (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)


def _span() -> Span:
    return field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Conv:
    out: int
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Pair = (1, 1)
    dilation: Pair = (1, 1)
    groups: int = 1
    bias: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class BatchNorm:
    eps: float = 1e-5
    momentum: float = 0.1
    span: Span = _span()


@dataclass(frozen=True)
class Act:
    kind: str  # one of ACTIVATIONS
    slope: float = 0.01  # negative slope, leaky_relu only
    span: Span = _span()


@dataclass(frozen=True)
class Pool:
    kind: str  # "avg" or "max"
    kernel: Pair = (2, 2)
    stride: Pair = (2, 2)
    padding: Pair = (0, 0)
    span: Span = _span()


@dataclass(frozen=True)
class GlobalAvgPool:
    span: Span = _span()


@dataclass(frozen=True)
class Linear:
    out: int
    bias: bool = True
    span: Span = _span()


@dataclass(frozen=True)
class ChannelPad:
    """Zero-pads the channel axis up to ``out`` channels (ResNet option-A shortcuts)."""

    out: int
    span: Span = _span()


@dataclass(frozen=True)
class SmashConv:
    """One position of the SMASH op's 2x2 conv grid: activation, then a "same"-padded conv."""

    kernel: Pair = (3, 3)
    dilation: Pair = (1, 1)
    groups: int = 1
    act: str = "relu"
    span: Span = _span()


@dataclass(frozen=True)
class SmashOp:
    """1x1 bottleneck conv (HyperNet-generated), ReLU, then convs c0->c1 and c2->c3, summed.

    ``convs`` has four entries (grid positions 0..3); None marks an inactive conv.
    c0 and c2 read the bottleneck (``bottleneck`` channels), c1 and c3 read the output of
    c0 and c2 (``out`` channels); every conv produces ``out`` channels.
    """

    out: int
    bottleneck: int
    convs: tuple[SmashConv | None, SmashConv | None, SmashConv | None, SmashConv | None]
    span: Span = _span()

    def conv_in(self, position: int) -> int:
        return self.bottleneck if position in (0, 2) else self.out

    def paths(self) -> tuple[tuple[tuple[int, SmashConv], ...], ...]:
        """The grid's active chains, each of (position, conv): c0 -> c1 and c2 -> c3."""
        chains = []
        for first, second in ((0, 1), (2, 3)):
            chain = [(p, c) for p in (first, second) if (c := self.convs[p]) is not None]
            if chain and chain[0][0] == first:
                chains.append(tuple(chain))
        return tuple(chains)


@dataclass(frozen=True)
class Sum:
    """Parallel op sequences from one input, outputs added."""

    paths: tuple[tuple[Op, ...], ...]
    span: Span = _span()


# The built-in ops. Ops registered elsewhere (smashc.ops) bring their own payload class; what
# every stage knows about an op, its kind name included, comes from its registry entry.
Op = Conv | BatchNorm | Act | Pool | GlobalAvgPool | Linear | ChannelPad | SmashOp | Sum


@dataclass(frozen=True)
class Layer:
    """Reads banks (concatenated in order), applies ops, writes the result into banks.

    The output is cut into chunks of the (common) write-bank width; write bank j receives
    chunk ``j mod n_chunks``. ``mode`` "write" adds into the bank, "overwrite" replaces it.
    """

    name: str
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    ops: tuple[Op, ...]
    mode: str = "write"
    span: Span = _span()


@dataclass(frozen=True)
class Block:
    """Memory banks (channel widths) and layers; the block input fills the first banks.

    The block's output is the concatenation of the ``output`` banks.
    """

    name: str
    banks: tuple[int, ...]
    layers: tuple[Layer, ...]
    output: tuple[int, ...]
    template: str | None = field(default=None, compare=False)
    span: Span = _span()


@dataclass(frozen=True)
class Stage:
    """A stem, transition or head: an op sequence outside any block."""

    kind: str
    name: str
    ops: tuple[Op, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Network:
    name: str
    input: tuple[int, int, int]  # channels, height, width
    classes: int
    stages: tuple[Stage | Block, ...]
    span: Span = _span()

    @property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(s for s in self.stages if isinstance(s, Block))
