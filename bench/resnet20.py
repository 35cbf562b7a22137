"""Final-training speed: ResNet-20 compiled from examples/resnet20.smash vs written by hand.

    python bench/resnet20.py [--steps 20] [--batch 50] [--threads 2] [--json]

Training images per second (forward, backward, SGD with Nesterov momentum, as
``smashc train`` does) of the fx module that ``to_fx`` generates and of the same network as a
plain ``nn.Module``; the two must have the same parameter count. Target: ratio >= 0.95.
The two are timed in alternating rounds so that drifting machine load hits both alike.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from _common import emit, parse, parser
from torch import nn

from smashc.backends.fx import to_fx
from smashc.pipeline import compile_file

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet20.smash"


class Unit(nn.Module):
    """Post-activation basic unit; with ``stride`` 2 the option-A shortcut (subsample, pad)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.stride > 1:
            x = F.avg_pool2d(x, 1, self.stride)
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + x)


class ResNet20(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        units, cin = [], 16
        for width in (16, 32, 64):
            for i in range(3):
                units.append(Unit(cin, width, 2 if i == 0 and width > 16 else 1))
                cin = width
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.units(F.relu(self.stem(x))).mean((2, 3)))


def images_per_s(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=50)
    args = parse(ap)
    torch.manual_seed(0)
    compiled, hand = to_fx(compile_file(EXAMPLE)), ResNet20()
    n = [sum(p.numel() for p in m.parameters()) for m in (compiled, hand)]
    assert n[0] == n[1], f"parameter counts differ: compiled {n[0]}, hand-written {n[1]}"
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    rates: dict[str, list[float]] = {"compiled": [], "hand": []}
    for m in (compiled, hand):
        images_per_s(m, x, y, 3)  # warm-up
    for _ in range(args.rounds):
        rates["compiled"].append(images_per_s(compiled, x, y, args.steps))
        rates["hand"].append(images_per_s(hand, x, y, args.steps))
    res = {k: statistics.median(v) for k, v in rates.items()}
    res["ratio"] = res["compiled"] / res["hand"]
    res["params"] = n[0]
    print(
        f"ResNet-20 training, batch {args.batch}, {args.threads} threads: compiled "
        f"{res['compiled']:.0f} images/s, hand-written {res['hand']:.0f} images/s, "
        f"ratio {res['ratio']:.3f} ({n[0]:,} parameters each)"
    )
    emit(args, res)


if __name__ == "__main__":
    main()
