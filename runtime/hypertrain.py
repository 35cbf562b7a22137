"""Training the one-shot model: the HyperNet and the shared weights, a meta-batch of
sampled architectures per step (SMASH's training phase).

Step ``g`` trains on ``M`` architectures (``train.meta_batch`` per process times the
processes): the ``m``-th is slot ``a = g * M + m``, the architecture
``Sampler(seed SMASH_ARCH, a)`` draws at annealing progress ``g / total`` with the noise
``z`` of stream SMASH_NOISE and part ``a``, on the epoch's batch ``step * M + m``. With
one architecture per step the slot is the step. So an interrupted run resumed from its
checkpoint makes exactly the choices of an uninterrupted one.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from smashc.compiler import Network
from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.runtime import checkpoints, loop, metabatch, runs
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


def arch_for_step(ctx: RunContext, slot: int, progress: float) -> Network:
    """The architecture of HyperNet training slot ``slot`` (the step, with one architecture
    per step)."""
    return Sampler(ctx.cfg.space, ctx.seed(Stream.SMASH_ARCH, slot)).sample(
        progress, name=f"step{slot}"
    )


def noise_for_step(ctx: RunContext, slot: int, compiled: Compiled) -> torch.Tensor:
    """The HyperNet's noise input for training slot ``slot``."""
    gen = torch.Generator(device="cpu").manual_seed(ctx.seed(Stream.SMASH_NOISE, slot))
    c = compiled.enc.tensor
    return torch.randn(1, 1, *c.shape[2:], generator=gen).to(ctx.device)


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


def _groups(batches: Iterator, k: int) -> Iterator[list]:
    """``batches`` in lists of ``k`` (a last shorter one dropped)."""
    while len(group := list(itertools.islice(batches, k))) == k:
        yield group


class _HyperNetTraining:
    """The HyperNet training's part of ``loop.run``: a step compiles its architectures (the
    next step's ahead, on a GPU), draws their noise and trains each on its own batch, one
    optimiser step for the meta-batch (``runtime.metabatch``); each step is logged to
    ``train.jsonl``."""

    def __init__(self, ctx: RunContext, model: OneShot, out: Path, pool) -> None:
        t = ctx.cfg.train
        self.ctx, self.model, self.pool = ctx, model, pool
        self.rank, self.world = ctx.group.rank, ctx.group.world
        self.k = t.meta_batch  # architectures per process and step
        self.meta = self.k * self.world  # architectures per step
        self.log = out / "train.jsonl"
        self.opt = smash_optimizer(model, t)
        self.data = ctx.batches(
            ctx.train, t.batch_size, Stream.SMASH_BATCHES, augment=True, drop_last=True
        )
        if len(self.data) < self.meta:
            raise SmashError([error("E0750", self._too_few(), COMMAND_LINE)])
        self.per_epoch = self._per_epoch(self.meta)
        self.logged: int | None = None  # where a checkpoint of another meta-batch left the log
        self.total = self.per_epoch * t.epochs
        self.sched = loop.cosine(self.opt, self.total)
        self.pending: list[Future] = []
        self.first = 0
        self.started = 0.0

    def _per_epoch(self, meta: int) -> int:
        """Steps per epoch with a meta-batch of ``meta``."""
        whole = len(self.data) // meta
        return min(whole, self.ctx.cfg.train.steps_per_epoch or whole)

    def _too_few(self) -> str:
        t = self.ctx.cfg.train
        return (
            f"a meta-batch of {self.meta} architectures (train.meta_batch {self.k} x "
            f"{self.world} processes) needs {self.meta} batches of train.batch_size "
            f"{t.batch_size} per step, and the training split has {len(self.data)}: "
            "lower train.meta_batch or train.batch_size, or use fewer processes"
        )

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
            # absent: 1, so a one-architecture run's checkpoint is what it always was
            **({"meta": self.meta} if self.meta != 1 else {}),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        meta = state.get("meta", 1)
        if meta != self.meta:  # saved with another world size: go on from the same batch
            # the log's steps up to the checkpoint are numbered as that run numbered them
            self.logged = state["epoch"] * self._per_epoch(meta) + state["step"]
            state["step"] = min(state["step"] * meta // self.meta, self.per_epoch)
            g = self.sched.last_epoch = state["epoch"] * self.per_epoch + state["step"]
            lambdas = self.sched.lr_lambdas
            for group, base, f in zip(
                self.opt.param_groups, self.sched.base_lrs, lambdas, strict=True
            ):
                group["lr"] = base * f(g)

    def start(self, epoch: int, step: int, resumed: bool) -> None:
        if not self.ctx.group.main:
            return
        if not resumed:
            self.log.unlink(missing_ok=True)
            return
        if epoch >= self.ctx.cfg.train.epochs:
            print("HyperNet training had finished: going on from its checkpoint")
        else:
            print(f"resuming HyperNet training at epoch {epoch}, step {step}")
        _truncate_log(
            self.log, self.logged if self.logged is not None else epoch * self.per_epoch + step
        )

    def _slots(self, g: int) -> range:
        """The training slots this process trains at step ``g``."""
        first = g * self.meta + self.rank * self.k
        return range(first, first + self.k)

    def _compile(self, g: int) -> list[Compiled]:
        progress = g / self.total
        return [self.model.compile(arch_for_step(self.ctx, a, progress)) for a in self._slots(g)]

    def batches(self, epoch: int, first: int):
        """This process's ``k`` batches of each step of epoch ``epoch`` from step ``first``."""
        self.first = first
        self.pending = [self.pool.submit(self._compile, epoch * self.per_epoch + first)]
        self.started = time.perf_counter()
        mine = range(self.rank * self.k, (self.rank + 1) * self.k)
        batches = self.data.epoch(
            epoch, start=first * self.meta, keep=lambda i: i % self.meta in mine
        )
        return _groups(batches, self.k)

    def step(self, epoch: int, step: int, batch) -> tuple[float, dict[str, str]]:
        g = epoch * self.per_epoch + step
        compiled = self.pending.pop().result()
        if step + 1 < self.per_epoch:
            self.pending.append(self.pool.submit(self._compile, g + 1))
        items = [
            metabatch.Item(x, c, noise_for_step(self.ctx, a, c), y)
            for (x, y), c, a in zip(batch, compiled, self._slots(g), strict=True)
        ]
        value, acc = metabatch.step(
            self.model,
            items,
            self.opt,
            self.sched,
            self.ctx.precision,
            self.ctx.device,
            self.ctx.group,
        )
        if not math.isfinite(value):
            return value, {}  # the loop stops with E0708
        rate = (step + 1 - self.first) / (time.perf_counter() - self.started)
        if not self.ctx.group.main:
            return value, {}
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
        loop.run(training.plan(), training, out / "checkpoint.pt", resume, ctx.device, ctx.group)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return model
