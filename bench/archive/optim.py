"""Milliseconds per optimiser step, torch's per-tensor loop against its fused kernel.

    PYTHONPATH=bench python bench/archive/optim.py [--archs 4] [--threads 2] [--json]

Two optimisers as ``smashc search`` builds them: the HyperNet training's Adam on the
reference-sized one-shot model (``max_bottleneck=1``), with the gradients one SMASH step on
a sampled architecture leaves (only the shared weights it used have one), and the final
training's SGD (Nesterov, weight decay) on the free-weight network of a late sampled
architecture. Each optimiser runs both ways on the same gradients, alternating, 20 steps a
round; the figure is the median step over rounds and architectures.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F  # noqa: N812
from _common import emit, parse, parser

from smashc.compiler import for_training, free_module
from smashc.runtime.config import SearchConfig
from smashc.runtime.final import final_optimizer
from smashc.runtime.hypertrain import smash_optimizer
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import Sampler, SearchSpace


def _median_step(make, rounds: int = 5, steps: int = 20) -> dict[str, float]:
    """Median ms per ``step()`` of two optimisers ``make()`` builds (fused, as smashc runs
    them), one switched to torch's per-tensor loop, alternating."""
    opts = {"loop": make(), "fused": make()}
    for group in opts["loop"].param_groups:
        group["fused"] = False
    times: dict[str, list[float]] = {name: [] for name in opts}
    for opt in opts.values():
        opt.step()  # state allocation
    for _ in range(rounds):
        for name, opt in opts.items():
            for _ in range(steps):
                t0 = time.perf_counter()
                opt.step()
                times[name].append(1000 * (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in times.items()}


def run(archs: int) -> dict:
    space = SearchSpace(max_bottleneck=1)
    cfg = SearchConfig()
    x, y = torch.randn(8, *space.input), torch.zeros(8, dtype=torch.long)
    adam: list[dict] = []
    sgd: list[dict] = []
    for i in range(archs):
        model = OneShot(space)
        compiled = model.compile(Sampler(space, seed=1000 + i).sample(0.5))
        F.cross_entropy(model(x, compiled), y).backward()
        adam.append(_median_step(lambda m=model: smash_optimizer(m, cfg.train)))
        module = Sampler(space, seed=2000 + i).sample(1.0)
        net = free_module(for_training(module))
        F.cross_entropy(net(x), y).backward()
        times = _median_step(lambda n=net: final_optimizer(n, cfg.final))
        sgd.append(times | {"params": sum(p.numel() for p in net.parameters())})
    out = {}
    for name, rows in (("adam", adam), ("sgd", sgd)):
        for key in rows[0]:
            out[f"{name}_{key}"] = statistics.median(r[key] for r in rows)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--archs", type=int, default=4)
    args = parse(ap)
    r = run(args.archs)
    print(
        f"Adam, one-shot model: {r['adam_loop']:.2f} ms per step as a loop, "
        f"{r['adam_fused']:.2f} fused"
    )
    print(
        f"SGD, final network ({r['sgd_params'] / 1e6:.2f} M parameters): "
        f"{r['sgd_loop']:.2f} ms as a loop, {r['sgd_fused']:.2f} fused"
    )
    emit(args, r)


if __name__ == "__main__":
    main()
