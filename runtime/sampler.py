"""The SMASH search space and its sampler: seeded random architectures as network objects.

The distribution is the reference implementation's (its SMASH.py; SMASH-reference.md,
"Sampling details"), rule by rule, each cited where it is drawn: per block a budget
fraction and a bank size, then ops until the block's budget of input channels is spent,
each reading a random subset of the banks written so far, drawing its output units near
its input's, and adding into banks chosen with a preference for few extra writes. The one
difference is a fix: bank sizes divide the block input, so no input channel is dropped
(``bank_sizes``). ``tests/test_sampler_distribution.py`` compares the draws with an
independent implementation of the reference's rules (``tests/reference_draw.py``).
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from smashc.compiler import EncodingConfig, arch, space_network
from smashc.runtime.rules import count, counts, number, odd, power_of_two, setting

VARIABLE_OPS = (
    ((0,), 0.05),
    ((0, 2), 0.10),
    ((0, 1), 0.15),
    ((0, 1, 2), 0.25),
    ((0, 1, 2, 3), 0.45),
)


@dataclass(frozen=True)
class SearchSpace:
    """Search-space settings; defaults are the reference implementation's."""

    unit: int = setting(8, count(1))  # N
    max_units: int = setting(64, count(1))  # N_max
    # bottleneck = min(clip(cin // out, 1, bottleneck) * out, cin, max_bottleneck * N_max)
    bottleneck: int = setting(4, count(1))
    max_bottleneck: int = setting(2, count(1))
    depth_compression: int = setting(2, count(1))
    # dilations are drawn from 1 .. 4 - (k - 1) / 2: none is left for 9x9 kernels
    max_kernel: int = setting(7, odd(3, 7))
    max_dilation: int = setting(3, count(1))
    max_groups: int = setting(8, power_of_two())
    max_banks: int = setting(32, count(1))
    block_inputs: tuple[int, ...] = setting((64, 96, 112), counts(1))
    max_block_widths: tuple[int, ...] = setting((192, 224, 256), counts(1))
    budgets: tuple[int, ...] = setting((832, 1632, 3184), counts(1))
    variable_ops: bool = False  # draw the 2x2 op's active convs (else c0 only)
    input: tuple[int, int, int] = (3, 32, 32)
    classes: int = 100
    # annealing over the first half of training: max budget fraction and max kernel size;
    # a block's budget fraction is drawn from U(0.3, max), max annealed from -> to
    budget_from: float = setting(0.5, number(0.3))
    budget_to: float = setting(1.0, number(0.3))
    kernel_from: int = setting(3, odd(3, 7))

    def cross_checks(self) -> list[str]:
        """What keeps this space from drawing architectures, beyond the ranges of single
        settings (checked once those hold)."""
        out = []
        if self.max_units % self.unit:
            out.append(
                f"space.max_units ({self.max_units}) must be a multiple of space.unit ({self.unit})"
            )
        elif self.unit % self.max_groups:
            out.append(
                f"space.max_groups ({self.max_groups}) must divide space.unit ({self.unit}): "
                "every conv's channel counts are multiples of the unit"
            )
        lengths = {len(self.block_inputs), len(self.max_block_widths), len(self.budgets)}
        if len(lengths) > 1:
            out.append(
                "space.block_inputs, space.max_block_widths and space.budgets need one entry "
                f"per block, got {len(self.block_inputs)}, {len(self.max_block_widths)} and "
                f"{len(self.budgets)}"
            )
        elif not out:
            for b, cin in enumerate(self.block_inputs):
                if not bank_sizes(self, b):
                    out.append(
                        f"block {b} has no bank size: its input ({cin} channels) must be a "
                        "multiple of a bank size (space.unit ... space.max_units, in steps of "
                        "space.unit; at least space.depth_compression banks of a size that is "
                        "not a multiple of it), and space.max_block_widths "
                        f"({self.max_block_widths[b]}) and space.max_banks ({self.max_banks}) "
                        "must leave room for one more bank"
                    )
        if self.kernel_from > self.max_kernel:
            out.append(
                f"space.kernel_from ({self.kernel_from}) must be at most space.max_kernel "
                f"({self.max_kernel})"
            )
        if self.budget_from > self.budget_to:
            out.append(
                f"space.budget_from ({self.budget_from:g}) must be at most space.budget_to "
                f"({self.budget_to:g})"
            )
        return out

    def encoding(self) -> EncodingConfig:
        return EncodingConfig(
            unit=self.unit,
            max_units=self.max_units,
            depth_compression=self.depth_compression,
            max_bottleneck=self.max_bottleneck,
            max_banks=self.max_banks,
            block_inputs=self.block_inputs,
            kernel_sizes=tuple(range(3, self.max_kernel + 1, 2)),
            max_dilation=self.max_dilation,
            groups=tuple(2**i for i in range(int(math.log2(self.max_groups)) + 1)),
            convs_per_op=4 if self.variable_ops else 1,
            input=self.input,
            classes=self.classes,
        )


def read_step(sp: SearchSpace, bank_size: int) -> int:
    """Read counts are multiples of this: the reference (SMASH.py) draws only multiples of
    depth_compression where the bank size is not one (odd sizes read 2, 4, ... banks), so an
    op's input fills whole slices of c."""
    return 1 if bank_size % sp.depth_compression == 0 else sp.depth_compression


def bank_sizes(sp: SearchSpace, b: int) -> list[int]:
    """Block ``b``'s bank sizes (in units), drawn uniformly as the reference draws its own.

    The reference offers every size whose banks hold at least one read step of the input
    (``read_step``) and drops the input channels that do not fill a whole bank (defect 3 in
    SMASH-reference.md). smashc keeps only the sizes that divide the input, so nothing is
    dropped; with the default space that narrows {1, 2, 3, 4, 6, 8}, {1..6, 8}, {1..8} to
    {1, 2, 4, 8}, {1, 2, 3, 4, 6}, {1, 2, 7} (docs/search.md, "The search space"). A size
    must also leave room, under the block's width cap and ``max_banks``, for one bank beyond
    the input's (every size of the default space does)."""
    cin, cap = sp.block_inputs[b], sp.max_block_widths[b]
    out = []
    for s in range(1, sp.max_units // sp.unit + 1):
        width = s * sp.unit
        inputs = cin // width
        fits = cin % width == 0 and inputs >= read_step(sp, s)
        if fits and min(sp.max_banks, cap // width) > inputs:
            out.append(s)
    return out


def bottleneck_width(sp: SearchSpace, cin: int, out: int) -> int:
    """The width of an op's 1x1 conv as the reference (SMASH.py, in the SMASH and the derived
    network alike) sets it: the largest multiple of ``out`` not above ``cin``, clipped to
    ``out`` .. ``bottleneck * out``, then cut to ``cin`` (an op reading fewer channels than
    it outputs keeps them all: the paper's "1x1 convolution reducing the number of incoming
    channels" never widens) and to ``max_bottleneck * N_max`` (the encoding's rows; the
    reference also cuts it to its generated matrix's 64 columns, defect 1, smashc does not)."""
    times = min(max(cin // out, 1), sp.bottleneck)
    return min(times * out, cin, sp.max_bottleneck * sp.max_units)


def _cdf(weights: list[float]) -> tuple[float, ...]:
    """The cumulative distribution ``Generator.choice(n, p=w / sum(w))`` draws from,
    computed as it computes it."""
    p = np.asarray(weights, dtype=float)
    cdf = (p / p.sum()).cumsum()
    cdf /= cdf[-1]
    return tuple(cdf.tolist())


@functools.cache
def _write_cdf(n: int) -> tuple[float, ...]:
    """The ``exp(-extra)`` preference over ``n`` counts of extra writes."""
    return _cdf(np.exp(-np.arange(n)).tolist())


@functools.cache
def _units_cdf(bank_size: int, target: int, most: int) -> tuple[float, ...]:
    """The reference's (SMASH.py) weights of G = bank_size, 2 bank_size, ... up to ``most``
    units: 1 / (0.01 + 10 |G - target|), target = reads x bank size. Below the cap nearly
    every draw takes the target; above it, G spreads over all the choices."""
    return _cdf([1 / (0.01 + 10 * abs(g - target)) for g in range(bank_size, most + 1, bank_size)])


@dataclass
class Sampler:
    """Draws architectures; ``progress`` in [0, 1] drives the annealing (1 = fully annealed)."""

    space: SearchSpace = field(default_factory=SearchSpace)
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    # ``rng.choice`` costs 9-13 us a call (it converts and checks its arguments), a third of
    # sampling an architecture. These make the draws it makes (the same integer, the same
    # uniform number), so every seed gives the architectures it would give with ``choice``;
    # ``tests/test_runtime.py`` compares them with ``rng.choice``.
    def _pick(self, options: tuple):
        """``rng.choice(options)``."""
        return options[int(self.rng.integers(0, len(options)))]

    def _draw(self, cdf: tuple[float, ...]) -> int:
        """``rng.choice(len(p), p=p)`` for the distribution whose ``_cdf`` is ``cdf``."""
        return bisect.bisect_right(cdf, self.rng.random())

    def _extra_writes(self, n: int) -> int:
        """``rng.choice(n, p=exp(-arange(n)) / sum)``."""
        return self._draw(_write_cdf(n))

    def _anneal(self, progress: float) -> tuple[float, int]:
        """The reference (SMASH.py) anneals both over the first half of training: the largest
        budget fraction linearly, the largest kernel as 3 + int(t (7 - 3)) rounded up to an
        odd size (5 from t = 1/4, 7 from t = 3/4)."""
        t = min(1.0, max(0.0, 2 * progress))
        sp = self.space
        max_budget = sp.budget_from + t * (sp.budget_to - sp.budget_from)
        steps = int(t * (sp.max_kernel - sp.kernel_from))
        return max_budget, sp.kernel_from + steps + steps % 2

    def _conv(self, max_kernel: int) -> arch.SmashConv:
        """As the reference (SMASH.py) draws a conv: each kernel axis uniform over the odd
        sizes 3 .. max_kernel, each dilation axis uniform over 1 .. 4 - (k - 1) / 2 (capped at
        ``max_dilation``), groups uniform over the powers of two up to ``max_groups``."""
        rng, sp = self.rng, self.space
        kernels = tuple(range(3, max_kernel + 1, 2))
        ks = [self._pick(kernels) for _ in range(2)]
        dil = [int(rng.integers(1, min(sp.max_dilation, 4 - (k - 1) // 2) + 1)) for k in ks]
        groups = self._pick(tuple(2**i for i in range(int(math.log2(sp.max_groups)) + 1)))
        return arch.SmashConv((ks[0], ks[1]), (dil[0], dil[1]), groups)

    def _op(
        self,
        reads: int,
        bank_size: int,
        max_kernel: int,
        units: int | None = None,
        banks: int | None = None,
    ) -> arch.SmashOp:
        """An op reading ``reads`` banks of ``bank_size`` units. Its output units G are
        drawn (``_units_cdf``) unless ``units`` gives them; ``banks``, the block's bank
        count, caps G at what the block can hold (the reference's spaces never reach it)."""
        sp = self.space
        if units is None:
            most = sp.max_units // sp.unit // bank_size * bank_size
            if banks is not None:
                most = min(most, banks * bank_size)
            units = bank_size * (1 + self._draw(_units_cdf(bank_size, reads * bank_size, most)))
        out = units * sp.unit
        bottleneck = bottleneck_width(sp, reads * bank_size * sp.unit, out)
        active = (0,)
        if sp.variable_ops:  # the reference's five conv sets and their probabilities
            sets, probs = zip(*VARIABLE_OPS, strict=True)
            active = sets[int(self.rng.choice(len(sets), p=probs))]
        convs = tuple(self._conv(max_kernel) if p in active else None for p in range(4))
        return arch.SmashOp(out, bottleneck, convs)  # type: ignore[arg-type]

    def _block(self, b: int, max_budget: float, max_kernel: int) -> arch.Block:
        rng, sp = self.rng, self.space
        cin, cap = sp.block_inputs[b], sp.max_block_widths[b]
        bank_size = int(rng.choice(bank_sizes(sp, b)))
        width = bank_size * sp.unit
        step = read_step(sp, bank_size)
        # as many banks as the block's width cap holds, at most c's ``max_banks`` (the
        # reference also caps them by a count from the budget fraction, which never binds
        # in its space); the input fills the first ones
        n_banks = min(sp.max_banks, cap // width)
        written = cin // width
        # The reference (SMASH.py) charges each op its input channels, counted in slices of
        # c, against a budget of U(0.3, max) x the block's channel budget, and adds ops while
        # the cheapest op (one read step) still fits. A block always has one op here, as the
        # reference's budgets always afford one and smaller spaces may not.
        slice_width = sp.depth_compression * sp.unit
        budget = math.floor(rng.uniform(0.3, max_budget) * sp.budgets[b] / slice_width)
        budget *= slice_width
        layers: list[arch.Layer] = []
        spent = 0
        while budget - spent >= step * width or not layers:
            # reads: a count uniform over the multiples of the read step up to the banks
            # written so far, cut to what the budget has left, then a random subset of the
            # written banks (the reference's draws)
            n_reads = step * int(rng.integers(1, written // step + 1))
            n_reads = min(n_reads, max(step, (budget - spent) // width // step * step))
            reads = tuple(sorted(int(r) for r in rng.choice(written, n_reads, replace=False)))
            op = self._op(n_reads, bank_size, max_kernel, banks=n_banks)
            spent += n_reads * width
            # writes, as the reference (SMASH.py) draws them: at least one bank per chunk of
            # the output, at most max(written / 2, chunks), extra writes with weight
            # exp(-extra); the banks among those written so far and the next `chunks` empty
            # ones, the empty ones taken are filled in order
            chunks = op.out // width
            most = max(written // 2, chunks)
            n_writes = chunks + self._extra_writes(most - chunks + 1)
            pool = written + min(chunks, n_banks - written)
            chosen = sorted(int(t) for t in rng.choice(pool, n_writes, replace=False))
            new = [t for t in chosen if t >= written]
            writes = tuple(t for t in chosen if t < written) + tuple(
                range(written, written + len(new))
            )
            written += len(new)
            layers.append(arch.Layer(f"b{b}_l{len(layers)}", reads, writes, (op,)))
        return arch.Block(f"block{b}", (width,) * written, tuple(layers), tuple(range(written)))

    def sample(self, progress: float = 1.0, name: str = "sampled") -> arch.Network:
        """A random architecture of the space (``compiler.to_text`` writes it as .smash)."""
        max_budget, max_kernel = self._anneal(progress)
        blocks = [
            self._block(b, max_budget, max_kernel) for b in range(len(self.space.block_inputs))
        ]
        return space_network(self.space.encoding(), blocks, name)
