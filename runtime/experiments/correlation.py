"""The correlation experiment (the paper's Figure 3): does the SMASH score rank
architectures like their true error?

``search.score.archs`` sampled architectures are scored; every ``every``-th in order of
score is trained normally, and SMASH score and true (validation) error are compared by
Spearman's rho and Kendall's tau with bootstrap intervals, next to free baselines
(parameters, MACs) and a random ranking; optionally the effect of the scoring knobs (BN
recalibration, averaging over z). ``low-budget`` is the same with a much smaller HyperNet.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from smashc.compiler import to_text
from smashc.runtime import runs
from smashc.runtime.config import FinalTraining, SearchConfig, check_config
from smashc.runtime.experiments import common, register
from smashc.runtime.experiments.common import SCORES, fail, stats
from smashc.runtime.experiments.trainings import train_all
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.plots import pyplot, save
from smashc.runtime.presets import PRESETS
from smashc.runtime.rules import Flag, count, optional_count, setting
from smashc.runtime.scoring import Scored, ScoreLog, Scorer, score_indices
from smashc.runtime.seeds import Stream
from smashc.runtime.stats import every_mth
from smashc.runtime.strategies.sample import sampled

_MINE = ("correlation", "low-budget")


@dataclass(frozen=True)
class CorrelationConfig:
    """The correlation experiment (and, with a small HyperNet, the low-budget one).

    ``search.score.archs`` architectures are scored, every ``every``-th in order of score is
    trained with ``search.final``; ``search.score.bn_batches`` / ``z_samples`` are the
    scoring knobs of the main scores, ``knob_*`` the settings ``knobs`` compares.
    """

    search: SearchConfig = setting(own_names=True)
    every: int = setting(
        5, count(1), Flag("--every", _MINE, "train every M-th in order of score (paper: 5)", "M")
    )
    jobs: int = setting(  # final trainings run in this many processes
        1, count(1), Flag("--jobs", _MINE, "normal trainings run in N processes", "N")
    )
    knobs: bool = setting(
        False,
        None,
        Flag("--knobs", _MINE, "also report rho with BN recalibration / z averaging",
             store_true=True),
    )  # fmt: skip
    knob_bn_batches: int = setting(4, count(1))
    knob_z_samples: int = setting(4, count(1))
    # None: the whole test split (only reported, never used)
    test_images: int | None = setting(None, optional_count(1))
    resamples: int = setting(2000, count(1))  # bootstrap resamples of the intervals
    checkpoint: str | None = setting(None, None, common.CHECKPOINT_FLAG)
    reference: str | None = setting(  # low-budget: a correlation run whose archs to reuse
        None,
        None,
        Flag(
            "--reference",
            _MINE,
            "a correlation experiment's folder: score its trained architectures with this "
            "run's SMASH network and reuse their true errors (no normal training)",
            "DIR",
        ),
    )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


CORRELATION: dict[str, CorrelationConfig] = {
    # about 45 minutes on 2 CPU cores (docs/experiments.md): 150 scored, 30 trained
    "demo": CorrelationConfig(
        search=replace(
            common.preset("demo", archs=150, val_images=1000),
            final=FinalTraining(epochs=3, batch_size=64, lr=0.05, train_images=5000),
        ),
        every=5,
        jobs=2,
        test_images=2000,
    ),
    "smoke": CorrelationConfig(
        search=replace(
            common.preset("smoke", archs=6),
            final=replace(PRESETS["smoke"].final, train_images=64),
        ),
        every=2,
        knob_bn_batches=1,
        knob_z_samples=2,
        test_images=64,
        resamples=200,
    ),
    # the paper: 250 scored on 5,000 validation images, every 5th trained for 30 epochs
    "paper": CorrelationConfig(
        search=replace(common.preset("paper", archs=250), final=FinalTraining(epochs=30)),
        every=5,
    ),
}

# The low-budget HyperNets: one dense block of few, narrow layers. The search space (so the
# generated and the freely learned weights) is the one of the correlation preset.
SMALL_HYPERNETS = {
    "demo": HyperNetConfig(stem_channels=2, blocks=(2,), growth=2),
    "smoke": HyperNetConfig(stem_channels=2, blocks=(1,), growth=2),
    "paper": HyperNetConfig(stem_channels=7, blocks=(2,), growth=4),
}

LOW_BUDGET: dict[str, CorrelationConfig] = {
    name: replace(cfg, search=replace(cfg.search, hypernet=SMALL_HYPERNETS[name]))
    for name, cfg in CORRELATION.items()
}


def _variants(cfg: CorrelationConfig) -> dict[str, tuple[int, int]]:
    """The knob settings compared by ``--knobs``: (bn_batches, z_samples) per variant."""
    sc = cfg.search.score
    bn = sc.bn_batches or cfg.knob_bn_batches
    z = sc.z_samples if sc.z_samples > 1 else cfg.knob_z_samples
    return {"plain": (0, 1), "bn": (bn, 1), "z": (0, z), "bn+z": (bn, z)}


def _reference_results(cfg: CorrelationConfig, ref: Path) -> dict[int, dict]:
    """The trained architectures of the correlation run in ``ref``, after checking that it
    sampled and trained the same architectures as this experiment would."""
    path = ref / "config.json"
    if not path.is_file():
        raise fail("E0706", "not an experiment folder (no config.json)", ref)
    old = json.loads(path.read_text(encoding="utf-8"))
    mine = runs.as_json(cfg.to_json())
    keys = ("dataset", "seed", "val_size", "space", "final")
    diff = runs.config_differences(
        {k: old.get("search", {}).get(k) for k in keys} | {"test_images": old.get("test_images")},
        {k: mine["search"][k] for k in keys} | {"test_images": mine["test_images"]},
    )
    if diff:
        raise fail(
            "E0706",
            f"this correlation run sampled or trained other architectures ({'; '.join(diff[:3])})",
            path,
        )
    results = {}
    for f in sorted((ref / "trained").glob("arch*/result.json")):
        r = json.loads(f.read_text(encoding="utf-8"))
        results[r["index"]] = r
    if len(results) < 3:
        raise fail("E0706", f"only {len(results)} trained architectures (3 needed)", ref)
    return results


def run(cfg: CorrelationConfig, out: Path, name: str = "correlation") -> dict:
    """The correlation experiment; returns its summary (also written to summary.json)."""
    check_config(cfg)  # before --every is divided by below
    trained = -(-cfg.search.score.archs // cfg.every)
    if cfg.reference is None and trained < 3:
        raise fail(
            "E0704",
            f"--archs {cfg.search.score.archs} with --every {cfg.every} trains {trained} "
            "architectures: a rank correlation needs at least 3 (raise --archs or lower --every)",
        )
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    cfg, ctx, model = common.setup(cfg, out)
    reference = _reference_results(cfg, Path(cfg.reference)) if cfg.reference else None
    common.start(out, cfg.to_json())
    ctx = replace(ctx, out=out)
    try:
        t = time.perf_counter()
        if model is None:
            model = common.smash_model(ctx, out)
        seconds["smash"] = time.perf_counter() - t

        t = time.perf_counter()
        scorer, log = Scorer(ctx, model), ScoreLog(out / SCORES)
        indices = range(cfg.search.score.archs) if reference is None else sorted(reference)
        mine = score_indices(scorer, log, indices, lambda i: sampled(ctx, i))
        if reference is None:
            scored = [mine[i] for i in indices]
            ranks = {
                s.index: r
                for r, s in enumerate(sorted(scored, key=lambda s: (s.error, s.index)), 1)
            }
            picked = [scored[i] for i in every_mth([s.error for s in scored], cfg.every)]
        else:
            picked = sorted(mine.values(), key=lambda s: (s.error, s.index))
            ranks = {s.index: r for r, s in enumerate(picked, 1)}
        seconds["scoring"] = time.perf_counter() - t
        arch_dir = out / "archs"
        arch_dir.mkdir(exist_ok=True)
        for s in picked:
            (arch_dir / f"arch{s.index:03d}.smash").write_text(to_text(s.arch), encoding="utf-8")

        t = time.perf_counter()
        if reference is None:
            results, trained_now = train_all(ctx, picked, out, cfg.jobs, cfg.test_images)
        else:
            results, trained_now = reference, 0
        seconds["training"] = time.perf_counter() - t

        t = time.perf_counter()
        knob_errors = _knob_errors(cfg, ctx, model, picked, out) if cfg.knobs else {}
        seconds["knobs"] = time.perf_counter() - t
    except KeyboardInterrupt:
        raise runs.Interrupted from None

    counts = common.param_counts(model, [model.compile(s.arch) for s in picked[:20]])
    summary = _report(cfg, out, picked, ranks, results, knob_errors)
    seconds["total"] = time.perf_counter() - started
    summary.update(counts, experiment=name, trained_now=trained_now, seconds=seconds)
    if cfg.reference is not None:
        ref_summary = Path(cfg.reference) / "summary.json"
        if ref_summary.is_file():
            ref = json.loads(ref_summary.read_text(encoding="utf-8"))
            summary["reference"] = {
                "folder": str(cfg.reference),
                "correlation": ref.get("correlation"),
                "hypernet_params": ref.get("hypernet_params"),
            }
    common.write_json(out / "summary.json", summary)
    return summary


def _knob_errors(cfg, ctx, model, picked: list[Scored], out: Path) -> dict[str, dict]:
    """Each knob variant's scores of the picked architectures (``--knobs``)."""
    scfg = ctx.cfg
    current = (scfg.score.bn_batches, scfg.score.z_samples)
    errors: dict[str, dict[int, float]] = {}
    archs = {s.index: s.arch for s in picked}
    for variant, (bn, z) in _variants(cfg).items():
        if (bn, z) == current:
            errors[variant] = {s.index: s.error for s in picked}
            continue
        vctx = replace(
            ctx, cfg=replace(scfg, score=replace(scfg.score, bn_batches=bn, z_samples=z))
        )
        log = ScoreLog(out / f"scores_{variant.replace('+', '_')}.jsonl")
        got = score_indices(
            Scorer(vctx, model), log, list(archs), archs.__getitem__, f"scoring ({variant})"
        )
        errors[variant] = {i: s.error for i, s in got.items()}
    return errors


def _report(
    cfg: CorrelationConfig,
    out: Path,
    picked: list[Scored],
    ranks: dict[int, int],
    results: dict[int, dict],
    knob_errors: dict[str, dict[int, float]],
) -> dict:
    rows = [s for s in picked if s.index in results]
    smash = [s.error for s in rows]
    true = [results[s.index]["true_error"] for s in rows]
    seed, n = cfg.search.seed, cfg.resamples
    rng = np.random.default_rng(common.derive(seed, Stream.CORRELATION_RANDOM))
    predictors = {
        "smash": smash,
        "params": [s.params for s in rows],
        "macs": [s.macs for s in rows],
        "random": list(rng.permutation(len(rows)).astype(float)),
    }
    corr = {k: stats(v, true, seed, n) for k, v in predictors.items()}
    knobs = {}
    for variant, errors in knob_errors.items():
        bn, z = _variants(cfg)[variant]
        knobs[variant] = {
            "bn_batches": bn,
            "z_samples": z,
            **stats([errors[s.index] for s in rows], true, seed, n),
        }
    header = ["index", "rank", "smash_error", "true_error", "params", "macs", "smash_file"]
    header += [f"smash_error_{v.replace('+', '_')}" for v in knobs]
    with (out / "correlation.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for s, t in zip(rows, true, strict=True):
            w.writerow(
                [s.index, ranks[s.index], f"{s.error:.4f}", f"{t:.4f}", s.params, s.macs,
                 f"archs/arch{s.index:03d}.smash"]
                + [f"{knob_errors[v][s.index]:.4f}" for v in knobs]
            )  # fmt: skip
    _scatter(smash, true, corr, out / "correlation.png")
    return {
        "archs_scored": cfg.search.score.archs if cfg.reference is None else len(picked),
        "every": cfg.every if cfg.reference is None else None,
        "trained": len(rows),
        "true_error": "validation error after normal training (the held-out split)",
        "correlation": corr,
        "knobs": knobs,
        "files": {
            "csv": str(out / "correlation.csv"),
            "plot": str(out / "correlation.png"),
            "config": str(out / "config.json"),
        },
    }


def _fmt(st: dict) -> str:
    return f"rho {st['spearman']['value']:+.2f}, tau {st['kendall']['value']:+.2f}"


def _scatter(smash, true, corr: dict, path: Path) -> None:
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(smash, true, s=22, color="#1f77b4", label=f"SMASH score: {_fmt(corr['smash'])}")
    ax.set_xlabel("SMASH validation error (generated weights)")
    ax.set_ylabel("true validation error (normal training)")
    rho = corr["smash"]["spearman"]
    ax.set_title(
        f"{len(smash)} architectures: Spearman rho {rho['value']:+.2f} "
        f"[{rho['low']:+.2f}, {rho['high']:+.2f}]",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    for key, label in (("params", "parameters"), ("macs", "MACs"), ("random", "random")):
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"{label}: {_fmt(corr[key])}")
    ax.legend(handles, labels, fontsize=8, loc="best")
    save(fig, path)


def line(st: dict) -> str:
    """rho and tau with their intervals, as the summaries print them."""
    rho, tau = st["spearman"], st["kendall"]
    return (
        f"rho {rho['value']:+.3f} [{rho['low']:+.3f}, {rho['high']:+.3f}], "
        f"tau {tau['value']:+.3f} [{tau['low']:+.3f}, {tau['high']:+.3f}]"
    )


def show(summary: dict) -> None:
    c = summary["correlation"]
    print(f"SMASH score vs true error ({summary['trained']} architectures): {line(c['smash'])}")
    for key, label in (("params", "parameters"), ("macs", "MACs"), ("random", "random")):
        print(f"  baseline {label + ':':<11} {line(c[key])}")
    for name, st in summary["knobs"].items():
        knobs = f"bn_batches={st['bn_batches']}, z_samples={st['z_samples']}"
        print(f"  knobs {name + ':':<6} {line(st)} ({knobs})")
    if "reference" in summary and summary["reference"]["correlation"]:
        ref = summary["reference"]
        print(f"  reference run {ref['folder']}: {line(ref['correlation']['smash'])}")
    files = summary["files"]
    print(f"wrote {files['csv']}, {files['plot']} and the summary beside them")


register(
    "correlation",
    "SMASH score vs true error of normally trained architectures (Figure 3)",
    CORRELATION,
    lambda cfg, out: run(cfg, out, "correlation"),
    show,
)
register(
    "low-budget",
    "the correlation experiment with a much smaller HyperNet",
    LOW_BUDGET,
    lambda cfg, out: run(cfg, out, "low-budget"),
    show,
)
