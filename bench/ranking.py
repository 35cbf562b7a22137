"""Ranking quality as a benchmark: ``smashc experiment ranking`` on the committed ground truth.

    python bench/ranking.py [--groundtruth FILE] [--epochs E] [--checkpoint PATH]
                            [--set KEY=VALUE ...] [--heldout] [--out DIR] [--json]

Trains the demo preset's SMASH network (or loads ``--checkpoint``), scores every
architecture of the ground-truth set's tuning part (``--heldout``: its held-out part) and
prints Spearman rho, Kendall tau, top-10% recall and the picked architecture's true error
for the SMASH score, every zero-cost proxy, parameters, MACs, a random order and the noise
ceiling (``runtime/experiments/ranking.py``). The ground truth defaults to
``bench/groundtruth/fashion-demo.jsonl``, or its pilot while the set is not there. The run
resumes from its folder (``--out``, default ``runs/bench-ranking``; one folder per
setting). ``--json`` ends with the figures as one JSON line, for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = (
    ROOT / "bench" / "groundtruth" / "fashion-demo.jsonl",
    ROOT / "bench" / "groundtruth" / "fashion-demo-pilot.jsonl",
)


def default_set() -> Path:
    return next((p for p in SETS if p.is_file()), SETS[0])


def arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groundtruth", type=Path, default=None, help="the ground-truth set")
    ap.add_argument("--preset", default="demo", help="the experiment preset: %(default)s")
    ap.add_argument("--epochs", type=int, default=None, help="HyperNet training epochs")
    ap.add_argument("--checkpoint", default=None, help="a trained SMASH network")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--heldout", action="store_true", help="the held-out part")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-ranking")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def command(args: argparse.Namespace) -> list[str]:
    """The ``smashc`` command line this benchmark runs."""
    truth = args.groundtruth or default_set()
    argv = ["experiment", "ranking", "--preset", args.preset, "--groundtruth", str(truth),
            "--out", str(args.out), "--device", "cpu", "--precision", "fp32"]  # fmt: skip
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    if args.checkpoint is not None:
        argv += ["--checkpoint", args.checkpoint]
    if args.heldout:
        argv.append("--heldout")
    for kv in args.set:
        argv += ["--set", kv]
    return argv


def figures(summary: dict) -> dict:
    """The benchmark's figures: per predictor rho and tau with intervals, top recall and the
    true error of its pick."""
    rows = {
        name: {
            "rho": row["spearman"],
            "tau": row["kendall"],
            "top_recall": row["top_recall"],
            "picked_error": row["picked_error"],
        }
        for name, row in summary["predictors"].items()
    }
    return {"archs": summary["archs"], "seconds": summary["seconds"], "predictors": rows}


def main(argv: list[str] | None = None) -> int:
    from smashc.cli import main as smashc

    args = arguments(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    argv = command(args)
    print("smashc " + " ".join(argv), flush=True)
    code = smashc(argv)
    if code:
        return code
    name = "summary-heldout.json" if args.heldout else "summary.json"
    summary = json.loads((args.out / name).read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(figures(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
