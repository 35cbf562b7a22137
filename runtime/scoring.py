"""The SMASH score of an architecture: its validation error with HyperNet-generated weights.

A ``Scorer`` holds what every score of a run shares (the trained one-shot model, the
validation batches, the optional BN-calibration batches, the noise settings); each score
is a ``Scored`` record, appended to ``scores.jsonl`` as soon as it is known so that an
interrupted run re-scores nothing (``ScoreLog``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from smashc.compiler import Network, to_text, totals
from smashc.runtime import precision, records, runs
from smashc.runtime.context import RunContext
from smashc.runtime.data import Batches, Subset
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.progress import bar
from smashc.runtime.seeds import Stream


@dataclass(frozen=True)
class Scored:
    index: int
    source: str  # the strategy that proposed it: "sample", "refine", ...
    error: float
    params: int
    macs: int
    arch: Network

    def record(self) -> dict:
        """The line of ``scores.jsonl`` (the architecture as .smash text)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del fields["arch"]
        return {**fields, "text": to_text(self.arch)}


def _bn_buffers(model: OneShot) -> list[torch.Tensor]:
    return [b for name, b in model.shared.named_buffers() if "running_" in name]


@torch.no_grad()
def recalibrate_bn(model: OneShot, compiled: Compiled, weights, batches: Batches) -> None:
    """Replaces the shared BN statistics by this architecture's own, averaged over every
    batch of ``batches`` (the reference shares one set across all sampled architectures)."""
    for bn in (*model.shared.transition_bn, model.shared.head_bn):
        bn.reset_running_stats()
    momentum = compiled.net.bn_momentum
    compiled.net.train()
    for k, (x, _) in enumerate(batches.epoch(0)):
        compiled.net.bn_momentum = 1.0 / (k + 1)  # a running mean over the batches
        compiled.net(x, weights)
    compiled.net.bn_momentum = momentum
    compiled.net.eval()


@torch.no_grad()
def smash_error(
    model: OneShot,
    compiled: Compiled,
    batches: Batches,
    zs: list[torch.Tensor],
    calibration: Batches | None = None,
    prec: str = "fp32",
) -> float:
    """Top-1 validation error of ``compiled`` with generated weights, averaged over the noise
    samples ``zs``; with ``calibration``, BN statistics are first recomputed for each sample
    on those batches (the shared statistics are restored afterwards). Forward passes in
    precision ``prec`` (``runtime.precision``)."""
    model.eval()
    saved = [b.clone() for b in _bn_buffers(model)] if calibration is not None else []
    errors = []
    try:
        for z in zs:
            with precision.autocast(prec, z.device):
                weights = model.generated(compiled, z)
                if calibration is not None:
                    recalibrate_bn(model, compiled, weights, calibration)
                compiled.net.eval()
                wrong = total = 0
                for x, y in batches.epoch(0):
                    wrong += (compiled.net(x, weights).argmax(1) != y).sum().item()
                    total += len(y)
            errors.append(wrong / max(total, 1))
    finally:
        for b, old in zip(_bn_buffers(model), saved, strict=False):
            b.copy_(old)
    return sum(errors) / len(errors)


def noise(ctx: RunContext, index: int, compiled: Compiled, samples: int) -> list[torch.Tensor]:
    """The noise samples z the ``index``-th architecture of a run is scored with."""
    gen = torch.Generator().manual_seed(ctx.seed(Stream.SCORE_NOISE, index))
    shape = (1, 1, *compiled.enc.tensor.shape[2:])
    return [torch.randn(shape, generator=gen).to(ctx.device) for _ in range(samples)]


def score_batches(ctx: RunContext) -> Batches:
    """The validation images scoring uses (the first ``score.val_images`` of the split)."""
    val, n = ctx.val, ctx.cfg.score.val_images
    if n is not None and n < len(val):
        val = Subset(val.x[:n], val.y[:n])
    return ctx.batches(val, ctx.cfg.score.batch_size)


def calibration_batches(ctx: RunContext) -> Batches | None:
    """The first ``score.bn_batches`` training batches (no augmentation), or None when off."""
    n = ctx.cfg.score.bn_batches * ctx.cfg.score.batch_size
    if not n:
        return None
    return ctx.batches(Subset(ctx.train.x[:n], ctx.train.y[:n]), ctx.cfg.score.batch_size)


class Scorer:
    """Scores architectures of the run ``ctx`` with the trained ``model``."""

    def __init__(self, ctx: RunContext, model: OneShot) -> None:
        self.ctx, self.model = ctx, model
        self.batches = score_batches(ctx)
        self.calibration = calibration_batches(ctx)

    def error(self, compiled: Compiled, index: int) -> float:
        """The SMASH error of a compiled architecture, with the ``index``-th noise samples."""
        zs = noise(self.ctx, index, compiled, self.ctx.cfg.score.z_samples)
        return smash_error(
            self.model, compiled, self.batches, zs, self.calibration, self.ctx.precision
        )

    def score(self, index: int, source: str, arch: Network) -> Scored:
        """The ``index``-th architecture's score (its noise samples seeded by ``index``)."""
        compiled = self.model.compile(arch)
        err = self.error(compiled, index)
        params, macs = totals(compiled.ir)
        return Scored(index, source, err, params, macs, arch)


class ScoreLog:
    """``scores.jsonl``: the scores a run has, read back on resume and appended to as each
    new one is known; with ``path`` None, the scores in memory only (a rank other than 0
    of a process group, which writes nothing)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done: dict[int, Scored] = {}
        self.lines: dict[int, int] = {}  # index -> its record's line
        for number, rec in enumerate(runs.read_jsonl(path) if path else [], start=1):
            scored = Scored(**records.score_fields(rec, path, number, self.done))
            self.done[scored.index] = scored
            self.lines[scored.index] = number

    def get(self, index: int) -> Scored | None:
        return self.done.get(index)

    def add(self, rec: Scored) -> None:
        if self.path is not None:
            runs.append_jsonl(self.path, rec.record())
        self.done[rec.index] = rec


def score_indices(scorer: Scorer, log: ScoreLog, indices, arch_of, desc: str = "scoring"):
    """The scores of the architectures ``indices`` (``arch_of(index)`` draws one), from
    ``log`` where it has them, else scored and added to it; by index."""
    out = {}
    for i in bar(indices, desc=desc, unit="arch"):
        rec = log.get(i)
        if rec is None:
            rec = scorer.score(i, "sample", arch_of(i))
            log.add(rec)
        else:
            records.check_reuse(log, i, "sample", arch_of(i))
        out[i] = rec
    return out
