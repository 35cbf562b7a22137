"""The arch-grad experiment: per architecture, dE/dc, the single-op changes it predicts to
lower the SMASH error most, and as many random ones, all scored by their actual error
(``runtime.archgrad``; the paper's "perturbing the architecture according to dE/dc")."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smashc.runtime import progress, runs
from smashc.runtime.archgrad import (
    Change,
    apply,
    encode_arch,
    encoding_gradient,
    predicted_change,
    single_changes,
)
from smashc.runtime.config import SearchConfig
from smashc.runtime.experiments import common, register
from smashc.runtime.rules import Flag, count, setting
from smashc.runtime.scoring import Scorer, noise
from smashc.runtime.seeds import Stream
from smashc.runtime.strategies.sample import sampled

_MINE = ("arch-grad",)


@dataclass(frozen=True)
class ArchGradConfig:
    search: SearchConfig = setting(own_names=True)
    archs: int = setting(20, count(1), Flag("--archs", _MINE, "base architectures", "M"))
    proposals: int = setting(  # gradient-proposed and random changes scored per architecture
        5, count(1), Flag("--proposals", _MINE, "changes of each kind per architecture", "N")
    )
    grad_batches: int = setting(  # validation batches dE/dc is computed on
        4, count(1), Flag("--grad-batches", _MINE, "validation batches for dE/dc", "B")
    )
    resamples: int = setting(2000, count(1))
    checkpoint: str | None = setting(None, None, common.CHECKPOINT_FLAG)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


ARCH_GRAD: dict[str, ArchGradConfig] = {
    "demo": ArchGradConfig(search=common.preset("demo", val_images=1000), archs=30),
    "smoke": ArchGradConfig(
        search=common.preset("smoke"), archs=2, proposals=2, grad_batches=1, resamples=200
    ),
    "paper": ArchGradConfig(search=common.preset("paper"), archs=50),
}

_CHANGE = tuple(f.name for f in dataclasses.fields(Change))


def _change_key(ch: Change) -> str:
    return f"{ch.block}/{ch.layer}/{ch.conv}/{ch.attribute}/{ch.new}"


def run(cfg: ArchGradConfig, out: Path) -> dict:
    """Per architecture: dE/dc, the ``proposals`` single-op changes it predicts to lower E the
    most, and as many random ones; all scored by their actual SMASH error."""
    cfg, ctx, model = common.open_experiment(cfg, out)
    scorer = Scorer(ctx, model)
    enc = ctx.cfg.space.encoding()
    path = out / "arch_grad.jsonl"
    done = {(r["index"], r["kind"], r["rank"]): r for r in runs.read_jsonl(path)}
    try:
        for i in progress.bar(range(cfg.archs), desc="arch-grad", unit="arch"):
            n = cfg.proposals
            keys = [(i, "base", 0)] + [(i, k, r) for k in ("gradient", "random") for r in range(n)]
            if all(k in done for k in keys):
                continue
            net = sampled(ctx, i)
            compiled = model.compile(net)
            base = scorer.error(compiled, i)
            zs = noise(ctx, i, compiled, ctx.cfg.score.z_samples)
            grads = [
                encoding_gradient(model, compiled, scorer.batches, z, cfg.grad_batches) for z in zs
            ]
            grad = sum(g for g, _ in grads) / len(grads)
            changes = single_changes(net, ctx.cfg.space)
            if not changes:
                continue
            c0 = compiled.enc.tensor
            pred = [predicted_change(grad, c0, encode_arch(apply(net, ch), enc)) for ch in changes]
            order = sorted(range(len(changes)), key=lambda j: (pred[j], j))[:n]
            rng = np.random.default_rng(ctx.seed(Stream.ARCH_GRAD_RANDOM, i))
            random = [int(j) for j in rng.choice(len(changes), min(n, len(changes)), replace=False)]
            cache: dict[int, float] = {}
            rec = {"index": i, "kind": "base", "rank": 0, "error": base, "loss": grads[0][1]}
            if (i, "base", 0) not in done:
                runs.append_jsonl(path, rec)
                done[(i, "base", 0)] = rec
            for kind, picks in (("gradient", order), ("random", random)):
                for r, j in enumerate(picks):
                    if (i, kind, r) in done:
                        continue
                    if j not in cache:
                        cand = model.compile(apply(net, changes[j]))
                        cache[j] = scorer.error(cand, i)
                    ch = changes[j]
                    rec = {
                        "index": i,
                        "kind": kind,
                        "rank": r,
                        **dataclasses.asdict(ch),
                        "predicted": pred[j],
                        "base_error": base,
                        "error": cache[j],
                        "actual": cache[j] - base,
                    }
                    runs.append_jsonl(path, rec)
                    done[(i, kind, r)] = rec
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    return _report(cfg, out, done)


def _report(cfg: ArchGradConfig, out: Path, done: dict) -> dict:
    recs = [r for r in done.values() if r["kind"] != "base" and r["index"] < cfg.archs]
    recs.sort(key=lambda r: (r["index"], r["kind"], r["rank"]))
    header = ["index", "kind", "rank", "block", "layer", "conv", "attribute", "old", "new"]
    header += ["predicted", "base_error", "error", "actual"]
    with (out / "arch_grad.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header, extrasaction="ignore")
        w.writeheader()
        w.writerows(recs)

    def summary_of(kind: str) -> dict:
        actual = [r["actual"] for r in recs if r["kind"] == kind]
        return {
            "changes": len(actual),
            "mean_change": float(np.mean(actual)) if actual else None,
            "mean_improvement": -float(np.mean(actual)) if actual else None,
            "frac_improved": float(np.mean([a < 0 for a in actual])) if actual else None,
        }

    unique = {(r["index"], _change_key(Change(**{k: r[k] for k in _CHANGE}))): r for r in recs}
    pred = [r["predicted"] for r in unique.values()]
    actual = [r["actual"] for r in unique.values()]
    corr = common.stats(pred, actual, cfg.search.seed, cfg.resamples) if len(pred) >= 3 else None
    summary = {
        "experiment": "arch-grad",
        "archs": cfg.archs,
        "proposals": cfg.proposals,
        "gradient": summary_of("gradient"),
        "random": summary_of("random"),
        "predicted_vs_actual": corr,
        "scored_changes": len(unique),
        "files": {"csv": str(out / "arch_grad.csv")},
    }
    g, r = summary["gradient"]["mean_improvement"], summary["random"]["mean_improvement"]
    summary["gradient_minus_random"] = g - r if g is not None and r is not None else None
    common.write_json(out / "summary.json", summary)
    return summary


def show(summary: dict) -> None:
    for kind in ("gradient", "random"):
        s = summary[kind]
        if s["changes"]:
            print(
                f"{kind:<8} changes: mean SMASH-error change {s['mean_change']:+.4f}, "
                f"{s['frac_improved']:.0%} improved ({s['changes']} changes)"
            )
    corr = summary["predicted_vs_actual"]
    if corr:
        rho = corr["spearman"]
        print(
            f"predicted vs actual change: Spearman rho {rho['value']:+.3f} "
            f"[{rho['low']:+.3f}, {rho['high']:+.3f}]"
        )
    print(f"wrote {summary['files']['csv']}")


register("arch-grad", "dE/dc-proposed op changes vs random ones", ARCH_GRAD, run, show)
