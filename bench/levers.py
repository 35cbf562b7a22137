"""The levers that may raise the SMASH score's rank correlation, each measured by the ranking
benchmark (``bench/ranking.py``) on the same ground truth.

    python bench/levers.py [--only NAME,...] [--groundtruth FILE] [--preset demo]
                           [--out runs/levers] [--json]

Every variant changes one setting of the demo preset. Those in ``TRAINED`` train a SMASH
network of their own (training length; the meta-batch, k architectures a step); those in
``SCORED`` rescore the demo-length network (``demo``'s checkpoint) with other scoring
settings (validation images, BN recalibration, averaging over z). Each variant resumes in
``OUT/NAME``; the table (markdown) and ``OUT/levers.json`` hold SMASH's rho, tau, top-10%
recall and picked error, and what it cost (also as ``OUT/table.md``); the zero-cost
proxies' rows of the demo variant follow as the bar to clear. The full set is hours on 2
cores: run it in the background (``nice``), ``--only`` a few at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import ranking

from smashc.runtime.config import SmashTraining

ROOT = Path(__file__).resolve().parent.parent
STEPS = 150  # the demo preset's steps a HyperNet epoch

TRAINED: dict[str, tuple[str, list[str]]] = {
    "steps-150": ("1 epoch (150 steps)", ["--epochs", "1"]),
    "demo": ("the demo preset: 3 epochs (450 steps), k = 1", []),
    "steps-1350": ("9 epochs (1,350 steps)", ["--epochs", "9"]),
    "steps-4050": ("27 epochs (4,050 steps, about 30 minutes)", ["--epochs", "27"]),
    "meta-4": ("meta-batch k = 4 (450 steps, 4x the work)", ["--set", "search.train.meta_batch=4"]),
    # 113 steps fill a data epoch at k = 8 (906 batches of 64): 4 epochs are 452 steps
    "meta-8": (
        "meta-batch k = 8 (452 steps, 8x the work)",
        ["--set", "search.train.meta_batch=8", "--epochs", "4"],
    ),
}
SCORED: dict[str, tuple[str, list[str]]] = {
    "val-250": ("scored on 250 validation images", ["--set", "search.score.val_images=250"]),
    "val-2000": ("scored on 2,000 validation images", ["--set", "search.score.val_images=2000"]),
    "bn-4": ("BN recalibrated on 4 batches", ["--set", "search.score.bn_batches=4"]),
    "z-4": ("error averaged over 4 z samples", ["--set", "search.score.z_samples=4"]),
    "bn-4+z-4": (
        "both",
        ["--set", "search.score.bn_batches=4", "--set", "search.score.z_samples=4"],
    ),
}


def _has_meta_batch() -> bool:
    return any(f.name == "meta_batch" for f in fields(SmashTraining))


def variants(only: list[str] | None) -> list[str]:
    names = [*TRAINED, *SCORED]
    if not _has_meta_batch():
        names = [n for n in names if not n.startswith("meta-")]
    if only is None:
        return names
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise SystemExit(f"unknown variants {', '.join(unknown)}; known: {', '.join(names)}")
    return list(dict.fromkeys(only))  # in the order given


def run_variant(name: str, truth: Path | None, out: Path, preset: str = "demo") -> dict:
    change, extra = TRAINED.get(name) or SCORED[name]
    argv = ["--out", str(out / name), "--preset", preset]
    if truth is not None:
        argv += ["--groundtruth", str(truth)]
    if name in SCORED:
        base = out / "demo" / "smash" / "checkpoint.pt"
        if not base.is_file():
            run_variant("demo", truth, out, preset)
        argv += ["--checkpoint", str(base)]
    args = ranking.arguments(argv)
    argv = ranking.command(args) + extra
    from smashc.cli import main as smashc

    print("smashc " + " ".join(argv), flush=True)
    if smashc(argv):
        raise SystemExit(f"variant {name} failed")
    summary = json.loads((out / name / "summary.json").read_text(encoding="utf-8"))
    return {"change": change, **ranking.figures(summary)}


def _cell(c: dict) -> str:
    return f"{c['value']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]"


def table(results: dict[str, dict]) -> str:
    cols = ("variant", "change", "SMASH rho [95%]", "tau", "top-10%", "picked error", "SMASH s",
            "scoring s")  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for name, r in results.items():
        s = r["predictors"]["smash"]
        sec = r["seconds"]
        lines.append(
            f"| {name} | {r['change']} | {_cell(s['rho'])} | {_cell(s['tau'])} | "
            f"{s['top_recall']:.2f} | {s['picked_error']:.4f} | {sec.get('smash', 0):.0f} | "
            f"{sec.get('scoring', 0):.0f} |"
        )
    base = results.get("demo")
    if base is not None:
        lines += ["", "| predictor (demo variant) | rho [95%] | tau | top-10% | picked error |"]
        lines.append("|---" * 5 + "|")
        for name, p in base["predictors"].items():
            if name != "smash":
                lines.append(
                    f"| {name} | {_cell(p['rho'])} | {_cell(p['tau'])} | "
                    f"{p['top_recall']:.2f} | {p['picked_error']:.4f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated variants, run in this order")
    ap.add_argument("--groundtruth", type=Path, default=None)
    ap.add_argument("--preset", default="demo", help="the ranking experiment's preset")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "levers")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    names = variants(args.only.split(",") if args.only else None)
    results = {name: run_variant(name, args.groundtruth, args.out, args.preset) for name in names}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "levers.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "table.md").write_text(table(results) + "\n", encoding="utf-8")
    print(table(results))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
