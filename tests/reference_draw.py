"""The reference implementation's architecture draw, re-implemented apart from smashc's sampler.

Written from SMASH-reference.md ("Sampling", "Sampling details") and the behaviour of the
reference's SMASH.py, not from ``runtime/sampler.py``: it draws with ``Generator.choice``
and explicit probability vectors, in its own order, and records only what the statistics
need (``Draw``). ``summarise`` turns a smashc ``arch.Network`` into the same record, so
``tests/test_sampler_distribution.py`` and ``bench/sampler.py`` compare the two with the
same statistics (``stats``), forward MACs included (``macs``, computed analytically).

``fixed=True`` draws bank sizes only among those that divide the block input (smashc's fix
of the reference's dropped input channels, defect 3); ``fixed=False`` draws the reference's
own sizes and drops the channels that do not fill a bank, as the reference does.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.stats

from smashc import arch
from smashc.runtime.sampler import Sampler, SearchSpace

# (kernel_h, kernel_w, dilation_h, dilation_w, groups) of one active conv
Conv = tuple[int, int, int, int, int]

OP_SETS = ((0,), (0, 2), (0, 1), (0, 1, 2), (0, 1, 2, 3))
OP_SET_P = (0.05, 0.10, 0.15, 0.25, 0.45)


@dataclass(frozen=True)
class Op:
    block: int
    reads: int  # banks read
    cin: int  # channels read
    units: int  # G, in units of N
    bottleneck: int
    convs: tuple[tuple[int, Conv], ...]  # (grid position, conv) of the active convs


@dataclass(frozen=True)
class Draw:
    bank_sizes: tuple[int, ...]  # per block, in units of N
    widths: tuple[int, ...]  # channels of each block's output (all its banks)
    ops: tuple[Op, ...]


def _sizes(sp: SearchSpace, b: int, fixed: bool) -> list[int]:
    """The reference offers each size whose banks hold at least one read step of the block
    input (depth_compression banks when the size is not a multiple of it)."""
    cin, out = sp.block_inputs[b], []
    for s in range(1, sp.max_units // sp.unit + 1):
        need = sp.depth_compression if s % sp.depth_compression else 1
        if cin // (s * sp.unit) >= need and (not fixed or cin % (s * sp.unit) == 0):
            out.append(s)
    return out


def _max_kernel(sp: SearchSpace, t: float) -> int:
    """The reference's annealed kernel bound: 3 + int((final - 3) // 2 * t * 2), t the
    fraction of the first half of training; the sizes drawn are the odd ones up to it + 1."""
    return sp.kernel_from + int((sp.max_kernel - sp.kernel_from) // 2 * t * 2)


def _conv(sp: SearchSpace, rng: np.random.Generator, bound: int) -> Conv:
    sizes = np.arange(3, bound + 2, 2)
    kh, kw = (int(k) for k in rng.choice(sizes, 2))
    dh, dw = (int(rng.integers(1, min(sp.max_dilation, 4 - (k - 1) // 2) + 1)) for k in (kh, kw))
    factors = [f for f in range(1, sp.max_groups + 1) if sp.unit % f == 0]  # of N, as it has
    return kh, kw, dh, dw, int(rng.choice(factors))


def draw(sp: SearchSpace, rng: np.random.Generator, progress: float, fixed: bool = True) -> Draw:
    """One architecture as the reference draws it at ``progress`` through training."""
    t = min(1.0, 2 * progress)
    max_budget = sp.budget_from + (sp.budget_to - sp.budget_from) * t
    bound = _max_kernel(sp, t)
    k = sp.max_units // sp.unit
    dc = sp.depth_compression
    sizes, widths, ops = [], [], []
    for b, nch in enumerate(sp.budgets):
        frac = rng.uniform(0.3, max_budget)
        bs = int(rng.choice(_sizes(sp, b, fixed)))
        bw = bs * sp.unit
        n_banks = min(sp.max_banks, sp.max_block_widths[b] // bw)
        written = sp.block_inputs[b] // bw  # the rest of the input is dropped (fixed: none)
        # the budget, in slices of c (dc * N input channels), charged per op with its input
        budget = math.floor(frac * nch / (sp.unit * dc))
        step = dc if bs % dc else 1
        cheapest = step * bs / dc
        used = 0.0
        while budget - used >= cheapest:
            counts = [n for n in range(step, n_banks + 1, step) if n <= written]
            affordable = max(n for n in counts if n <= (budget - used) * dc // bs)
            n = min(int(rng.choice(counts)), affordable)
            # (which n banks it reads, a random subset of the written ones, changes nothing
            # recorded here: every bank of a block is as wide)
            used += n * bs / dc
            choices = np.arange(bs, k + 1, bs)
            w = 1 / (0.01 + 10 * np.abs(choices - n * bs))
            g = int(rng.choice(choices, p=w / w.sum()))
            chunks = g // bs
            counts_w = np.arange(chunks, max(written // 2, chunks) + 1)
            pw = np.exp(-(counts_w - chunks).astype(float))
            n_writes = int(rng.choice(counts_w, p=pw / pw.sum()))
            pool = written + min(chunks, n_banks - written)
            targets = rng.choice(pool, n_writes, replace=False)
            written += int((targets >= written).sum())
            active = OP_SETS[int(rng.choice(5, p=OP_SET_P))] if sp.variable_ops else (0,)
            convs = tuple((p, _conv(sp, rng, bound)) for p in active)
            cin = n * bw
            out = g * sp.unit
            bneck = min(min(max(cin // out, 1), sp.bottleneck) * out, cin)
            bneck = min(bneck, sp.max_bottleneck * sp.max_units)
            ops.append(Op(b, n, cin, g, bneck, convs))
        sizes.append(bs)
        widths.append(written * bw)
    return Draw(tuple(sizes), tuple(widths), tuple(ops))


def draws(sp: SearchSpace, n: int, progress: float, seed: int, fixed: bool = True) -> list[Draw]:
    rng = np.random.default_rng(seed)
    return [draw(sp, rng, progress, fixed) for _ in range(n)]


def summarise(net: arch.Network, sp: SearchSpace) -> Draw:
    """A smashc network as the record ``draw`` makes."""
    sizes, widths, ops = [], [], []
    for b, blk in enumerate(net.blocks):
        bw = blk.banks[0]
        sizes.append(bw // sp.unit)
        widths.append(sum(blk.banks))
        for lay in blk.layers:
            (op,) = lay.ops
            assert isinstance(op, arch.SmashOp)
            convs = tuple(
                (p, (*c.kernel, *c.dilation, c.groups))
                for p, c in enumerate(op.convs)
                if c is not None
            )
            cin = sum(blk.banks[r] for r in lay.reads)
            ops.append(Op(b, len(lay.reads), cin, op.out // sp.unit, op.bottleneck, convs))
    return Draw(tuple(sizes), tuple(widths), tuple(ops))


def macs(d: Draw, sp: SearchSpace, columns: int | None = None) -> int:
    """Forward multiply-accumulates per image: the stem, every op's 1x1 and grid convs, the
    transitions' 1x1 convs (at the block's resolution, before the pooling) and the head's
    linear layer; BN, ReLU and pooling count nothing. ``columns`` cuts every bottleneck to
    that many channels, as the reference's SMASH network does with its 64-column generated
    matrix (defect 1: where its measured forward costs come from)."""
    c, h, w = sp.input
    total = c * sp.block_inputs[0] * 7 * 7 * h * w
    for op in d.ops:
        hw = (h >> op.block) * (w >> op.block)
        out = op.units * sp.unit
        bneck = op.bottleneck if columns is None else min(op.bottleneck, columns)
        total += op.cin * bneck * hw
        for p, (kh, kw, _, _, groups) in op.convs:
            cin = bneck if p in (0, 2) else out
            total += out * (cin // groups) * kh * kw * hw
    for b in range(len(d.widths) - 1):
        total += d.widths[b] * sp.block_inputs[b + 1] * (h >> b) * (w >> b)
    return total + d.widths[-1] * sp.classes


def stats(ds: list[Draw], sp: SearchSpace) -> dict[str, list[Counter]]:
    """Per network, the histograms compared: bank size per block, ops per network, and over
    its ops reads, G, bottleneck / cin (rounded to eighths), kernel sizes, dilations (both
    axes) and groups of the active convs."""
    keys = [f"bank size, block {b}" for b in range(len(sp.budgets))]
    keys += ["ops", "reads", "G", "bottleneck/cin", "kernel", "dilation", "groups"]
    out: dict[str, list[Counter]] = {key: [] for key in keys}
    for d in ds:
        per = {key: Counter() for key in keys}
        for b, size in enumerate(d.bank_sizes):
            per[f"bank size, block {b}"][size] += 1
        per["ops"][len(d.ops)] += 1
        for op in d.ops:
            per["reads"][op.reads] += 1
            per["G"][op.units] += 1
            per["bottleneck/cin"][round(8 * op.bottleneck / op.cin) / 8] += 1
            for _, (kh, kw, dh, dw, g) in op.convs:
                per["kernel"].update((kh, kw))
                per["dilation"].update((dh, dw))
                per["groups"][g] += 1
        for key in keys:
            out[key].append(per[key])
    return out


def pooled(per_net: list[Counter]) -> Counter:
    total: Counter = Counter()
    for c in per_net:
        total.update(c)
    return total


@dataclass(frozen=True)
class Test:
    statistic: float
    dof: float
    p: float


def _design_effects(y: np.ndarray) -> np.ndarray:
    """The eigenvalues of the design-effect matrix of category proportions estimated from
    ``y`` (networks x categories of counts), each network one cluster of ops: the
    covariance of the proportions between clusters over the multinomial one, over all but
    the last category."""
    m = y.sum(1)
    total, n = m.sum(), len(y)
    p = y.sum(0) / total
    resid = (y - np.outer(m, p))[:, :-1]
    clustered = n / (n - 1) * resid.T @ resid / total**2
    q = p[:-1]
    multinomial = (np.diag(q) - np.outer(q, q)) / total
    return np.linalg.eigvals(np.linalg.solve(multinomial, clustered)).real


def chi_square(a: list[Counter], b: list[Counter], least: int = 10) -> Test:
    """Pearson's two-sample chi-square of one quantity's histograms, ``a`` and ``b`` given per
    network, with the second-order Rao-Scott correction for clustered samples: the ops of
    one network share its bank sizes and budgets, so they are not independent draws and the
    plain statistic would overstate the evidence (G = 7 comes only from blocks of 56-channel
    banks, and then from most of that block's ops). The statistic is divided by the mean
    design effect times (1 + its squared coefficient of variation) and the degrees of
    freedom by the latter, never below the plain test (per-network quantities are not
    clustered: their design effects are about 1). Adjacent categories are merged until
    each holds ``least`` of the two samples together."""
    total = pooled(a) + pooled(b)
    groups: list[list] = [[]]
    held = 0
    for key in sorted(total):
        groups[-1].append(key)
        held += total[key]
        if held >= least:
            groups.append([])
            held = 0
    if not groups[-1]:
        groups.pop()
    elif len(groups) > 1:
        groups[-2] += groups.pop()
    if len(groups) < 2:
        return Test(0.0, 0, 1.0)

    def matrix(nets: list[Counter]) -> np.ndarray:
        return np.array([[sum(c[k] for k in g) for g in groups] for c in nets], dtype=float)

    ya, yb = matrix(a), matrix(b)
    plain, _, dof, _ = scipy.stats.chi2_contingency([ya.sum(0), yb.sum(0)], correction=False)
    delta = _design_effects(np.vstack([ya, yb]))
    spread = 1 + float(delta.var() / delta.mean() ** 2)
    scale = float(delta.mean()) * spread
    stat, dof = (float(plain) / scale, dof / spread) if scale > 1 else (float(plain), dof)
    return Test(stat, float(dof), float(scipy.stats.chi2.sf(stat, dof)))


def ks(a: list[float], b: list[float]) -> Test:
    """The two-sample Kolmogorov-Smirnov distance of two samples of a per-network value."""
    r = scipy.stats.ks_2samp(a, b)
    return Test(float(r.statistic), 0, float(r.pvalue))


def compare(a: list[Draw], b: list[Draw], sp: SearchSpace) -> dict[str, Test]:
    """Every histogram of ``stats`` (chi-square) and the forward MACs per image (KS)."""
    sa, sb = stats(a, sp), stats(b, sp)
    out = {key: chi_square(sa[key], sb[key]) for key in sa}
    out["MACs"] = ks([macs(d, sp) for d in a], [macs(d, sp) for d in b])
    return out


def sampled(sp: SearchSpace, n: int, progress: float, seed: int) -> list[Draw]:
    """``n`` architectures from smashc's sampler, as records."""
    sampler = Sampler(sp, seed)
    return [summarise(sampler.sample(progress), sp) for _ in range(n)]
