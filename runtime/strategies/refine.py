"""The reference's refinement: hill climbing from the best architecture so far, keeping each
perturbation that scores better (``score.refine`` candidates, ``score.perturb`` each op's
chance of being redrawn)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from smashc.compiler import arch
from smashc.runtime.progress import note
from smashc.runtime.sampler import Sampler, SearchSpace, bottleneck_width, read_step
from smashc.runtime.seeds import Stream
from smashc.runtime.strategies import register

PERTURB_TRIES = 100  # draws refinement makes for a perturbation it has not scored yet


def perturb(
    net: arch.Network, space: SearchSpace, rng: np.random.Generator, p: float
) -> arch.Network:
    """Each layer's op is redrawn with probability p, and so are its reads (as the sampler
    draws them, from the banks already holding data at that layer); writes, banks and each
    op's output units stay, so the result stays valid. The bottleneck follows the reads: the
    sampler's rule (``bottleneck_width``) for the op's input and output."""
    sampler = Sampler(space, int(rng.integers(2**31)))
    blocks = []
    for b, blk in enumerate(net.blocks):
        width = blk.banks[0]
        bank_size = width // space.unit
        step = read_step(space, bank_size)
        written = space.block_inputs[b] // width
        layers = []
        for lay in blk.layers:
            op, reads = lay.ops[0], lay.reads
            if rng.random() < p:
                n = step * int(rng.integers(1, written // step + 1))
                reads = tuple(sorted(int(r) for r in rng.choice(written, n, replace=False)))
            if rng.random() < p:
                units = op.out // space.unit
                op = sampler._op(len(reads), bank_size, space.max_kernel, units=units)
            elif reads != lay.reads:
                op = replace(op, bottleneck=bottleneck_width(space, len(reads) * width, op.out))
            layers.append(replace(lay, reads=reads, ops=(op,)))
            written = max(written, max(lay.writes) + 1)
        blocks.append(replace(blk, layers=tuple(layers)))
    stages = []
    it = iter(blocks)
    for st in net.stages:
        stages.append(next(it) if isinstance(st, arch.Block) else st)
    return replace(net, stages=tuple(stages))


def fresh_perturbation(
    net: arch.Network,
    seen: set[arch.Network],
    space: SearchSpace,
    rng: np.random.Generator,
    p: float,
    tries: int = PERTURB_TRIES,
) -> arch.Network | None:
    """A perturbation of ``net`` that is in none of ``seen`` (networks compared without
    their names), or None after ``tries`` draws: scoring one again would only re-draw its
    noise sample, so keeping it if it scored better would select noise."""
    for _ in range(tries):
        cand = perturb(net, space, rng, p)
        if replace(cand, name="") not in seen:
            return cand
    return None


@register
class Refinement:
    name = "refine"
    label = "refining"

    def budget(self, cfg) -> int:
        return cfg.score.refine

    def propose(self, ctx, history, start):
        """Perturbations of the best so far, each a network not proposed before; the best
        moves to a candidate that scores lower."""
        sc = ctx.cfg.score
        if not history or not sc.refine:
            return
        rng = np.random.default_rng(ctx.seed(Stream.REFINE))
        current = min(history, key=lambda s: (s.error, s.index))
        seen: set[arch.Network] = set()
        for j in range(sc.refine):
            seen.add(replace(current.arch, name=""))  # a no-op once it was a candidate
            cand = fresh_perturbation(current.arch, seen, ctx.cfg.space, rng, sc.perturb)
            if cand is None:
                note(
                    f"refinement stopped after {j}: no new perturbation of the best "
                    f"architecture in {PERTURB_TRIES} draws (perturbation probability "
                    f"{sc.perturb})"
                )
                return
            seen.add(replace(cand, name=""))
            yield start + j, replace(cand, name=f"refined{j}")
            if history[-1].error < current.error:
                current = history[-1]
