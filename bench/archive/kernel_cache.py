"""SMASH steps on architectures never run before, by the size of oneDNN's kernel cache.

    PYTHONPATH=bench python bench/archive/kernel_cache.py [--progress 0] [--warm 100]
                                                          [--timed 40] [--rounds 2]
                                                          [--sizes 1024,16384] [--precision auto]

Each size runs in its own process (oneDNN reads ONEDNN_PRIMITIVE_CACHE_CAPACITY when it
builds its first kernel), the sizes alternating over ``--rounds``. A process steps
``--warm`` + ``--timed`` freshly sampled architectures once each, as training does
(reference-sized work: bottlenecks up to 64, batch 50), and reports the mean step of the
last ``--timed`` and its resident memory before and after them. 1,024 is oneDNN's default;
the commands set 16,384 (``runtime.alloc.cache_conv_kernels``; docs/search.md, "oneDNN's
kernel cache").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

import torch
from _common import emit, parser, smash_trainer

from smashc.runtime import precision
from smashc.runtime.alloc import tune_process
from smashc.runtime.sampler import Sampler, SearchSpace


def child(progress: float, warm: int, timed: int, threads: int, prec: str) -> None:
    """One process's measurement, printed as ``mean_s rss_before_mib rss_after_mib``."""
    torch.set_num_threads(threads)
    tune_process()
    space = SearchSpace(max_bottleneck=1)
    cpu = torch.device("cpu")
    model, step = smash_trainer(space, 50, cpu, precision.resolve(prec, cpu))

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20

    times, before = [], 0
    for i in range(warm + timed):
        compiled = model.compile(Sampler(space, seed=20000 + i).sample(progress))
        seconds = step(compiled.net, compiled)
        if i == warm - 1:
            before = rss()
        if i >= warm:
            times.append(seconds)
    print(statistics.mean(times), before, rss())


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--progress", type=float, default=0.0)
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--timed", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sizes", default="1024,16384")
    ap.add_argument("--precision", choices=precision.CHOICES, default="auto")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.progress, args.warm, args.timed, args.threads, args.precision)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[int, list[tuple[float, int, int]]] = {s: [] for s in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(size)}
            cmd = [sys.executable, __file__, "--child", "--progress", str(args.progress),
                   "--warm", str(args.warm), "--timed", str(args.timed),
                   "--threads", str(args.threads), "--precision", args.precision]  # fmt: skip
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            mean, before, after = out.stdout.split()
            runs[size].append((float(mean), int(before), int(after)))
            print(f"cache {size}: {float(mean):.3f} s per step, RSS {before} -> {after} MiB")
    figures = {
        size: {"step": statistics.mean(m for m, _, _ in r), "rss_mib": max(a for _, _, a in r)}
        for size, r in runs.items()
    }
    for size, f in figures.items():
        print(f"cache {size}: mean {f['step']:.3f} s per fresh step, up to {f['rss_mib']} MiB")
    emit(args, figures)


if __name__ == "__main__":
    main()
