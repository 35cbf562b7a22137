"""SMASH steps as a long training run meets them: smashc against the reference stand-in.

    python bench/steady.py [--warm 100] [--timed 40] [--rounds 2] [--precision auto]
                           [--threads 2] [--json]

``bench/train_step.py`` and ``bench/reference.py`` time a handful of architectures in a
fresh process, where almost every conv shape is new to oneDNN and its kernels are built
inside the timed steps. Training runs thousands of steps, and conv shapes recur (about 950
distinct conv configurations early in training, 3,200 late, in 2,000 architectures), so
what a step costs there depends on what the process has kept. Here each side runs in its
own process, sides alternating over ``--rounds``, and steps ``--warm`` + ``--timed``
architectures never run before, once each, as training does; the figure is the mean of
the last ``--timed`` steps. Both sides get the same architectures (reference-sized work:
bottlenecks up to 64, batch 50, CIFAR-shaped synthetic data).

* smashc as ``smashc search`` runs it (``runtime.alloc.tune_process``, ``--precision``,
  fused Adam), the step timed from sampling the architecture: sample, compile, HyperNet,
  forward, backward, optimiser; compiling (AST to a runnable graph) is also reported on
  its own, and as a share of the step.
* the stand-in (``bench/reference.py``) with the process defaults the reference has
  (oneDNN's 1,024-kernel cache, glibc's malloc), timed from the HyperNet on, as
  ``bench/reference.py`` times it: sampling and expanding its architecture are left out.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import reference
import torch
from _common import emit, parser, smash_trainer

from smashc.runtime import precision
from smashc.runtime.alloc import tune_process
from smashc.runtime.sampler import Sampler, SearchSpace

SIDES = ("smashc", "stand-in")
SEED = 20000


def smashc_steps(progress: float, n: int, prec: str) -> list[tuple[float, float]]:
    """Seconds of ``n`` steps, sample to optimiser, each on a new architecture, and of the
    compiling inside each."""
    tune_process()
    space = SearchSpace(max_bottleneck=1)
    cpu = torch.device("cpu")
    model, step = smash_trainer(space, 50, cpu, precision.resolve(prec, cpu))
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        module = Sampler(space, seed=SEED + i).sample(progress)
        t1 = time.perf_counter()
        compiled = model.compile(module)
        t2 = time.perf_counter()
        out.append((t2 - t0 + step(compiled.net, compiled), t2 - t1))
    return out


def stand_in_steps(progress: float, n: int) -> list[float]:
    """Seconds of ``n`` stand-in steps, HyperNet to optimiser, each on a new architecture."""
    space = SearchSpace(max_bottleneck=1)
    nets = (reference.network(space, SEED + i, progress) for i in range(n))
    first = next(nets)
    run = reference.trainer(space, first, 50)
    out = []
    for net in (first, *nets):
        t = run(net)
        out.append(t[-1] - t[0])
    return out


def child(args: argparse.Namespace) -> None:
    """One side's measurement in this process: the mean of the timed steps (smashc: and of
    the compiling inside them)."""
    torch.set_num_threads(args.threads)
    n = args.warm + args.timed
    if args.side == "smashc":
        timed = smashc_steps(args.progress, n, args.precision)[args.warm :]
        steps, compiles = zip(*timed, strict=True)
        print(statistics.mean(steps), statistics.mean(compiles))
    else:
        print(statistics.mean(stand_in_steps(args.progress, n)[args.warm :]))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--timed", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--precision", choices=precision.CHOICES, default="auto")
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--progress", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        child(args)
        return
    prec = precision.resolve(args.precision, torch.device("cpu"))
    figures: dict = {"precision": prec}
    print(
        f"fresh architectures after {args.warm} others, mean of {args.timed}, batch 50, "
        f"{args.threads} threads; smashc in {prec}, the stand-in in fp32"
    )
    for when, progress in (("early", 0.0), ("late", 1.0)):
        runs: dict[str, list[float]] = {side: [] for side in SIDES}
        compiles: list[float] = []
        for _ in range(args.rounds):
            for side in SIDES:
                cmd = [sys.executable, __file__, "--side", side, "--progress", str(progress),
                       "--warm", str(args.warm), "--timed", str(args.timed),
                       "--threads", str(args.threads), "--precision", args.precision]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True)
                numbers = [float(v) for v in out.stdout.split()[-2 if side == "smashc" else -1 :]]
                runs[side].append(numbers[0])
                line = f"{when}, {side}: {runs[side][-1]:.3f} s per step"
                if side == "smashc":
                    compiles.append(numbers[1])
                    line += f", compiling {1000 * numbers[1]:.1f} ms of it"
                print(line)
        figures[when] = {side: {"mean": statistics.mean(r), "runs": r} for side, r in runs.items()}
        figures[when]["smashc"]["compile"] = compiles
        ours, theirs = (figures[when][side]["mean"] for side in SIDES)
        share = 100 * statistics.mean(compiles) / ours
        print(
            f"{when}: smashc {ours:.3f} s, stand-in {theirs:.3f} s (target, half: "
            f"{theirs / 2:.3f}); smashc / stand-in = {ours / theirs:.2f}; compiling "
            f"{share:.1f}% of smashc's step"
        )
    emit(args, figures)


if __name__ == "__main__":
    main()
