"""Median seconds per SMASH training step, split by phase, for the reference's default space.

    python bench/train_step.py [--steps 6] [--blocks 3] [--batch 50] [--device cpu]
                               [--threads 2] [--json]

CIFAR-shaped synthetic batches (3x32x32, 100 classes), the default SearchSpace and HyperNet;
"early" samples at progress 0 (3x3 kernels, small budgets), "late" at progress 1 (kernels
up to 7x7). Compile = the whole pipeline: AST -> expansion -> IR -> passes -> encoding -> fx.
Each sampled architecture's step runs twice and the faster one counts: these machines'
noise comes in bursts of seconds. The figures are medians over the architectures. "First
run" is the step as training meets it: the first one on an architecture never run before,
which pays oneDNN's kernel builds for the conv shapes not in its cache and finds nothing
of the architecture in the CPU caches (see docs/search.md, "oneDNN's kernel cache").

Two workloads: our default space (bottlenecks up to 128 channels) and the reference's
effective work (``max_bottleneck=1``: bottlenecks cut to 64, as the reference's 64-column
generated matrix does, defect 1 in SMASH-reference.md); only the second is the same work as
the reference's measured 0.8 s / 1.7 s. Each workload also gets its GFLOP per step,
the rate achieved, and the floor that rate implies at this machine's measured conv peak
(FLOPs as written in the IR: the backend pools before each transition's 1x1 conv, which
leaves 5-11% of them undone).
"Compile cost" is what compiling adds to a step, prefetched (the next architecture compiled
in a background thread, as ``smashc search`` does on a GPU) and inline (as it does on the
CPU), against steps on architectures compiled beforehand, on the same architectures
(``--blocks`` of four, early and late).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F  # noqa: N812
from _common import emit, parse, parser, smash_trainer

from smashc import report
from smashc.runtime import precision
from smashc.runtime.config import SmashTraining
from smashc.runtime.hypertrain import smash_optimizer
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace

PHASES = ("sample", "compile", "hypernet", "forward", "backward", "optimiser")


def conv_peak(device: torch.device, prec: str) -> float:
    """GFLOP/s of a large dense 3x3 conv, forward + backward, in precision ``prec``: this
    machine's practical peak."""
    x = torch.randn(50, 128, 16, 16, device=device, requires_grad=True)
    w = torch.randn(128, 128, 3, 3, device=device, requires_grad=True)
    flop = 3 * 2 * 50 * 16 * 16 * 128 * 128 * 9
    best = float("inf")
    for _ in range(6):
        t0 = time.perf_counter()
        with precision.autocast(prec, device):
            y = F.conv2d(x, w, padding=1).sum()
        y.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return flop / best / 1e9


def measure(
    space: SearchSpace, progress: float, steps: int, batch: int, device: torch.device, prec: str
) -> dict[str, float]:
    model = OneShot(space).to(device)
    opt = smash_optimizer(model, SmashTraining())
    x = torch.randn(batch, *space.input, device=device)
    y = torch.randint(0, space.classes, (batch,), device=device)
    extra = ("step", "fresh", "gflop", "hypernet_fb")
    times: dict[str, list[float]] = {p: [] for p in PHASES + extra}

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    for i in range(steps + 1):  # the first step warms up and is not counted
        t0 = sync()
        module = Sampler(space, seed=1000 + i).sample(progress)
        t1 = sync()
        compiled = model.compile(module)
        t2 = sync()
        best: list[float] = []
        runs: list[float] = []
        for _ in range(2):  # the faster of two steps on it: these machines' noise is bursty
            t = [sync()]
            with precision.autocast(prec, device):
                weights = model.generated(compiled)
                t.append(sync())
                compiled.net.train()
                loss = F.cross_entropy(compiled.net(x, weights), y)
                t.append(sync())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t.append(sync())
            opt.step()
            t.append(sync())
            runs.append(t[-1] - t[0])
            if not best or t[-1] - t[0] < best[-1] - best[0]:
                best = t
        if i == 0:
            continue
        marks = [t0, t1, t2] + [t2 + (m - best[0]) for m in best[1:]]
        for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True):
            times[name].append(b - a)
        times["step"].append(marks[-1] - t0)
        # as training runs it: the first step on an architecture never run before, which
        # also pays for oneDNN's kernels for conv shapes not in its cache
        times["fresh"].append(t2 - t0 + runs[0])
        # the HyperNet's own forward + backward (its backward is part of the step's backward)
        c = compiled.enc.tensor.to(device)
        t = sync()
        with precision.autocast(prec, device):
            h = model.hypernet(c).sum()
        h.backward()
        times["hypernet_fb"].append(sync() - t)
        opt.zero_grad(set_to_none=True)
        # forward + backward (input and weight gradients) = 3x the forward's 2 * MACs
        times["gflop"].append(6 * batch * report.totals(compiled.ir)[1] / 1e9)
    return {k: statistics.median(v) for k, v in times.items()}


COMPILE_MODES = ("precompiled", "prefetched", "inline")


def compile_cost(
    space: SearchSpace, progress: float, blocks: int, batch: int, device: torch.device, prec: str
) -> dict:
    """What compiling costs a step: steps whose architecture was compiled beforehand
    (untimed), compiled in a background thread while the previous step ran (as
    ``train_smash`` does on a GPU), and compiled inline (as it does on the CPU). Blocks of
    four architectures; each is compiled and stepped once untimed first (oneDNN builds its
    kernels on a conv shape's first use), then every mode runs the block, in an order that
    rotates between blocks.
    A mode's first step in a block is not counted (nothing was prefetched before it)."""
    model, step = smash_trainer(space, batch, device, prec)
    pool = ThreadPoolExecutor(1)

    def compile_one(seed: int):
        return model.compile(Sampler(space, seed=seed).sample(progress))

    waits: list[float] = []
    times: dict[str, list[float]] = {m: [] for m in COMPILE_MODES}
    for b in range(blocks):
        seeds = range(1000 + 4 * b, 1004 + 4 * b)
        ready = {s: compile_one(s) for s in seeds}
        for s in seeds:
            step(ready[s].net, ready[s])
        for mode in COMPILE_MODES[b % 3 :] + COMPILE_MODES[: b % 3]:
            pending = pool.submit(compile_one, seeds[0]) if mode == "prefetched" else None
            for s in seeds:
                t0 = time.perf_counter()
                if mode == "precompiled":
                    compiled = ready[s]
                elif mode == "inline":
                    compiled = compile_one(s)
                else:
                    compiled = pending.result()
                    if s + 1 < seeds.stop:
                        pending = pool.submit(compile_one, s + 1)
                    if s > seeds[0]:
                        waits.append(time.perf_counter() - t0)
                step(compiled.net, compiled)
                if s > seeds[0]:
                    times[mode].append(time.perf_counter() - t0)
    pool.shutdown()
    means = {m: statistics.mean(v) for m, v in times.items()}
    base = means["precompiled"]
    return {
        **means,
        "wait": statistics.median(waits),
        "prefetched_cost": means["prefetched"] / base - 1,
        "inline_cost": means["inline"] / base - 1,
    }


def main() -> None:
    ap = parser(__doc__, device=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument(
        "--blocks", type=int, default=3, help="of 4 architectures, compile cost (0: skip it)"
    )
    args = parse(ap)
    device = torch.device(args.device)
    peak = conv_peak(device, args.precision)
    print(
        f"SMASH step, batch {args.batch}, {device}, {args.precision}, {args.threads} threads, "
        f"median of {args.steps}; dense conv peak {peak:.0f} GFLOP/s"
    )
    results: dict = {"peak_gflops": peak, "precision": args.precision}
    for label, mb in (("default space, bottlenecks <= 128", 2), ("reference's work, <= 64", 1)):
        space = SearchSpace(max_bottleneck=mb)
        early = measure(space, 0.0, args.steps, args.batch, device, args.precision)
        late = measure(space, 1.0, args.steps, args.batch, device, args.precision)
        cost = {
            when: compile_cost(space, progress, args.blocks, args.batch, device, args.precision)
            for when, progress in (("early", 0.0), ("late", 1.0))
            if args.blocks
        }
        results[f"bottleneck{64 * mb}"] = {"early": early, "late": late, "compile_cost": cost}
        print(f"\n{label}")
        print(f"{'phase':<22} {'early':>8} {'late':>8}")
        for name in PHASES + ("step",):
            print(f"{name + ' (s)':<22} {early[name]:>8.3f} {late[name]:>8.3f}")
        print(f"{'step, first run (s)':<22} {early['fresh']:>8.3f} {late['fresh']:>8.3f}")
        print(
            f"{'HyperNet fwd+bwd (s)':<22} {early['hypernet_fb']:>8.3f} {late['hypernet_fb']:>8.3f}"
        )
        print(f"{'GFLOP per step':<22} {early['gflop']:>8.1f} {late['gflop']:>8.1f}")
        rates = [m["gflop"] / (m["forward"] + m["backward"]) for m in (early, late)]
        print(f"{'GFLOP/s (fwd + bwd)':<22} {rates[0]:>8.0f} {rates[1]:>8.0f}")
        floors = [m["gflop"] / peak for m in (early, late)]
        print(f"{'floor at peak (s)':<22} {floors[0]:>8.3f} {floors[1]:>8.3f}")
        shares = [100 * m["compile"] / m["step"] for m in (early, late)]
        print(f"{'compile share inline':<22} {shares[0]:>7.1f}% {shares[1]:>7.1f}%")
        for when, c in cost.items():
            print(
                f"{when}, compile cost: steps {c['precompiled']:.3f} s precompiled, "
                f"{c['prefetched']:.3f} s prefetched ({100 * c['prefetched_cost']:+.1f}%, waits "
                f"{1000 * c['wait']:.1f} ms), {c['inline']:.3f} s inline "
                f"({100 * c['inline_cost']:+.1f}%)"
            )
    emit(args, results)


if __name__ == "__main__":
    main()
