"""A process of the distributed tests (``tests/test_distributed.py`` starts two with
``torch.distributed.run``): one HyperNet step of a 2-rank meta-batch, rank r training
slot r; rank 0 saves the updated model to the path it is given."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from smashc.runtime import distributed, loop, metabatch
from smashc.runtime.context import open_context
from smashc.runtime.hypertrain import arch_for_step, noise_for_step, smash_optimizer
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS

BATCH = 16
CONFIG = replace(PRESETS["smoke"], device="cpu", precision="fp32")


def items(ctx, model, slots) -> list[metabatch.Item]:
    """Slot ``a``'s architecture, noise and batch (the ``a``-th of epoch 0), per slot."""
    batches = list(ctx.batches(ctx.train, BATCH, None).epoch(0))
    out = []
    for a in slots:
        c = model.compile(arch_for_step(ctx, a, 0.5))
        x, y = batches[a]
        out.append(metabatch.Item(x, c, noise_for_step(ctx, a, c), y))
    return out


def one_step(ctx, slots) -> OneShot:
    """A fresh one-shot model after one meta-batch step on ``slots`` (this process's)."""
    torch.manual_seed(0)
    model = OneShot(ctx.cfg.space, ctx.cfg.hypernet).train()
    opt = smash_optimizer(model, ctx.cfg.train)
    batch = items(ctx, model, slots)
    metabatch.step(model, batch, opt, loop.cosine(opt, 10), "fp32", ctx.device, ctx.group)
    return model


def main(out: Path) -> None:
    ctx = open_context(CONFIG)
    model = one_step(ctx, [ctx.group.rank])
    if ctx.group.main:
        torch.save(model.state_dict(), out)
    distributed.leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
