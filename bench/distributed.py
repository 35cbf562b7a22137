"""HyperNet training throughput, one process against several: architecture-steps, images per s.

    python bench/distributed.py [--steps 12] [--warmup 3] [--preset demo] [--dataset NAME]
                                [--batch 50] [--modes 1x2,1x2-k1,2x1,2x1-ddp,gpu] [--json]

Each mode runs in fresh processes (the 2-rank ones under ``torch.distributed.run
--standalone``, Gloo), trains ``--warmup`` then ``--steps`` HyperNet steps of the preset's
search space on its own architectures (the training's slots: the same ones whatever the
mode) and reports, from rank 0:

* ``1x2``: one process, 2 threads, a meta-batch of 2 (``train.meta_batch 2``);
* ``1x2-k1``: one process, 2 threads, one architecture per step (the paper's step);
* ``2x1``: 2 ranks of 1 thread, one architecture each, the gradients summed by smashc's
  one all-reduce of the flattened gradients (``runtime.metabatch``) — the same 2
  architecture-steps per optimiser step as ``1x2``;
* ``2x1-ddp``: the same with ``DistributedDataParallel(find_unused_parameters=True)``
  instead (unused weights get zero gradients there, so Adam moves them: not the same
  update, timed for the choice only);
* ``gpu``: one process on ``cuda``, meta-batch 2 (only where CUDA is available).

A step includes compiling its architectures (inline, as the CPU training does). Figures:
architecture-steps per second, images per second, seconds per optimiser step, and for
``2x1`` the share of a step rank 0 spends in the all-reduce (waiting for the other rank
included). Timings mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from _common import emit, parse, parser

from smashc.runtime import distributed, loop, metabatch, precision
from smashc.runtime.context import open_context
from smashc.runtime.hypertrain import arch_for_step, noise_for_step, smash_optimizer
from smashc.runtime.oneshot import OneShot
from smashc.runtime.presets import PRESETS

HERE = Path(__file__).resolve()
MODES = {  # processes, threads each, architectures per process and step, how, device
    "1x2": (1, 2, 2, "allreduce", "cpu"),
    "1x2-k1": (1, 2, 1, "allreduce", "cpu"),
    "2x1": (2, 1, 1, "allreduce", "cpu"),
    "2x1-ddp": (2, 1, 1, "ddp", "cpu"),
    "gpu": (1, 2, 2, "allreduce", "cuda"),
}


class _Timed:
    """A process group whose all-reduces are timed."""

    def __init__(self, group: distributed.Group) -> None:
        self.group, self.world, self.seconds = group, group.world, 0.0

    def all_reduce(self, flat: torch.Tensor) -> None:
        start = time.perf_counter()
        self.group.all_reduce(flat)
        self.seconds += time.perf_counter() - start


def worker(args) -> None:
    """One process of a mode: times the steps and, on rank 0, prints the figures."""
    _, _, k, how, device = MODES[args.mode]
    cfg = replace(PRESETS[args.preset], device=device)
    if args.dataset is not None:
        cfg = replace(cfg, dataset=args.dataset)
    cfg = replace(cfg, train=replace(cfg.train, batch_size=args.batch, meta_batch=k))
    ctx = open_context(cfg)
    g = ctx.group
    meta = k * g.world
    torch.manual_seed(0)
    model = OneShot(ctx.cfg.space, ctx.cfg.hypernet).to(ctx.device).train()
    opt = smash_optimizer(model, ctx.cfg.train)
    total = args.warmup + args.steps
    sched = loop.cosine(opt, total)
    data = ctx.batches(ctx.train, args.batch, None)
    batches = list(data.epoch(0))
    ddp = None
    if how == "ddp":
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    comm = _Timed(g)
    seconds = 0.0
    for step in range(total):
        if step == args.warmup:
            comm.seconds = seconds = 0.0
            g.barrier()
        start = time.perf_counter()
        slots = range(step * meta + g.rank * k, step * meta + (g.rank + 1) * k)
        compiled = [model.compile(arch_for_step(ctx, a, step / total)) for a in slots]
        items = []
        for a, c in zip(slots, compiled, strict=True):
            x, y = batches[a % len(batches)]
            items.append(metabatch.Item(x, c, noise_for_step(ctx, a, c), y))
        if ddp is None:
            metabatch.step(model, items, opt, sched, ctx.precision, ctx.device, comm)
        else:
            it = items[0]
            opt.zero_grad(set_to_none=True)
            with precision.autocast(ctx.precision, ctx.device):
                loss = F.cross_entropy(ddp(it.x, it.compiled, it.z), it.y)
            loss.backward()
            opt.step()
            sched.step()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
    if g.main:
        arch_steps = args.steps * meta / seconds
        fig = {
            "mode": args.mode,
            "arch_steps_per_s": arch_steps,
            "images_per_s": arch_steps * args.batch,
            "s_per_step": seconds / args.steps,
            "comm_share": comm.seconds / seconds if g.world > 1 and ddp is None else None,
        }
        print(json.dumps(fig), flush=True)
    distributed.leave()


def launch(args, mode: str) -> dict | None:
    """The figures of ``mode``, run in fresh processes; None when it cannot run here."""
    procs, threads, _, _, device = MODES[mode]
    if device == "cuda" and not torch.cuda.is_available():
        return None
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    own = [str(HERE), "--worker", "--mode", mode, "--threads", str(threads)]
    own += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
    own += ["--preset", args.preset]
    if args.dataset is not None:
        own += ["--dataset", args.dataset]
    if procs == 1:
        cmd = [sys.executable, *own]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc-per-node={procs}", *own]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=int, default=12, help="timed optimiser steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    ap.add_argument("--batch", type=int, default=50, help="images per architecture")
    ap.add_argument("--preset", default="demo", choices=tuple(PRESETS))
    ap.add_argument("--dataset", default=None, help="default: the preset's (synthetic: no files)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=tuple(MODES), help=argparse.SUPPRESS)
    args = parse(ap)
    if args.worker:
        worker(args)
        return
    rows = [r for m in args.modes.split(",") if (r := launch(args, m)) is not None]
    print(f"{'mode':8} {'arch-steps/s':>13} {'images/s':>10} {'s/step':>8} {'comm':>6}")
    for r in rows:
        share = "" if r["comm_share"] is None else f"{100 * r['comm_share']:.0f}%"
        print(
            f"{r['mode']:8} {r['arch_steps_per_s']:13.2f} {r['images_per_s']:10.0f} "
            f"{r['s_per_step']:8.3f} {share:>6}"
        )
    emit(args, {r["mode"]: r for r in rows})


if __name__ == "__main__":
    main()
