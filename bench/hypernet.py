"""Seconds per HyperNet forward + backward, for the HyperNet of several git revisions.

    python bench/hypernet.py REV [REV ...] [--progress 1] [--archs 6] [--threads 2] [--json]

``runtime/hypernet.py`` of each revision (``.`` is the working tree) is loaded side by side,
each HyperNet given the same weights. For each sampled architecture (reference-sized work,
``max_bottleneck=1``) every revision runs once untimed on its encoding c (oneDNN builds
its kernels on a conv shape's first use), then three times timed in rotated order with the
same noise channel; the loss is the sum of the generated weights. Prints the mean per
revision.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import emit, parse, parser, source_at

from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace


def load(rev: str, tag: str, into: Path):
    path = into / f"hypernet_{tag}.py"
    path.write_text(source_at(rev, "runtime/hypernet.py"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"hypernet_{tag}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def run(revs: list[str], progress: float, archs: int) -> dict[str, float]:
    space = SearchSpace(max_bottleneck=1)
    model = OneShot(space)
    with tempfile.TemporaryDirectory() as tmp:
        mods = [load(rev, f"r{i}", Path(tmp)) for i, rev in enumerate(revs)]
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
    ap = parser(__doc__)
    ap.add_argument("revs", nargs="+", metavar="REV", help="git revision; . is the working tree")
    ap.add_argument("--progress", type=float, default=1.0, help="0: early architectures, 1: late")
    ap.add_argument("--archs", type=int, default=6)
    args = parse(ap)
    res = run(args.revs, args.progress, args.archs)
    print(f"HyperNet forward + backward, progress {args.progress}, {args.archs} architectures x 3:")
    for name, t in res.items():
        print(f"  {name:<24} {1000 * t:.1f} ms")
    emit(args, res)


if __name__ == "__main__":
    main()
