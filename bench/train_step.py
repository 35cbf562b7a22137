"""Median seconds per SMASH training step, split by phase, for the reference's default space.

    python bench/train_step.py [--steps 6] [--batch 50] [--device cpu] [--threads 2]

CIFAR-shaped synthetic batches (3x32x32, 100 classes), the default SearchSpace and HyperNet;
"early" samples at progress 0 (3x3 kernels, small budgets), "late" at progress 1 (kernels
up to 7x7). Compile = the whole pipeline: AST -> expansion -> IR -> passes -> encoding -> fx.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F  # noqa: N812

from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace

PHASES = ("sample", "compile", "hypernet", "forward", "backward", "optimiser")


def measure(progress: float, steps: int, batch: int, device: torch.device) -> dict[str, float]:
    space = SearchSpace()
    model = OneShot(space).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (batch,), device=device)
    times: dict[str, list[float]] = {p: [] for p in PHASES + ("step",)}

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
        weights = model.generated(compiled)
        t3 = sync()
        compiled.gm.train()
        loss = F.cross_entropy(compiled.gm(x, weights), y)
        t4 = sync()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t5 = sync()
        opt.step()
        t6 = sync()
        if i == 0:
            continue
        for name, a, b in zip(
            PHASES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6), strict=True
        ):
            times[name].append(b - a)
        times["step"].append(t6 - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"SMASH step, batch {args.batch}, {device}, {args.threads} threads, median of {args.steps}"
    )
    print(f"{'phase':<10} {'early (s)':>10} {'late (s)':>10}")
    early = measure(0.0, args.steps, args.batch, device)
    late = measure(1.0, args.steps, args.batch, device)
    for name in PHASES + ("step",):
        print(f"{name:<10} {early[name]:>10.3f} {late[name]:>10.3f}")
    for label, m in (("early", early), ("late", late)):
        print(f"compile share of the {label} step: {100 * m['compile'] / m['step']:.1f}%")


if __name__ == "__main__":
    main()
