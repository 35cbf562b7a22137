"""Compile throughput: random SMASH-space architectures per second through the whole pipeline.

    python bench/compile.py [--archs 50] [--progress 1.0] [--json]

Two paths, each split by stage (ms per architecture, median), with the mean total (which
includes the garbage collector's pauses: a full collection every hundred or so young ones
lands in few architectures, and the medians miss it):
* from text, as ``smashc compile`` does: print the sampled program to .smash text, parse,
  expand, lower, the default pass pipeline (with verification and pattern recognition),
  encoding, fx GraphModule;
* the training loop's path (``compiler.for_oneshot``): the sampler's network, lower, the
  training passes, encoding, fx graph (HyperNet-weight backend) ready to run in a
  GraphRunner.
Architectures are drawn from the default space, fully annealed (the largest networks)
unless ``--progress`` says otherwise (0: as training starts).
"""

from __future__ import annotations

import statistics
import time

from _common import emit, parse, parser

from smashc.backends.encoding import encode
from smashc.backends.fxrun import GraphRunner
from smashc.backends.hyperfx import SharedWeights, hyper_graph, to_fx_hyper
from smashc.compiler import to_text
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_text
from smashc.ir import lower
from smashc.passes import DEFAULT_PIPELINE, TRAINING_PIPELINE, run_pipeline
from smashc.runtime.sampler import Sampler, SearchSpace


def run(archs: int, progress: float = 1.0) -> dict:
    space = SearchSpace()
    cfg = space.encoding()
    shared = SharedWeights(cfg)
    samples = [Sampler(space, seed=3000 + i).sample(progress) for i in range(archs + 1)]
    texts = [to_text(m) for m in samples]
    paths = {
        "text": ("parse", "expand", "lower", "passes", "encode", "fx"),
        "training": ("lower", "passes", "encode", "fx"),
    }
    out: dict = {}
    for path, stages in paths.items():
        times: dict[str, list[float]] = {s: [] for s in (*stages, "total")}
        for i, (net, text) in enumerate(zip(samples, texts, strict=True)):
            t = [time.perf_counter()]
            if path == "text":
                program = load_text(text, "<sampled>")
                t.append(time.perf_counter())
                net = expand(program)
                t.append(time.perf_counter())
            ir = lower(net)
            t.append(time.perf_counter())
            passes = DEFAULT_PIPELINE if path == "text" else TRAINING_PIPELINE
            ir = run_pipeline(ir, passes).ir
            t.append(time.perf_counter())
            enc = encode(ir, cfg)
            t.append(time.perf_counter())
            if path == "text":
                to_fx_hyper(ir, shared, enc)
            else:
                GraphRunner(*hyper_graph(ir, shared, enc))
            t.append(time.perf_counter())
            if i == 0:
                continue  # warm-up (imports, caches)
            for s, a, b in zip(stages, t[:-1], t[1:], strict=True):
                times[s].append(1000 * (b - a))
            times["total"].append(1000 * (t[-1] - t[0]))
        med = {s: statistics.median(v) for s, v in times.items()}
        med["mean"] = statistics.mean(times["total"])
        med["archs_per_s"] = 1000 / med["mean"]
        out[path] = med
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--progress", type=float, default=1.0, help="0: early, 1: late")
    args = parse(ap)
    res = run(args.archs, args.progress)
    for path, med in res.items():
        stages = [k for k in med if k not in ("total", "mean", "archs_per_s")]
        split = ", ".join(f"{k} {med[k]:.1f}" for k in stages)
        print(
            f"compile from {path}: {med['archs_per_s']:.1f} archs/s (mean {med['mean']:.1f} ms"
            f" each; median {med['total']:.1f}: {split} ms)"
        )
    emit(args, res)


if __name__ == "__main__":
    main()
