"""SMASH training steps under the HyperNet backend of several git revisions, alternated.

    PYTHONPATH=bench python bench/archive/ab.py REV [REV ...] [--progress 0] [--archs 8]
                                                [--precision auto] [--threads 2] [--json]

How the speed changes in ``docs/performance-history.md`` were measured.
``smashc/backends/hyperfx.py`` and ``kernels.py`` of each revision (``.`` is the working
tree) are loaded side by side; everything else is the working tree's. For each sampled
architecture (reference-sized work, ``max_bottleneck=1``) every revision's network runs
one untimed step, then two timed steps in rotated order. The untimed step matters: oneDNN
builds its kernels on the first use of each conv shape, and without it whichever revision
runs first on an architecture pays that, about 8% of an early step (an A/A comparison
shows it). Prints the mean step per revision (on CPU, forward in ``--precision``); use the
same revision twice for an A/A check.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _common import emit, module_at, parse, revisions_parser, smash_trainer

from smashc.backends.fxrun import GraphRunner
from smashc.runtime.sampler import Sampler, SearchSpace

FILES = ("kernels", "hyperfx")


def load(rev: str, tag: str, into: Path):
    """The revision's hyperfx module, importing that revision's kernels."""
    own = f"import kernels_{tag} as kernels"
    for name in FILES:  # kernels first: hyperfx imports it
        mod = module_at(
            rev, f"smashc/backends/{name}.py", f"{name}_{tag}", into,
            lambda text: text.replace("from smashc.backends import kernels", own),
        )  # fmt: skip
    return mod


def run(revs: list[str], progress: float, archs: int, prec: str) -> dict[str, float]:
    tags = [f"r{i}" for i in range(len(revs))]
    with tempfile.TemporaryDirectory() as tmp:
        mods = [load(rev, tag, Path(tmp)) for rev, tag in zip(revs, tags, strict=True)]
    space = SearchSpace(max_bottleneck=1)
    model, step = smash_trainer(space, prec=prec)

    def build(mod, c):
        if hasattr(mod, "hyper_graph"):  # revisions before GraphRunner built GraphModules
            return GraphRunner(*mod.hyper_graph(c.ir, model.shared, c.enc))
        return mod.to_fx_hyper(c.ir, model.shared, c.enc)

    times: list[list[float]] = [[] for _ in revs]
    for i in range(archs):
        c = model.compile(Sampler(space, seed=1000 + i).sample(progress))
        nets = [build(m, c) for m in mods]
        for net in nets:
            step(net, c)  # oneDNN's first use of these shapes: not timed
        order = list(range(len(revs)))
        for r in range(2):
            order = order[1:] + order[:1] if r == 0 else order[::-1]
            for k in order:
                times[k].append(step(nets[k], c))
    named = zip(revs, tags, times, strict=True)
    return {f"{rev} ({tag})": statistics.mean(t) for rev, tag, t in named}


def main() -> None:
    args = parse(revisions_parser(__doc__, progress=0.0, archs=8, device=True))
    res = run(args.revs, args.progress, args.archs, args.precision)
    print(
        f"mean SMASH step, progress {args.progress}, {args.precision}, {args.archs} "
        "architectures x 2 steps:"
    )
    for name, t in res.items():
        print(f"  {name:<24} {t:.3f} s")
    emit(args, res)


if __name__ == "__main__":
    main()
