"""Ground truth for rankings: architectures of the demo space, each trained normally twice.

``python bench/groundtruth.py [--archs N] [--epochs E] [--train-images T] [--seeds K]``
draws N architectures uniformly from the demo search space (``runtime.presets.DEMO_SPACE``,
the sampler fully annealed, the i-th from the seed stream ``GROUNDTRUTH_ARCH``, not the
scoring stream: they are not a search's architectures), trains each K times with one
recipe (``final.train_final`` with the demo preset's final training, E epochs on the first
T training images) and appends one JSON record per finished architecture to ``--out``
(default ``bench/groundtruth/fashion-demo.jsonl``). Then it prints the noise ceiling: the
Spearman correlation between the first two trainings' validation errors over the
architectures, with a bootstrap interval (``runtime.stats.correlation``). No ranking of
these architectures, by SMASH or by a proxy, can be trusted beyond it. ``--report`` only
prints it for the records so far. This is a long job, outside ``make test`` and CI; one
smoke test (``tests/test_groundtruth.py``) runs it on the synthetic dataset.

Seeds. ``--seed`` (default 0) fixes the set: which architectures are drawn and the
validation split (``runtime.data.split`` of the run context's seed). Training k of every
architecture runs with the context's seed replaced by ``derive(seed, GROUNDTRUTH_TRAIN,
k)``, after the split was made, so the two trainings of an architecture differ only in
what ``train_final`` draws from the run seed (``FINAL_INIT``, its initial weights, and
``FINAL_BATCHES``, its order and augmentation), and are scored on the same validation and
test images. Training k sees the same batches for every architecture (common random
numbers: data order is not part of the difference between two architectures).

Resuming. Run the same command again: finished architectures (records in ``--out``) are
skipped, a finished training whose record was not written yet is read back from its folder
(``--runs``, default ``runs/groundtruth/<out name>/archNNN-sK/``) and a half-finished one
resumes from its checkpoint there (Ctrl-C saves one). An ``--out`` holding records of
another recipe is refused: give another ``--out``.

Record (one JSON object a line): ``index``, ``name`` (``arch007``), ``smash`` (its .smash
text), ``params``, ``macs`` (per image), ``runs`` (one per training: ``repeat``, ``seed``,
``val_error``, ``val_loss``, ``test_error``, ``test_loss``, ``diverged``, ``seconds``,
``resumed``; the errors and losses are null where the loss diverged, E0708),
``seconds`` (the sum) and ``recipe`` (dataset, seed, space, data sizes, precision, the
final-training settings and the training seeds).

Choosing N, epochs and training images: ``--pilot``. The set is useful when its noise
ceiling is at least 0.8 with N >= 48 (at N = 48 a ceiling of 0.8 has an interval of about
0.66 to 0.89; at N = 12, 0.36 to 0.95). Before the full set, run ``--pilot`` with the
recipe you intend: 12 architectures (unless ``--archs`` says otherwise) into
``fashion-demo-pilot.jsonl`` (unless ``--out`` names another file). Its report gives the
seconds per architecture (N times that is the cost of the set) and two spreads:
``between`` (B), the standard deviation of the architectures' mean validation errors, and
``seed noise`` (S), that of one training's error about its architecture's (the root mean
square of ``(e0 - e1) / sqrt 2``). Their ratio, more than the pilot's own wide-interval
ceiling, predicts the full set's: with normal errors the two trainings correlate as
``(B^2 - S^2 / 2) / (B^2 + S^2 / 2)`` (the report prints it), so a Spearman ceiling of 0.8
needs B above about 2.2 S. Where it falls short: more epochs first (a short training
measures how fast an architecture starts more than where it ends, and the seed moves
that), then more training images; when S is near the validation set's own sampling error,
``sqrt(e (1 - e) / V)`` (0.007 at e = 0.1 and the demo's V = 2000), a larger
``--val-size`` lowers it. A pilot whose recipe is kept is the set's first 12
architectures: copy its file to the set's ``--out`` and the full run goes on from the 13th.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from smashc.compiler import Network, for_training, to_text, totals
from smashc.diagnostics import SmashError
from smashc.runtime import precision, runs
from smashc.runtime.context import RunContext, open_context
from smashc.runtime.data import DATASETS
from smashc.runtime.final import train_final
from smashc.runtime.presets import PRESETS
from smashc.runtime.sampler import Sampler
from smashc.runtime.seeds import Stream, derive
from smashc.runtime.stats import correlation

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "groundtruth" / "fashion-demo.jsonl"
PILOT_ARCHS = 12


def arguments(argv: list[str] | None) -> argparse.Namespace:
    demo = PRESETS["demo"]

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--archs", type=int, default=None, help="architectures N: 48, pilot 12")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of each training: %(default)s")
    ap.add_argument(
        "--train-images",
        type=int,
        default=20000,
        help="training images each training sees: %(default)s",
    )
    ap.add_argument("--seeds", type=int, default=2, help="trainings of each architecture: 2")
    ap.add_argument("--seed", type=int, default=0, help="the set's architectures and split: 0")
    ap.add_argument("--dataset", choices=DATASETS, default=demo.dataset)
    ap.add_argument("--data-dir", default=None, help="the dataset's folder")
    ap.add_argument("--val-size", type=int, default=demo.val_size, help="validation images")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    ap.add_argument("--precision", choices=precision.CHOICES, default="auto")
    out = f"{DEFAULT_OUT.relative_to(ROOT)}, pilot {DEFAULT_OUT.stem}-pilot.jsonl"
    ap.add_argument("--out", type=Path, default=None, help=f"the records: {out}")
    ap.add_argument("--runs", type=Path, default=None, help="trainings: runs/groundtruth/OUT")
    ap.add_argument("--pilot", action="store_true", help="a pilot set first (see above)")
    ap.add_argument("--report", action="store_true", help="only print the noise ceiling")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = ap.parse_args(argv)
    if args.archs is None:
        args.archs = PILOT_ARCHS if args.pilot else 48
    if args.out is None:
        args.out = DEFAULT_OUT
        if args.pilot:
            args.out = DEFAULT_OUT.with_name(DEFAULT_OUT.stem + "-pilot.jsonl")
    if args.runs is None:
        args.runs = ROOT / "runs" / "groundtruth" / args.out.stem
    if min(args.archs, args.epochs, args.train_images, args.seeds) < 1:
        ap.error("--archs, --epochs, --train-images and --seeds must be at least 1")
    return args


def open_set(args: argparse.Namespace) -> tuple[RunContext, dict]:
    """The run context (the split made from ``--seed``) and the recipe every record holds."""
    demo = PRESETS["demo"]
    final = replace(demo.final, epochs=args.epochs, train_images=args.train_images)
    cfg = replace(
        demo,
        dataset=args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        val_size=args.val_size,
        final=final,
    )
    ctx = open_context(cfg)
    recipe = {
        "dataset": ctx.cfg.dataset,
        "seed": args.seed,
        "space": asdict(ctx.cfg.space),
        "train_images": min(args.train_images, len(ctx.train)),
        "val_images": len(ctx.val),
        "test_images": len(ctx.data.test),
        "precision": ctx.precision,
        # the training's settings (what a search trains beside its winner is not one)
        "final": {k: v for k, v in asdict(ctx.cfg.final).items() if k != "baselines"},
        "train_seeds": [derive(args.seed, Stream.GROUNDTRUTH_TRAIN, k) for k in range(args.seeds)],
    }
    return ctx, runs.as_json(recipe)


def architecture(ctx: RunContext, seed: int, index: int) -> Network:
    """The ``index``-th architecture of the set seeded ``seed``."""
    sampler = Sampler(ctx.cfg.space, derive(seed, Stream.GROUNDTRUTH_ARCH, index))
    return sampler.sample(1.0, name=f"arch{index:03d}")


def train_once(ctx: RunContext, net: Network, k: int, folder: Path, recipe: dict) -> dict:
    """Training ``k`` of ``net`` in ``folder``: read back if it had finished, resumed from its
    checkpoint if it had begun (with this recipe), else trained afresh."""
    seed = recipe["train_seeds"][k]
    mine = {"recipe": recipe, "repeat": k, "smash": to_text(net)}
    folder.mkdir(parents=True, exist_ok=True)
    same = folder / "recipe.json"
    ours = same.exists() and json.loads(same.read_text(encoding="utf-8")) == mine
    if ours and (folder / "result.json").exists():
        return json.loads((folder / "result.json").read_text(encoding="utf-8"))
    resume = ours and (folder / "checkpoint.pt").exists()
    (folder / "result.json").unlink(missing_ok=True)  # another recipe's, if any
    same.write_text(json.dumps(mine) + "\n", encoding="utf-8")
    start = time.perf_counter()
    result = {"repeat": k, "seed": seed}
    try:
        summary, resume = _train(replace(ctx, cfg=replace(ctx.cfg, seed=seed)), net, folder, resume)
    except SmashError as exc:
        if not any(d.code == "E0708" for d in exc.diagnostics):
            raise
        # the loss diverged: the same seed diverges again, so it is recorded, not retried
        print(exc.render(), file=sys.stderr)
        nothing = dict.fromkeys(("val_error", "val_loss", "test_error", "test_loss"))
        result.update(nothing, diverged=True)
    else:
        last = runs.read_jsonl(folder / "final.jsonl")[-1]
        result.update(
            val_error=1 - last["val_acc"],
            val_loss=last["val_loss"],
            test_error=summary["test_error"],
            test_loss=summary["test_loss"],
            diverged=False,
        )
    # the wall time of this (last) invocation: a resumed training's earlier part is not in it
    result.update(seconds=round(time.perf_counter() - start, 2), resumed=resume)
    (folder / "result.json").write_text(json.dumps(result) + "\n", encoding="utf-8")
    return result


def _train(ctx: RunContext, net: Network, folder: Path, resume: bool) -> tuple[dict, bool]:
    """``train_final`` and whether it resumed; a half-finished training whose checkpoint
    cannot be resumed (E0707: damaged, or written by a version of smashc that did not check
    its checkpoints) is trained afresh instead, with a note: it loses that training's
    progress, not the set."""
    try:
        return train_final(ctx, net, folder, resume), resume
    except SmashError as exc:
        if not resume or not any(d.code == "E0707" for d in exc.diagnostics):
            raise
        why = exc.diagnostics[0].message
        print(
            f"{folder}: its checkpoint cannot be resumed ({why}); training afresh", file=sys.stderr
        )
        return train_final(ctx, net, folder, False), False


def read_records(path: Path, recipe: dict | None) -> list[dict]:
    """The records in ``path``; with ``recipe``, a SystemExit if one was made with another."""
    records = runs.read_jsonl(path)
    for rec in records:
        if recipe is not None and rec.get("recipe") != recipe:
            changed = "; ".join(runs.config_differences(rec.get("recipe"), recipe))
            sys.exit(f"{path} holds records of another recipe ({changed}): give another --out")
    return records


def _error(e: float | None) -> str:
    return "diverged" if e is None else f"{e:.4f}"


def report(records: list[dict], name: str) -> dict:
    """Prints, and returns, the noise ceiling of ``records`` and the spreads behind it;
    architectures with a diverged training are left out (and counted)."""
    out: dict = {"archs": len(records), "noise_ceiling": None}
    if not records:
        print(f"{name}: no architectures yet")
        return out
    kept = [rec for rec in records if all(r["val_error"] is not None for r in rec["runs"])]
    out["diverged"] = len(records) - len(kept)
    if out["diverged"]:
        print(f"{name}: {out['diverged']} architectures with a diverged training left out")
    records, n = kept, len(kept)
    if n == 0:
        return out
    runs_of = [rec["runs"] for rec in records]
    recipe = records[0]["recipe"]
    seconds = statistics.median(rec["seconds"] for rec in records)
    epochs = recipe["final"]["epochs"]
    print(
        f"{name}: {n} architectures, {len(runs_of[0])} trainings each "
        f"({epochs} epoch{'s' * (epochs != 1)} on {recipe['train_images']} {recipe['dataset']} "
        f"images, validated on {recipe['val_images']}), median {seconds:.0f} s an architecture"
    )
    if len(runs_of[0]) < 2:
        print("noise ceiling: needs two trainings of each architecture (--seeds 2)")
        return out
    out["median_seconds"] = seconds
    for key, label in (("val_error", "validation"), ("test_error", "test")):
        out[key] = _spread(runs_of, key, label)
    out["noise_ceiling"] = out["val_error"]["ceiling"]
    return out


def _spread(runs_of: list[list[dict]], key: str, label: str) -> dict:
    """Prints and returns the spreads of the first two trainings' ``key`` errors and their
    Spearman correlation (the noise ceiling), with its bootstrap interval."""
    first = [r[0][key] for r in runs_of]
    second = [r[1][key] for r in runs_of]
    pairs = list(zip(first, second, strict=True))
    means = [(a + b) / 2 for a, b in pairs]
    between = statistics.pstdev(means)
    noise = math.sqrt(statistics.fmean((a - b) ** 2 / 2 for a, b in pairs))
    # two trainings' errors e_k = a + n_k correlate as var(a) / (var(a) + var(n)), and
    # var(a) = between^2 - noise^2 / 2 (the means keep half the noise's variance)
    predicted = (between**2 - noise**2 / 2) / (between**2 + noise**2 / 2) if between else 0.0
    out = {"between": between, "seed_noise": noise, "predicted": predicted, "ceiling": None}
    print(
        f"{label} error: {min(means):.4f} to {max(means):.4f}; between architectures sd "
        f"{between:.4f}, seed noise sd {noise:.4f} (they predict a correlation of "
        f"{predicted:+.2f})"
    )
    if len(pairs) < 3:
        print(f"noise ceiling: needs at least 3 architectures, has {len(pairs)}")
        return out
    ceiling = correlation(first, second)
    out["ceiling"] = {"value": ceiling.value, "low": ceiling.low, "high": ceiling.high}
    print(f"noise ceiling (Spearman, training 0 vs 1 {label} error): {ceiling}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.report:
        summary = report(read_records(args.out, None), args.out.name)
        if args.json:
            print(json.dumps(summary))
        return 0
    try:
        ctx, recipe = open_set(args)
        records = read_records(args.out, recipe)
        done = {rec["index"] for rec in records}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for i in range(args.archs):
            if i in done:
                continue
            net = architecture(ctx, args.seed, i)
            trained = [
                train_once(ctx, net, k, args.runs / f"arch{i:03d}-s{k}", recipe)
                for k in range(args.seeds)
            ]
            params, macs = totals(for_training(net))
            record = {
                "index": i,
                "name": net.name,
                "smash": to_text(net),
                "params": params,
                "macs": macs,
                "runs": trained,
                "seconds": round(sum(t["seconds"] for t in trained), 2),
                "recipe": recipe,
            }
            runs.append_jsonl(args.out, record)
            errors = ", ".join(_error(t["val_error"]) for t in trained)
            print(f"{net.name}: validation error {errors} ({record['seconds']:.0f} s)")
            records.append(record)
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except runs.Interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    summary = report(records, args.out.name)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from smashc.runtime.alloc import tune_process

    tune_process()
    sys.exit(main())
