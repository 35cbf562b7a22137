"""SMASH steps under different malloc settings, in alternating processes.

    PYTHONPATH=bench python bench/archive/alloc.py [--rounds 2] [--archs 8]
                                                   [--modes off,ceiling,on] [--json]

Modes: ``off`` (glibc's defaults), ``ceiling`` (trim threshold 1 GiB,
mmap threshold at its 32 MiB ceiling) and ``on`` (``runtime.alloc.keep_freed_memory``).
malloc settings hold for a whole process, so each measurement is a fresh process: per
round and progress (early, late) one per mode, in an order that rotates between rounds,
on the same sampled architectures (reference-sized work; per architecture one untimed
step, then two timed). Prints each process's mean step and minor page faults per step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import resource
import statistics
import subprocess
import sys

from _common import emit, parse, parser, smash_trainer


def set_malloc(mode: str) -> None:
    from smashc.runtime.alloc import TRIM_THRESHOLD, keep_freed_memory

    if mode == "on":
        assert keep_freed_memory()
    elif mode == "ceiling":
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
        assert mallopt(-1, TRIM_THRESHOLD) and mallopt(-3, 32 << 20)  # trim, mmap threshold
    else:
        assert mode == "off", mode


def child(progress: float, archs: int, mode: str, threads: int) -> dict[str, float]:
    import torch

    from smashc.runtime.sampler import Sampler, SearchSpace

    torch.set_num_threads(threads)
    set_malloc(mode)
    space = SearchSpace(max_bottleneck=1)
    model, step = smash_trainer(space)
    times, faults = [], 0
    for i in range(archs):
        c = model.compile(Sampler(space, seed=1000 + i).sample(progress))
        step(c.net, c)  # oneDNN's first use of these shapes
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times += [step(c.net, c), step(c.net, c)]
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {"step": statistics.mean(times), "faults": faults / len(times)}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        progress, archs, mode, threads = sys.argv[2:6]
        print(json.dumps(child(float(progress), int(archs), mode, int(threads))))
        return
    ap = parser(__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--modes", default="off,ceiling,on")
    args = parse(ap)
    modes = args.modes.split(",")
    res: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        for progress in (0.0, 1.0):
            for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                cmd = [sys.executable, __file__, "--child", str(progress), str(args.archs), mode]
                out = subprocess.run([*cmd, str(args.threads)], check=True, capture_output=True)
                figures = json.loads(out.stdout.decode().splitlines()[-1])
                key = f"{'early' if progress == 0 else 'late'} {mode}"
                res.setdefault(key, []).append(figures)
                step, faults = figures["step"], figures["faults"]
                print(f"round {r + 1}, {key}: {step:.3f} s per step, {faults:.0f} faults per step")
    for key, runs in res.items():
        print(f"{key:<10} mean {statistics.mean(f['step'] for f in runs):.3f} s per step")
    emit(args, res)


if __name__ == "__main__":
    main()
