"""Random sampling: the ``score.archs`` architectures the sampler draws (SMASH's search)."""

from __future__ import annotations

from smashc.runtime.sampler import Sampler
from smashc.runtime.seeds import Stream
from smashc.runtime.strategies import register


def sampled(ctx, index: int):
    """The ``index``-th architecture a run draws for scoring."""
    return Sampler(ctx.cfg.space, ctx.seed(Stream.SCORE_ARCH, index)).sample(
        1.0, name=f"arch{index}"
    )


@register
class RandomSampling:
    name = "sample"
    label = "scoring"
    independent = True  # no proposal depends on another's score: ranks score them at once

    def budget(self, cfg) -> int:
        return cfg.score.archs

    def propose(self, ctx, history, start):
        for i in range(start, start + self.budget(ctx.cfg)):
            yield i, sampled(ctx, i)
