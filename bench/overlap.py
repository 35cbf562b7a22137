"""What compiling an architecture adds to the SMASH step it overlaps: inline, thread, process.

    python bench/overlap.py [--modes inline,thread] [--rounds 2] [--progress 0] [--warm 60]
                            [--timed 240] [--device cpu] [--precision auto] [--json]

A paired measurement: every step trains on an architecture compiled beforehand, and on a
random half of the steps one more architecture, never compiled before, is compiled at the
same time: inline before the step (as ``smashc search`` does on the CPU), in a thread
during it (as it does on a GPU), or in a worker process during it. The figure is the mean
step with that compile minus the mean step without: what the compile costs the step, free
of the run-to-run swing between processes that an A/B across processes has (several
percent here, more than the effect). Each mode runs in a fresh process of its own, modes
alternating over ``--rounds`` (run in turn in one process, the mode that runs first is
favoured, by some 4 ms a step). Steps are timed from before the compile starts until the
step is done and the concurrent compile has finished (the next step needs its
architecture). Reference-sized work (bottlenecks up to 64), batch 50, CIFAR-shaped
synthetic data; the first ``--warm`` steps are not counted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from _common import emit, parse, parser, smash_trainer

from smashc.runtime.sampler import Sampler, SearchSpace

MODES = ("inline", "thread", "process")  # process: a worker process compiles
SEED = 20000
SPACE = SearchSpace(max_bottleneck=1)


def _compiler(todo, done, progress: float) -> None:
    """The process mode's worker: compiles one architecture per request."""
    import signal

    from smashc.runtime.oneshot import OneShot

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its parent stops it
    torch.set_num_threads(1)
    model = OneShot(SPACE)
    done.put(None)
    while (seed := todo.get()) is not None:
        model.compile(Sampler(SPACE, seed=seed).sample(progress))
        done.put(None)


def measure(mode: str, progress: float, warm: int, timed: int, device, prec: str) -> dict:
    """Mean seconds of steps with and without a concurrent compile in ``mode``."""
    model, step = smash_trainer(SPACE, 50, device, prec)
    n = warm + timed
    nets = [model.compile(Sampler(SPACE, seed=SEED + i).sample(progress)) for i in range(n)]
    extra = [Sampler(SPACE, seed=SEED + n + i).sample(progress) for i in range(n)]
    if mode == "thread":
        pool = ThreadPoolExecutor(1)
    elif mode == "process":
        ctx = mp.get_context("spawn")
        todo, done = ctx.Queue(), ctx.Queue()
        worker = ctx.Process(target=_compiler, args=(todo, done, progress), daemon=True)
        worker.start()
        done.get()
    flags = random.Random(1)
    with_compile, without = [], []
    for i, compiled in enumerate(nets):
        busy = flags.random() < 0.5
        start = time.perf_counter()
        if busy and mode == "inline":
            model.compile(extra[i])
        elif busy and mode == "thread":
            pending = pool.submit(model.compile, extra[i])
        elif busy:
            todo.put(SEED + n + i)
        step(compiled.net, compiled)
        if busy and mode == "thread":
            pending.result()
        elif busy and mode == "process":
            done.get()
        if i >= warm:
            (with_compile if busy else without).append(time.perf_counter() - start)
    if mode == "process":
        todo.put(None)
        worker.join()
    a, b = statistics.mean(with_compile), statistics.mean(without)
    return {"with": a, "without": b, "extra": a - b, "n": [len(with_compile), len(without)]}


def main() -> None:
    ap = parser(__doc__, device=True)
    ap.add_argument("--modes", default="inline,thread", help=f"some of {','.join(MODES)}")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--progress", type=float, default=0.0, help="0: early, 1: late")
    ap.add_argument("--warm", type=int, default=60)
    ap.add_argument("--timed", type=int, default=240)
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parse(ap)
    device = torch.device(args.device)
    if args.child:
        r = measure(args.child, args.progress, args.warm, args.timed, device, args.precision)
        print(json.dumps(r))
        return
    figures: dict = {"precision": args.precision, "progress": args.progress}
    for _ in range(args.rounds):
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--child", mode, *sys.argv[1:]]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.splitlines()[-1])
            figures.setdefault(mode, []).append(r)
            print(
                f"{mode}: steps {r['with']:.4f} s with a compile, {r['without']:.4f} s without "
                f"(n = {r['n'][0]} / {r['n'][1]}): {1000 * r['extra']:+.1f} ms "
                f"({100 * r['extra'] / r['without']:+.2f}%), {args.precision}",
                flush=True,
            )
    for mode in args.modes.split(","):
        extra = statistics.mean(r["extra"] for r in figures[mode])
        step = statistics.mean(r["without"] for r in figures[mode])
        print(
            f"{mode}: a compile adds {1000 * extra:.1f} ms ({100 * extra / step:+.2f}%) on average"
        )
    emit(args, figures)


if __name__ == "__main__":
    main()
