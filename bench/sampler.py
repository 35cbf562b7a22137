"""The sampler's distribution beside the reference's, drawn by an independent implementation.

    python bench/sampler.py [--archs 1200] [--seed 0] [--json]

Draws ``--archs`` architectures late in training (progress 1) and half as many early
(progress 0) from smashc's sampler and from ``tests/reference_draw.py`` (the reference's
rules written apart from the sampler, with smashc's fix of the bank sizes; the same module
``tests/test_sampler_distribution.py`` tests with), and prints each histogram side by
side with its two-sample test (chi-square, corrected for the ops of one network not
being independent; KS for the forward MACs). Then the op counts and forward costs per
network against the reference's measured figures, for smashc, the independent draw, and
the independent draw on the reference's own bank sizes (input channels that do not fill
a bank dropped) with and without its 64-column cut of the bottlenecks (defect 1).
Sampling only: nothing is compiled, and it takes under a minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from _common import emit, parse, parser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import reference_draw as rd  # noqa: E402

from smashc.runtime.sampler import SearchSpace  # noqa: E402

# the reference's figures (SMASH-reference.md): median ops per network, median GMAC per image
MEASURED = {"early": (25, 0.152), "late": (37, 0.452)}


def histograms(a: list[rd.Draw], b: list[rd.Draw], sp: SearchSpace) -> list[dict]:
    """One row per category of every histogram: its share in ``a`` and in ``b``."""
    sa, sb = rd.stats(a, sp), rd.stats(b, sp)
    rows = []
    for key in sa:
        ta, tb = rd.pooled(sa[key]), rd.pooled(sb[key])
        na, nb = sum(ta.values()) or 1, sum(tb.values()) or 1
        for value in sorted(set(ta) | set(tb)):
            rows.append(
                {"stat": key, "value": value, "smashc": ta[value] / na, "ref": tb[value] / nb}
            )
    return rows


def costs(draws: list[rd.Draw], sp: SearchSpace, columns: int | None = None) -> dict:
    ops = [len(d.ops) for d in draws]
    gmac = [rd.macs(d, sp, columns) / 1e9 for d in draws]
    return {
        "ops_median": float(np.median(ops)),
        "ops_mean": float(np.mean(ops)),
        "gmac_median": float(np.median(gmac)),
        "gmac_mean": float(np.mean(gmac)),
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--archs", type=int, default=1200, help="architectures per side, late")
    ap.add_argument("--seed", type=int, default=0)
    args = parse(ap)
    sp = SearchSpace()
    figures: dict = {}
    for phase, progress, n in (("early", 0.0, args.archs // 2), ("late", 1.0, args.archs)):
        ours = rd.sampled(sp, n, progress, args.seed)
        ref = rd.draws(sp, n, progress, args.seed + 1)
        own = rd.draws(sp, n, progress, args.seed + 2, fixed=False)
        tests = rd.compare(ours, ref, sp)
        rows = histograms(ours, ref, sp)
        print(f"\n== {phase} (progress {progress:g}), {n} architectures per side ==")
        print(f"{'statistic':22s} {'value':>6s} {'smashc':>8s} {'reference':>10s}")
        for key, test in tests.items():
            for r in (r for r in rows if r["stat"] == key):
                value = f"{r['value']:g}"
                print(f"{key:22s} {value:>6s} {r['smashc']:8.1%} {r['ref']:10.1%}")
            kind = "KS D" if key == "MACs" else f"chi2 (dof {test.dof:.1f})"
            print(f"{key:22s} {kind} {test.statistic:.2f}, p {test.p:.3g}")
        table = {
            "smashc": costs(ours, sp),
            "independent draw": costs(ref, sp),
            "reference's bank sizes": costs(own, sp),
            "reference's bank sizes, bottlenecks cut to 64": costs(own, sp, columns=64),
        }
        ops, gmac = MEASURED[phase]
        print(f"\n{'':48s} {'ops median':>10s} {'mean':>6s} {'GMAC median':>12s} {'mean':>6s}")
        for name, c in table.items():
            print(
                f"{name:48s} {c['ops_median']:10.1f} {c['ops_mean']:6.1f} "
                f"{c['gmac_median']:12.3f} {c['gmac_mean']:6.3f}"
            )
        print(f"{'the reference, measured (300 samples)':48s} {ops:10d} {'':6s} {gmac:12.3f}")
        figures[phase] = {
            "tests": {k: vars(t) for k, t in tests.items()},
            "costs": table,
            "histograms": rows,
        }
    emit(args, figures)


if __name__ == "__main__":
    main()
