"""How ``smashc check`` scales with the size of one block: time against N layers.

    python bench/check_scaling.py [--family dense,chain,resnet] [--sizes 256,512,1024,2048,4096]

Each family is one block of N layers, written as a short ``repeat`` (the issue's 9-line
block), checked as ``smashc check`` does (parse, expand, lower, the default pass pipeline
with pattern recognition), in this process:
* ``dense``: ``banks N x 1`` (the input fills bank 0), layer i = 1..N-1 reads banks
  0..i-1 and writes bank i (a DenseNet: recognised as one). Its reads are N(N-1)/2, so
  the IR itself is quadratic in N; the figure to read is the time per read, which stays
  flat when every stage is linear in the block's reads and writes.
* ``chain``: the same banks, layer i reads bank i - 1 only (2(N-1) reads and writes;
  custom).
* ``resnet``: one bank, N layers each adding into it (a ResNet).
N is at most 4,096, the language's limit on banks per block.
Printed per N: reads plus writes, seconds of the front end, of the passes without
recognition and of ``recognize-patterns``, the total, and microseconds per read or write.
Timings need a quiet machine.
"""

from __future__ import annotations

import time

from _common import emit, parse, parser

from smashc.frontend.expand import expand
from smashc.frontend.loader import load_text
from smashc.ir import lower
from smashc.passes import DEFAULT_PIPELINE, run_pipeline

BODIES = {
    "dense": (
        "banks n x 1",
        "repeat i in 1..n { layer read 0..i write i = conv(out=1, kernel=1) }",
        "output 0..n",
    ),
    "chain": (
        "banks n x 1",
        "repeat i in 1..n { layer read i - 1 write i = conv(out=1, kernel=1) }",
        "output n - 1",
    ),
    "resnet": (
        "banks 1 x 1",
        "repeat i in 0..n { layer read 0 write 0 = conv(out=1, kernel=1) }",
        "output 0",
    ),
}
PATTERN = {"dense": "densenet", "chain": "custom", "resnet": "resnet"}


def source(family: str, n: int) -> str:
    banks, layers, output = BODIES[family]
    return (
        f"network scaling(n={n}) {{\n    input 1 x 4 x 4\n    classes 2\n    block b {{\n"
        f"        {banks}\n        {layers}\n        {output}\n    }}\n"
        "    head { gap -> linear(out=2) }\n}\n"
    )


def accesses(family: str, n: int) -> int:
    """Reads plus writes of the block's layers."""
    return {"dense": n * (n - 1) // 2 + n - 1, "chain": 2 * (n - 1), "resnet": 2 * n}[family]


def run(family: str, n: int) -> dict:
    text = source(family, n)
    start = time.perf_counter()
    net = expand(load_text(text, "scaling.smash"))
    front = time.perf_counter() - start
    result = run_pipeline(lower(net), DEFAULT_PIPELINE)
    total = time.perf_counter() - start
    recognise = sum(t for name, t in result.timings if name == "recognize-patterns")
    found = result.ir.patterns["b"].family
    assert found == PATTERN[family], (family, n, found)
    return {
        "n": n,
        "accesses": accesses(family, n),
        "front_s": round(front, 3),
        "passes_s": round(total - front - recognise, 3),
        "recognize_s": round(recognise, 3),
        "total_s": round(total, 3),
        "us_per_access": round(1e6 * total / accesses(family, n), 2),
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--family", default="dense,chain,resnet", help="comma-separated families")
    ap.add_argument("--sizes", default="256,512,1024,2048,4096", help="comma-separated N")
    args = parse(ap)
    figures: dict[str, list[dict]] = {}
    for family in args.family.split(","):
        rows = figures.setdefault(family, [])
        print(f"{family}: N, reads+writes, front s, passes s, recognize s, total s, us/access")
        for n in (int(s) for s in args.sizes.split(",")):
            r = run(family, n)
            rows.append(r)
            print(
                f"  {r['n']:>6} {r['accesses']:>10} {r['front_s']:>8} {r['passes_s']:>8} "
                f"{r['recognize_s']:>8} {r['total_s']:>8} {r['us_per_access']:>8}",
                flush=True,
            )
    emit(args, figures)


if __name__ == "__main__":
    main()
