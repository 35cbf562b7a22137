"""Seconds per conv category of SMASH-space networks: NCHW, channels-last, and kernels.conv2d.

    PYTHONPATH=bench python bench/archive/convs.py [--archs 3] [--progress 1.0]
                                                   [--max-bottleneck 1] [--seed 1000]

The evidence behind ``smashc/backends/kernels.py``: the convs of a few sampled architectures
(1x1 bottlenecks and shared convs) are recorded, then each is timed forward + backward
(input and weight gradients, batch 50, 2 threads): ``nchw`` is plain ``F.conv2d`` on NCHW
tensors, ``nchw<->cl`` converts an NCHW input to channels-last and the output back (one
layout-switched conv in an NCHW network), ``channels-last`` is plain ``F.conv2d`` on
channels-last tensors, ``sub-images`` the same with a dilated conv's weight gradient taken
on sub-images (``kernels._DilatedConv``; other convs as channels-last), ``dispatched`` is
``kernels.conv2d`` on them (the network runs channels-last end to end; dilated convs as one
of the previous two, by ``kernels.SUBIMAGE_WEIGHT_GRAD``). Compare oneDNN's AVX2 kernels on
an AVX-512 CPU with ``ONEDNN_MAX_CPU_ISA=AVX2``. Totals per category (ms, summed over the
convs), and per architecture the dispatched convs' total, forward + backward and forward
alone: the time a training step (or a batch's scoring) of it would take if everything but
its convs were free. ``bench/train_step.py`` samples the same architectures (seeds 1001-1006
are its timed steps), ``bench/score.py`` those of ``--seed 2000``.
"""

from __future__ import annotations

import collections
import time

import torch
import torch.nn.functional as F  # noqa: N812
from _common import emit, parse, parser

from smashc.backends import kernels
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace

_CL = torch.channels_last


def recorded(space: SearchSpace, archs: int, progress: float, seed: int) -> list[list[tuple]]:
    """Per architecture (seeds ``seed``, ``seed + 1``, ...), the arguments of each conv."""
    calls: list[list[tuple]] = []
    real = kernels.conv2d

    def record(x, w, padding, dilation, groups):
        calls[-1].append((tuple(x.shape), tuple(w.shape), tuple(padding), tuple(dilation), groups))
        return real(x, w, padding, dilation, groups)

    kernels.conv2d = record  # shared_conv and bottleneck look it up at call time
    try:
        model = OneShot(space)
        x = torch.randn(50, *space.input)
        for i in range(archs):
            calls.append([])
            c = model.compile(Sampler(space, seed=seed + i).sample(progress))
            with torch.no_grad():
                c.net(x, model.generated(c))
    finally:
        kernels.conv2d = real
    return calls


def category(w: tuple, dilation: tuple, groups: int) -> str:
    if w[2] * w[3] == 1:
        return "1x1"
    kind = "grouped" if groups > 1 else "dense"
    dilated = " dilated" if dilation != (1, 1) else ""
    return f"{kind}{dilated} {'3x3' if w[2] * w[3] <= 9 else '5x5+'}"


def timed(f, repeat: int = 3) -> float:
    f()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def time_conv(shape, wshape, pad, dil, groups) -> dict[str, float]:
    """Forward + backward seconds of one conv, per mode."""
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(wshape, requires_grad=True)
    xc = x.detach().contiguous(memory_format=_CL).requires_grad_()
    wc = w.detach().contiguous(memory_format=_CL).requires_grad_()
    modes = {
        "nchw": (lambda: F.conv2d(x, w, None, 1, pad, dil, groups), (x, w)),
        "nchw<->cl": (
            lambda: F.conv2d(
                x.contiguous(memory_format=_CL), w.contiguous(memory_format=_CL),
                None, 1, pad, dil, groups,
            ).contiguous(),
            (x, w),
        ),
        "channels-last": (lambda: F.conv2d(xc, wc, None, 1, pad, dil, groups), (xc, wc)),
        "sub-images": (lambda: kernels._DilatedConv.apply(xc, wc, pad, dil, groups), (xc, wc)),
        "dispatched": (lambda: kernels.conv2d(xc, wc, pad, dil, groups), (xc, wc)),
    }  # fmt: skip
    if dil == (1, 1):
        modes["sub-images"] = modes["channels-last"]
    out = {}
    for mode, (f, inputs) in modes.items():
        y = f()
        gy = torch.randn_like(y)  # same layout as the output, as autograd would hand it
        out[mode] = timed(lambda f=f, gy=gy, inputs=inputs: torch.autograd.grad(f(), inputs, gy))
    with torch.no_grad():
        out["dispatched forward"] = timed(modes["dispatched"][0])
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--progress", type=float, default=1.0)
    ap.add_argument("--max-bottleneck", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1000, help="of the first architecture")
    args = parse(ap)
    space = SearchSpace(max_bottleneck=args.max_bottleneck)
    totals: dict[tuple[str, str], float] = collections.defaultdict(float)
    per_arch: list[dict[str, float]] = []
    for convs in recorded(space, args.archs, args.progress, args.seed):
        per_arch.append({"fwd+bwd": 0.0, "fwd": 0.0})
        for shape, wshape, pad, dil, groups in convs:
            times = time_conv(shape, wshape, pad, dil, groups)
            per_arch[-1]["fwd+bwd"] += times["dispatched"]
            per_arch[-1]["fwd"] += times.pop("dispatched forward")
            for mode, seconds in times.items():
                totals[(category(wshape, dil, groups), mode)] += seconds
    names = ("nchw", "nchw<->cl", "channels-last", "sub-images", "dispatched")
    print(f"{'category':<22}" + "".join(f"{m:>15}" for m in names))
    for cat in sorted({c for c, _ in totals}):
        print(f"{cat:<22}" + "".join(f"{1000 * totals[(cat, m)]:>15.0f}" for m in names))
    print(f"{'total':<22}" + "".join(
        f"{1000 * sum(v for (_, m), v in totals.items() if m == mode):>15.0f}" for mode in names
    ))  # fmt: skip
    print(f"dispatched convs per architecture (s; seeds {args.seed}, {args.seed + 1}, ...):")
    for key in ("fwd+bwd", "fwd"):
        print(f"  {key:<8} " + ", ".join(f"{a[key]:.3f}" for a in per_arch))
    figures = {f"{cat} / {mode}": 1000 * v for (cat, mode), v in sorted(totals.items())}
    emit(args, {**figures, "per_arch_s": per_arch})


if __name__ == "__main__":
    main()
