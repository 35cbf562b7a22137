"""Training the one-shot model: the HyperNet and the shared weights, one sampled
architecture per step (SMASH's training phase).

Step ``g`` trains on the architecture ``Sampler(seed SMASH_ARCH, g)`` draws at annealing
progress ``g / total`` and the noise ``z`` of stream SMASH_NOISE, so an interrupted run
resumed from its checkpoint makes exactly the choices of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from smashc.compiler import Network
from smashc.runtime import checkpoints, loop, runs
from smashc.runtime.config import SmashTraining
from smashc.runtime.context import RunContext
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.progress import duration
from smashc.runtime.sampler import Sampler
from smashc.runtime.seeds import Stream


def fused(device: torch.device | str) -> bool:
    """Whether torch's fused optimiser kernels run on ``device``."""
    return torch.device(device).type in ("cpu", "cuda")


def smash_optimizer(model: OneShot, t: SmashTraining) -> torch.optim.Adam:
    """The reference's Adam, weight decay on the shared weights only.

    Fused: one kernel over every parameter instead of some ten ops per tensor, the same
    update; 0.7 ms per step instead of 2.7 for the reference-sized model's 66 tensors on
    2 cores (``bench/archive/optim.py``).
    """
    device = next(model.parameters()).device
    return torch.optim.Adam(
        [
            {"params": model.shared.parameters(), "weight_decay": t.weight_decay},
            {"params": model.hypernet.parameters(), "weight_decay": 0.0},
        ],
        lr=t.lr,
        betas=t.betas,
        eps=t.eps,
        fused=fused(device),
    )


def arch_for_step(ctx: RunContext, step: int, progress: float) -> Network:
    """The architecture HyperNet training step ``step`` trains on."""
    return Sampler(ctx.cfg.space, ctx.seed(Stream.SMASH_ARCH, step)).sample(
        progress, name=f"step{step}"
    )


class _Inline:
    """Compiles the next architecture at once, in this thread (the CPU's executor).

    On a GPU a thread compiles it while the device computes. On the CPU there is nothing to
    overlap: torch's threads keep every core busy through a step, and a compiling thread
    costs a step at least as much as compiling inline, as it also contends for Python's lock
    (``bench/overlap.py``, bf16 steps on 2 cores: a compile adds 13.9 / 13.1 ms inline and
    18.6 / 13.4 ms in a thread to an early step, 14.1 / 12.0 and 16.1 / 18.1 ms late).
    """

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _truncate_log(path: Path, global_step: int) -> None:
    """Drops log lines of steps a killed run made after its last checkpoint (they rerun)."""
    records = runs.read_jsonl(path)
    keep = [rec for rec in records if rec.get("global_step", global_step) < global_step]
    if path.exists():
        path.write_text("".join(json.dumps(rec) + "\n" for rec in keep), encoding="utf-8")


class _HyperNetTraining:
    """The HyperNet training's part of ``loop.run``: a step compiles the next architecture
    (ahead, on a GPU), draws its noise and trains on one batch; each step is logged to
    ``train.jsonl``."""

    def __init__(self, ctx: RunContext, model: OneShot, out: Path, pool) -> None:
        t = ctx.cfg.train
        self.ctx, self.model, self.pool = ctx, model, pool
        self.log = out / "train.jsonl"
        self.opt = smash_optimizer(model, t)
        self.data = ctx.batches(
            ctx.train, t.batch_size, Stream.SMASH_BATCHES, augment=True, drop_last=True
        )
        self.per_epoch = min(len(self.data), t.steps_per_epoch or len(self.data))
        self.total = self.per_epoch * t.epochs
        self.sched = loop.cosine(self.opt, self.total)
        self.pending: Future | None = None
        self.first = 0
        self.started = 0.0

    def plan(self) -> loop.Plan:
        t = self.ctx.cfg.train
        lr = f"train.lr, now {t.lr:g}"
        fp = checkpoints.fingerprint(self.ctx.cfg, checkpoints.HYPERNET_SETTINGS)
        what = "the HyperNet training"
        return loop.Plan(t.epochs, self.per_epoch, "smash", "step", what, lr, fp)

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])

    def start(self, epoch: int, step: int, resumed: bool) -> None:
        if not resumed:
            self.log.unlink(missing_ok=True)
            return
        if epoch >= self.ctx.cfg.train.epochs:
            print("HyperNet training had finished: going on from its checkpoint")
        else:
            print(f"resuming HyperNet training at epoch {epoch}, step {step}")
        _truncate_log(self.log, epoch * self.per_epoch + step)

    def _compile(self, g: int) -> Compiled:
        return self.model.compile(arch_for_step(self.ctx, g, g / self.total))

    def batches(self, epoch: int, first: int):
        self.first = first
        self.pending = self.pool.submit(self._compile, epoch * self.per_epoch + first)
        self.started = time.perf_counter()
        return self.data.epoch(epoch, start=first)

    def step(self, epoch: int, step: int, batch) -> tuple[float, dict[str, str]]:
        x, y = batch
        g = epoch * self.per_epoch + step
        assert self.pending is not None
        compiled = self.pending.result()
        if step + 1 < self.per_epoch:
            self.pending = self.pool.submit(self._compile, g + 1)
        gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed(Stream.SMASH_NOISE, g))
        c = compiled.enc.tensor
        z = torch.randn(1, 1, *c.shape[2:], generator=gen).to(self.ctx.device)
        value, acc = loop.train_step(
            self.model,
            (x, compiled, z),
            y,
            self.opt,
            self.sched,
            self.ctx.precision,
            self.ctx.device,
        )
        if not math.isfinite(value):
            return value, {}  # the loop stops with E0708
        rate = (step + 1 - self.first) / (time.perf_counter() - self.started)
        runs.append_jsonl(
            self.log,
            {
                "epoch": epoch,
                "step": step,
                "global_step": g,
                "loss": value,
                "acc": acc,
                "lr": self.sched.get_last_lr()[0],
                "time": time.time(),
            },
        )
        left = duration((self.total - g - 1) / rate)  # the whole training's, not the epoch's
        return value, {
            "loss": f"{value:.3f}",
            "acc": f"{acc:.2f}",
            "steps_s": f"{rate:.2f}",
            "all_left": left,
        }

    def end_epoch(self, epoch: int) -> None:
        pass


def train_smash(ctx: RunContext, out: Path, resume: bool) -> OneShot:
    """Trains the HyperNet and shared weights into ``out`` (``checkpoint.pt``,
    ``train.jsonl``), going on from the checkpoint there when ``resume``."""
    torch.manual_seed(ctx.seed(Stream.SMASH_INIT))
    model = OneShot(ctx.cfg.space, ctx.cfg.hypernet).to(ctx.device)
    pool = ThreadPoolExecutor(1) if ctx.device.type == "cuda" else _Inline()
    training = _HyperNetTraining(ctx, model, out, pool)
    model.train()
    try:
        loop.run(training.plan(), training, out / "checkpoint.pt", resume, ctx.device)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return model
