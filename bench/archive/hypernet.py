"""Seconds per HyperNet forward + backward, for the HyperNet of several git revisions.

    PYTHONPATH=bench python bench/archive/hypernet.py REV [REV ...] [--progress 1] [--archs 6]
                                                      [--threads 2] [--json]

``runtime/hypernet.py`` of each revision (``.`` is the working tree) is loaded side by side,
each HyperNet given the same weights. For each sampled architecture (reference-sized work,
``max_bottleneck=1``) every revision runs once untimed on its encoding c (oneDNN builds
its kernels on a conv shape's first use), then three times timed in rotated order with the
same noise channel; the loss is the sum of the generated weights. Prints the mean per
revision.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import emit, module_at, parse, revisions_parser

from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace


def run(revs: list[str], progress: float, archs: int) -> dict[str, float]:
    space = SearchSpace(max_bottleneck=1)
    model = OneShot(space)
    with tempfile.TemporaryDirectory() as tmp:
        path, into = "runtime/hypernet.py", Path(tmp)
        mods = [module_at(rev, path, f"hypernet_r{i}", into) for i, rev in enumerate(revs)]
    nets = [mod.HyperNet(model.cfg) for mod in mods]
    for net in nets:
        net.load_state_dict(nets[0].state_dict())

    def timed(net, c, z) -> float:
        t0 = time.perf_counter()
        net(c, z).sum().backward()
        return time.perf_counter() - t0

    times: list[list[float]] = [[] for _ in revs]
    for i in range(archs):
        c = model.compile(Sampler(space, seed=1000 + i).sample(progress)).enc.tensor
        z = torch.randn(1, 1, *c.shape[2:])
        for net in nets:
            timed(net, c, z)
        order = list(range(len(revs)))
        for _ in range(3):
            order = order[1:] + order[:1]
            for k in order:
                times[k].append(timed(nets[k], c, z))
    named = enumerate(zip(revs, times, strict=True))
    return {f"{rev} (r{i})": statistics.mean(t) for i, (rev, t) in named}


def main() -> None:
    args = parse(revisions_parser(__doc__, progress=1.0, archs=6))
    res = run(args.revs, args.progress, args.archs)
    print(f"HyperNet forward + backward, progress {args.progress}, {args.archs} architectures x 3:")
    for name, t in res.items():
        print(f"  {name:<24} {1000 * t:.1f} ms")
    emit(args, res)


if __name__ == "__main__":
    main()
