"""Seconds to score one architecture (SMASH error with generated weights) on 5,000 images.

    python bench/score.py [--images 5000] [--batch 50] [--archs 3] [--device cpu]

Default search space, CIFAR-shaped synthetic validation images, fully annealed samples.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = SearchSpace()
    model = OneShot(space).to(device).eval()
    x = torch.randn(args.images, 3, 32, 32)
    times = []
    for i in range(args.archs):
        start = time.perf_counter()
        compiled = model.compile(Sampler(space, seed=2000 + i).sample(1.0))
        with torch.no_grad():
            weights = model.generated(compiled)
            compiled.gm.eval()
            for k in range(0, args.images, args.batch):
                compiled.gm(x[k : k + args.batch].to(device), weights).argmax(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    each = ", ".join(f"{t:.1f}" for t in times)
    print(
        f"score one architecture on {args.images} images ({device}, batch {args.batch}): "
        f"median {statistics.median(times):.1f} s over {args.archs} ({each})"
    )


if __name__ == "__main__":
    main()
