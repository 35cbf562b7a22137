"""The corrupt experiment: each architecture scored with its true encoding c and with c
corrupted one field at a time (``runtime.corrupt``); does the HyperNet use c?"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from smashc.runtime import progress, runs
from smashc.runtime.config import SearchConfig
from smashc.runtime.corrupt import MODES, corrupt, corruptible
from smashc.runtime.experiments import common, register
from smashc.runtime.rules import Flag, count, distinct_among, setting
from smashc.runtime.scoring import Scorer
from smashc.runtime.seeds import Stream
from smashc.runtime.strategies.sample import sampled


def _modes(text: str) -> tuple[str, ...]:
    return MODES if text == "both" else (text,)


@dataclass(frozen=True)
class CorruptConfig:
    search: SearchConfig = setting(own_names=True)
    archs: int = setting(
        20, count(1), Flag("--archs", ("corrupt",), "architectures to corrupt", "M")
    )
    modes: tuple[str, ...] = setting(
        MODES,
        distinct_among(MODES, "modes"),
        Flag("--mode", ("corrupt",), "how to corrupt", choices=(*MODES, "both"), convert=_modes),
    )
    checkpoint: str | None = setting(None, None, common.CHECKPOINT_FLAG)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


CORRUPT: dict[str, CorruptConfig] = {
    "demo": CorruptConfig(search=common.preset("demo", val_images=500), archs=30),
    "smoke": CorruptConfig(search=common.preset("smoke"), archs=2),
    "paper": CorruptConfig(search=common.preset("paper"), archs=50),
}


def run(cfg: CorruptConfig, out: Path) -> dict:
    """Scores each architecture with its true c and with c corrupted one field at a time."""
    cfg, ctx, model = common.open_experiment(cfg, out)
    scorer = Scorer(ctx, model)
    enc = ctx.cfg.space.encoding()
    fields = corruptible(enc)
    path = out / "corrupt.jsonl"
    done = {(r["index"], r["field"], r["mode"]): r for r in runs.read_jsonl(path)}
    try:
        for i in progress.bar(range(cfg.archs), desc="corrupting", unit="arch"):
            keys = [(i, "true", "-")] + [(i, f, m) for f in fields for m in cfg.modes]
            if all(k in done for k in keys):
                continue
            compiled = model.compile(sampled(ctx, i))
            c = compiled.enc.tensor
            for key in keys:
                if key in done:
                    continue
                _, field, mode = key
                if field == "true":
                    bad, changed = c, 0
                else:
                    seed = ctx.seed(Stream.CORRUPTION, i, fields.index(field), MODES.index(mode))
                    bad = corrupt(c, enc, field, np.random.default_rng(seed), mode)
                    changed = int((bad != c).sum())
                err = None
                if field == "true" or changed:
                    fake = replace(compiled, enc=replace(compiled.enc, tensor=bad))
                    err = scorer.error(fake, i)
                rec = {"index": i, "field": field, "mode": mode, "error": err, "changed": changed}
                runs.append_jsonl(path, rec)
                done[key] = rec
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    return _report(cfg, out, done, fields)


def _report(cfg: CorruptConfig, out: Path, done: dict, fields) -> dict:
    per_arch = []
    rows = []
    for field in fields:
        for mode in cfg.modes:
            gaps, better, ties, worse, unchanged = [], 0, 0, 0, 0
            for i in range(cfg.archs):
                true = done[(i, "true", "-")]["error"]
                rec = done[(i, field, mode)]
                if rec["error"] is None:
                    unchanged += 1
                    per_arch.append([i, field, mode, f"{true:.4f}", "", "", 0])
                    continue
                gap = rec["error"] - true
                gaps.append(gap)
                better += gap > 0
                ties += gap == 0
                worse += gap < 0
                per_arch.append(
                    [
                        i,
                        field,
                        mode,
                        f"{true:.4f}",
                        f"{rec['error']:.4f}",
                        f"{gap:+.4f}",
                        rec["changed"],
                    ]
                )
            n = len(gaps)
            rows.append(
                {
                    "field": field,
                    "mode": mode,
                    "archs": n,
                    "true_best": better,
                    "ties": ties,
                    "corrupt_best": worse,
                    "unchanged": unchanged,
                    "frac_true_best": better / n if n else None,
                    "frac_ties": ties / n if n else None,
                    "mean_gap": float(np.mean(gaps)) if n else None,
                }
            )
    header = list(rows[0]) if rows else []
    with (out / "corrupt.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    with (out / "corrupt_archs.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "field", "mode", "true_error", "corrupt_error", "gap", "changed"])
        w.writerows(per_arch)
    gaps = [r["mean_gap"] for r in rows if r["mean_gap"] is not None]
    summary = {
        "experiment": "corrupt",
        "archs": cfg.archs,
        "fields": rows,
        "overall_frac_true_best": (
            sum(r["true_best"] for r in rows) / max(1, sum(r["archs"] for r in rows))
        ),
        "overall_mean_gap": float(np.mean(gaps)) if gaps else None,
        "files": {"csv": str(out / "corrupt.csv"), "per_arch": str(out / "corrupt_archs.csv")},
    }
    common.write_json(out / "summary.json", summary)
    return summary


def show(summary: dict) -> None:
    print(f"{'field':<16} {'mode':<8} {'true best':>9} {'ties':>5} {'mean gap':>9}")
    for r in summary["fields"]:
        if not r["archs"]:
            print(f"{r['field']:<16} {r['mode']:<8} {'(no architecture changed)':>25}")
            continue
        frac = f"{r['true_best']}/{r['archs']}"
        print(f"{r['field']:<16} {r['mode']:<8} {frac:>9} {r['ties']:>5} {r['mean_gap']:>+9.4f}")
    print(f"wrote {summary['files']['csv']} and {summary['files']['per_arch']}")


register("corrupt", "score architectures with corrupted encodings c", CORRUPT, run, show)
