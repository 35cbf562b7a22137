"""The SMASH search space and its sampler: seeded random architectures as network objects.

The distribution follows the reference implementation (see ``SearchSpace``): per block a
budget fraction, a bank size that divides the block input (no input channel is dropped),
then ops until the budget is spent, each reading a random subset of the banks written so
far and adding into banks chosen with a preference for few extra writes.
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
    # bottleneck = min(bottleneck * out, max_bottleneck * N_max)
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
                        f"space.unit), and space.max_block_widths ({self.max_block_widths[b]}) "
                        f"and space.max_banks ({self.max_banks}) must leave room for one more "
                        "bank"
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


def bank_sizes(sp: SearchSpace, b: int) -> list[int]:
    """Block ``b``'s bank sizes (in units): those that divide its input and leave room,
    under its width cap and ``max_banks``, for at least one bank beyond the input's."""
    cin, cap = sp.block_inputs[b], sp.max_block_widths[b]
    return [
        s
        for s in range(1, sp.max_units // sp.unit + 1)
        if cin % (s * sp.unit) == 0
        and min(sp.max_banks, cap // (s * sp.unit)) > cin // (s * sp.unit)
    ]


@functools.cache
def _write_cdf(n: int) -> tuple[float, ...]:
    """The cumulative distribution ``Generator.choice(n, p=p)`` draws from for the
    ``exp(-extra)`` preference over ``n`` counts of extra writes, computed as it computes it."""
    p = np.exp(-np.arange(n))
    cdf = (p / p.sum()).cumsum()
    cdf /= cdf[-1]
    return tuple(cdf.tolist())


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
    # sampling an architecture. These two make the draws it makes (the same integer, the
    # same uniform number), so every seed still gives the same architectures;
    # ``tests/test_runtime.py`` compares them with ``rng.choice``.
    def _pick(self, options: tuple):
        """``rng.choice(options)``."""
        return options[int(self.rng.integers(0, len(options)))]

    def _extra_writes(self, n: int) -> int:
        """``rng.choice(n, p=exp(-arange(n)) / sum)``."""
        return bisect.bisect_right(_write_cdf(n), self.rng.random())

    def _anneal(self, progress: float) -> tuple[float, int]:
        t = min(1.0, max(0.0, 2 * progress))  # annealed over the first half
        sp = self.space
        max_budget = sp.budget_from + t * (sp.budget_to - sp.budget_from)
        kernel = sp.kernel_from + 2 * round(t * (sp.max_kernel - sp.kernel_from) / 2)
        return max_budget, kernel

    def _conv(self, max_kernel: int) -> arch.SmashConv:
        rng, sp = self.rng, self.space
        kernels = tuple(range(3, max_kernel + 1, 2))
        ks = [self._pick(kernels) for _ in range(2)]
        dil = [int(rng.integers(1, min(sp.max_dilation, 4 - (k - 1) // 2) + 1)) for k in ks]
        groups = self._pick(tuple(2**i for i in range(int(math.log2(sp.max_groups)) + 1)))
        return arch.SmashConv((ks[0], ks[1]), (dil[0], dil[1]), groups)

    def _op(self, reads: int, bank_size: int, max_kernel: int) -> arch.SmashOp:
        sp = self.space
        g = bank_size * min(reads, sp.max_units // sp.unit // bank_size)  # whole banks
        out = g * sp.unit
        bottleneck = min(sp.bottleneck * out, sp.max_bottleneck * sp.max_units)
        active = (0,)
        if sp.variable_ops:
            sets, probs = zip(*VARIABLE_OPS, strict=True)
            active = sets[int(self.rng.choice(len(sets), p=probs))]
        convs = tuple(self._conv(max_kernel) if p in active else None for p in range(4))
        return arch.SmashOp(out, bottleneck, convs)  # type: ignore[arg-type]

    def _block(self, b: int, max_budget: float, max_kernel: int) -> arch.Block:
        rng, sp = self.rng, self.space
        cin, cap = sp.block_inputs[b], sp.max_block_widths[b]
        bank_size = int(rng.choice(bank_sizes(sp, b)))
        width = bank_size * sp.unit
        n_banks = min(sp.max_banks, cap // width)
        written = cin // width  # the input fills the first banks
        budget = rng.uniform(0.3, max_budget) * sp.budgets[b]
        layers: list[arch.Layer] = []
        spent = 0.0
        while spent < budget or not layers:
            n_reads = int(rng.integers(1, written + 1))
            reads = tuple(sorted(int(r) for r in rng.choice(written, n_reads, replace=False)))
            op = self._op(n_reads, bank_size, max_kernel)
            chunks = op.out // width
            most = n_banks  # every bank, written or the next empty ones
            n_writes = chunks + self._extra_writes(most - chunks + 1)
            pool = min(n_banks, written + n_writes)
            chosen = sorted(int(t) for t in rng.choice(pool, n_writes, replace=False))
            new = [t for t in chosen if t >= written]  # empty banks are filled in order
            writes = tuple(t for t in chosen if t < written) + tuple(
                range(written, written + len(new))
            )
            written += len(new)
            layers.append(arch.Layer(f"b{b}_l{len(layers)}", reads, writes, (op,)))
            spent += 2 * op.out  # calibrated: median 25 ops per net early, 37 late (reference)
        return arch.Block(f"block{b}", (width,) * written, tuple(layers), tuple(range(written)))

    def sample(self, progress: float = 1.0, name: str = "sampled") -> arch.Network:
        """A random architecture of the space (``compiler.to_text`` writes it as .smash)."""
        max_budget, max_kernel = self._anneal(progress)
        blocks = [
            self._block(b, max_budget, max_kernel) for b in range(len(self.space.block_inputs))
        ]
        return space_network(self.space.encoding(), blocks, name)
