"""Seconds to score one architecture (SMASH error with generated weights) on 5,000 images.

    python bench/score.py [--images 5000] [--batch 50] [--archs 3] [--device cpu]
                          [--precision auto] [--json]

Default search space, CIFAR-shaped synthetic validation images, fully annealed samples, for
our default space (bottlenecks up to 128) and the reference's effective work (up to 64; see
bench/train_step.py). Scoring = compile + HyperNet + forward passes over the images.
"""

from __future__ import annotations

import statistics
import time

import torch
from _common import emit, parse, parser

from smashc import report
from smashc.runtime import precision
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace


def measure(space: SearchSpace, images: int, batch: int, archs: int, device, prec: str) -> dict:
    model = OneShot(space).to(device).eval()
    x = torch.randn(images, *space.input)
    times, rates = [], []
    for i in range(archs):
        start = time.perf_counter()
        compiled = model.compile(Sampler(space, seed=2000 + i).sample(1.0))
        with torch.no_grad(), precision.autocast(prec, device):
            weights = model.generated(compiled)
            compiled.net.eval()
            for k in range(0, images, batch):
                compiled.net(x[k : k + batch].to(device), weights).argmax(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        rates.append(2 * images * report.totals(compiled.ir)[1] / times[-1] / 1e9)
    return {"seconds": statistics.median(times), "each": times, "gflops": statistics.median(rates)}


def main() -> None:
    ap = parser(__doc__, device=True)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--archs", type=int, default=3)
    args = parse(ap)
    device = torch.device(args.device)
    results: dict = {"precision": args.precision}
    for label, mb in (("default space, bottlenecks <= 128", 2), ("reference's work, <= 64", 1)):
        space = SearchSpace(max_bottleneck=mb)
        r = measure(space, args.images, args.batch, args.archs, device, args.precision)
        results[f"bottleneck{64 * mb}"] = r
        each = ", ".join(f"{t:.1f}" for t in r["each"])
        print(
            f"score one architecture on {args.images} images ({device}, {args.precision}, "
            f"batch {args.batch}, "
            f"{label}): median {r['seconds']:.1f} s over {args.archs} ({each}), "
            f"{r['gflops']:.0f} GFLOP/s"
        )
    emit(args, results)


if __name__ == "__main__":
    main()
