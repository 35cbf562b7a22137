"""The ranking benchmark: how well does a SMASH network rank architectures whose true error
is known?

``smashc experiment ranking --groundtruth FILE`` reads a ground-truth set
(``bench/groundtruth.py`` makes one; ``runtime/groundtruth.py`` reads it), scores its
architectures with a SMASH network (trained into the folder, or ``--checkpoint``) and with
every zero-cost proxy (``runtime/proxies.py``), and reports for each predictor Spearman's
rho and Kendall's tau with the true error (bootstrap 95% intervals), the top-10% recall
(the share of the truly best tenth that the predictor puts in its best tenth) and the true
error of the architecture it would pick. The noise ceiling is the same statistics for one
training's error predicting another's. Nothing is retrained: it costs one SMASH training
and the scoring.

Every predictor is oriented so that a larger value predicts a *worse* architecture: the
SMASH score (an error) as it is, each proxy negated (a proxy's higher means better). A
positive rho is a ranking in the right direction, for every row alike.

Held out. The records with ``index >= heldout_from`` (default 48) are the held-out part:
settings are chosen on the rest, and ``--heldout`` reports on the held-out part only, once,
at the end, into the same folder (the same SMASH network) as ``summary-heldout.json``,
``ranking-heldout.csv`` and ``ranking-heldout.png``.

Truth. ``--truth val`` (the default) takes the trainings' validation errors, ``--truth
test`` their test errors: 10,000 images on Fashion-MNIST against 2,000, so less sampling
noise in both the truth and the noise ceiling; neither is ever used to choose anything
(the files get a ``-test`` suffix).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from smashc.compiler import to_text
from smashc.runtime import groundtruth, proxies, runs
from smashc.runtime.config import SearchConfig, check_config
from smashc.runtime.experiments import common, register
from smashc.runtime.experiments.common import SCORES, fail, stats
from smashc.runtime.groundtruth import GroundTruth
from smashc.runtime.plots import pyplot, save
from smashc.runtime.progress import bar
from smashc.runtime.rules import Flag, count, number, one_of, setting
from smashc.runtime.scoring import ScoreLog, Scorer
from smashc.runtime.seeds import Stream
from smashc.runtime.stats import top_recall

_MINE = ("ranking",)
CEILING = "noise ceiling"


@dataclass(frozen=True)
class RankingConfig:
    """The ranking benchmark's settings: the SMASH run's (``search``: its HyperNet training
    and scoring) and the ground truth's."""

    search: SearchConfig = setting(own_names=True)
    groundtruth: str | None = setting(
        None,
        None,
        Flag("--groundtruth", _MINE, "the ground-truth set (JSON lines of bench/groundtruth.py)",
             "FILE"),
    )  # fmt: skip
    heldout_from: int = setting(
        48,
        count(0),
        Flag("--heldout-from", _MINE, "records from this index on are held out (default 48)", "N"),
    )
    heldout: bool = setting(
        False,
        None,
        Flag("--heldout", _MINE, "report on the held-out records only", store_true=True),
    )
    truth: str = setting(
        "val",
        one_of("val", "test"),
        Flag("--truth", _MINE, "the true error: the trainings' validation or test error",
             choices=("val", "test")),
    )  # fmt: skip
    proxy_images: int = setting(64, count(2))  # the batch the zero-cost proxies see
    top_fraction: float = setting(0.1, number(0, 1, low_open=True, high_open=False))
    resamples: int = setting(2000, count(1))  # bootstrap resamples of the intervals
    checkpoint: str | None = setting(None, None, common.CHECKPOINT_FLAG)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


RANKING: dict[str, RankingConfig] = {
    # the demo search's HyperNet training and scoring (1,000 validation images)
    "demo": RankingConfig(search=common.preset("demo", val_images=1000)),
    "smoke": RankingConfig(search=common.preset("smoke"), proxy_images=16, resamples=200),
    "paper": RankingConfig(search=common.preset("paper")),
}


def _part(cfg: RankingConfig, truth: GroundTruth) -> GroundTruth:
    """The tuning part of the set (index below ``heldout_from``) or, with ``--heldout``,
    the held-out part; at least three architectures."""
    if cfg.heldout:
        part = truth.part(t.index for t in truth.archs if t.index >= cfg.heldout_from)
        which = f"held-out part (index >= {cfg.heldout_from})"
    else:
        part = truth.part(t.index for t in truth.archs if t.index < cfg.heldout_from)
        which = f"tuning part (index < {cfg.heldout_from})"
    if len(part.archs) < 3:
        raise fail(
            "E0730",
            f"the {which} has {len(part.archs)} trained architectures: a rank correlation "
            "needs at least 3",
            truth.path,
        )
    return part


def _check_dataset(truth: GroundTruth, cfg: SearchConfig) -> None:
    if truth.recipe["dataset"] != cfg.dataset:
        raise fail(
            "E0730",
            f"this set was trained on {truth.recipe['dataset']}, the SMASH run uses "
            f"{cfg.dataset} (--dataset)",
            truth.path,
        )


def _check_space(truth: GroundTruth, cfg: SearchConfig) -> None:
    """The HyperNet can only generate weights for architectures of its own space; ``cfg``'s
    space is the one the dataset completed (input and classes)."""
    diff = runs.config_differences(truth.recipe["space"], runs.as_json(asdict(cfg.space)))
    if diff:
        raise fail(
            "E0730",
            f"this set was drawn from another search space ({'; '.join(diff[:3])}): use a "
            "preset with its space",
            truth.path,
        )


def _smash_errors(ctx, model, part: GroundTruth, out: Path) -> list[float]:
    """Each architecture's SMASH score; a score in ``scores.jsonl`` is kept when it is of
    the same architecture (the set may have grown since)."""
    scorer, log = Scorer(ctx, model), ScoreLog(out / SCORES)
    errors = []
    for t in bar(part.archs, desc="scoring", unit="arch"):
        rec = log.get(t.index)
        if rec is None or to_text(rec.arch) != to_text(t.arch):
            rec = scorer.score(t.index, "groundtruth", t.arch)
            log.add(rec)
        errors.append(rec.error)
    return errors


def _proxy_values(ctx, cfg: RankingConfig, part: GroundTruth) -> dict[str, list[float]]:
    images, labels = proxies.batch(ctx, cfg.proxy_images)
    values: dict[str, list[float]] = {name: [] for name in proxies.PROXIES}
    for t in bar(part.archs, desc="proxies", unit="arch"):
        for name, fn in proxies.PROXIES.items():
            values[name].append(fn(t.arch, images, labels, cfg.search.seed))
    return values


def _row(predicted, true, cfg: RankingConfig, errors) -> dict:
    """The statistics of one predictor (larger predicts worse) against ``true``."""
    pick = min(range(len(predicted)), key=lambda i: (predicted[i], i))
    return {
        **stats(predicted, true, cfg.search.seed, cfg.resamples),
        "top_recall": top_recall(predicted, true, cfg.top_fraction),
        "picked_error": errors[pick],
    }


def run(cfg: RankingConfig, out: Path) -> dict:
    """The ranking benchmark; returns its summary (also written to summary.json)."""
    check_config(cfg)
    if cfg.groundtruth is None:
        raise fail(
            "E0704",
            "--groundtruth FILE is needed: a set made by bench/groundtruth.py "
            "(the demo space's: bench/groundtruth/fashion-demo.jsonl)",
        )
    truth = groundtruth.read(Path(cfg.groundtruth))
    _check_dataset(truth, cfg.search)
    part = _part(cfg, truth)
    cfg, ctx, model = common.setup(cfg, out)
    _check_space(truth, ctx.cfg)
    common.start(out, cfg.to_json())
    ctx = replace(ctx, out=out)
    seconds, t = {}, time.perf_counter()
    try:
        if model is None:
            model = common.smash_model(ctx, out)
        seconds["smash"], t = time.perf_counter() - t, time.perf_counter()
        smash = _smash_errors(ctx, model, part, out)
        seconds["scoring"], t = time.perf_counter() - t, time.perf_counter()
        values = _proxy_values(ctx, cfg, part)
        seconds["proxies"] = time.perf_counter() - t
    except KeyboardInterrupt:
        raise runs.Interrupted from None

    errors_of = (lambda t: t.val_errors) if cfg.truth == "val" else (lambda t: t.test_errors)
    true = [sum(errors_of(t)) / len(errors_of(t)) for t in part.archs]
    rng = np.random.default_rng(common.derive(cfg.search.seed, Stream.CORRELATION_RANDOM))
    predictors = {"smash": smash} | {name: [-v for v in vs] for name, vs in values.items()}
    predictors["random"] = list(rng.permutation(len(true)).astype(float))
    rows = {name: _row(p, true, cfg, true) for name, p in predictors.items()}
    if part.trainings() >= 2:
        first = [errors_of(t)[0] for t in part.archs]
        second = [errors_of(t)[1] for t in part.archs]
        rows = {CEILING: _row(first, second, cfg, second)} | rows
    # the parts' and truths' reports side by side, from the same SMASH network and scores
    tag = ("-heldout" if cfg.heldout else "") + ("-test" if cfg.truth == "test" else "")
    files = {"csv": out / f"ranking{tag}.csv", "plot": out / f"ranking{tag}.png"}
    _write_csv(files["csv"], part, smash, values)
    _plot(rows, len(true), files["plot"])
    summary = {
        "experiment": "ranking",
        "groundtruth": str(truth.path),
        "part": "held-out" if cfg.heldout else "tuning",
        "heldout_from": cfg.heldout_from,
        "archs": len(part.archs),
        "diverged_left_out": len(truth.diverged),
        "trainings": part.trainings(),
        "truth": cfg.truth,
        "true_error": f"mean {'validation' if cfg.truth == 'val' else 'test'} error of the "
        "architecture's normal trainings",
        "orientation": "larger predicts worse: the SMASH error as it is, proxies negated",
        "best_true_error": min(true),
        "mean_true_error": float(np.mean(true)),
        "top_fraction": cfg.top_fraction,
        "predictors": rows,
        "hypernet_params": sum(p.numel() for p in model.hypernet.parameters()),
        # this invocation's (a SMASH training or score read back costs almost nothing)
        "seconds": seconds,
        "files": {k: str(v) for k, v in files.items()} | {"config": str(out / "config.json")},
    }
    common.write_json(out / f"summary{tag}.json", summary)
    return summary


def _write_csv(path: Path, part: GroundTruth, smash: list[float], values: dict) -> None:
    k = part.trainings()
    header = ["index", "name", "val_error", *[f"val_error_{i}" for i in range(k)]]
    header += ["test_error", *[f"test_error_{i}" for i in range(k)], "smash_error", *values]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, t in enumerate(part.archs):
            errors = (t.error, *t.val_errors[:k], t.test_error, *t.test_errors[:k], smash[i])
            errors = [f"{e:.4f}" for e in errors]
            w.writerow([t.index, t.name, *errors, *[f"{v[i]:.6g}" for v in values.values()]])


def _plot(rows: dict, n: int, path: Path) -> None:
    """Each predictor's rho with its interval, best at the top; the noise ceiling shaded."""
    plt = pyplot()
    names = [k for k in rows if k != CEILING]
    names.sort(key=lambda k: rows[k]["spearman"]["value"])
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.6))
    if CEILING in rows:
        c = rows[CEILING]["spearman"]
        ax.axvspan(c["low"], c["high"], color="#dddddd", label=f"noise ceiling {c['value']:+.2f}")
        ax.axvline(c["value"], color="#999999", linewidth=1)
    for y, name in enumerate(names):
        s = rows[name]["spearman"]
        color = "#d62728" if name == "smash" else "#1f77b4"
        ax.errorbar(s["value"], y, xerr=[[s["value"] - s["low"]], [s["high"] - s["value"]]],
                    fmt="o", color=color, capsize=3)  # fmt: skip
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Spearman rho with the true error (95% bootstrap interval)")
    ax.set_title(f"ranking {n} trained architectures", fontsize=10)
    if CEILING in rows:
        ax.legend(fontsize=8, loc="lower left")
    save(fig, path)


def _cell(st: dict) -> str:
    return f"{st['value']:+.3f} [{st['low']:+.3f}, {st['high']:+.3f}]"


def show(summary: dict) -> None:
    what = "validation" if summary["truth"] == "val" else "test"
    print(
        f"ranking of {summary['archs']} architectures of {summary['groundtruth']} "
        f"({summary['part']} part; true error: mean {what} error of {summary['trainings']} "
        "trainings, "
        f"best {summary['best_true_error']:.4f}, mean {summary['mean_true_error']:.4f})"
    )
    top = f"top-{round(100 * summary['top_fraction'])}%"
    print(f"  {'predictor':<14} {'Spearman rho':<25} {'Kendall tau':<25} {top:>7}  picked error")
    for name, row in summary["predictors"].items():
        picked = row["picked_error"]
        print(
            f"  {name:<14} {_cell(row['spearman']):<25} {_cell(row['kendall']):<25} "
            f"{row['top_recall']:>7.2f}  {picked:.4f}"
        )
    print("  (larger predicts worse for every row: a proxy is negated; rho > 0 ranks right)")
    files = summary["files"]
    print(f"wrote {files['csv']}, {files['plot']} and the summary beside them")


register(
    "ranking",
    "rank a ground-truth set of trained architectures by SMASH score and zero-cost proxies",
    RANKING,
    run,
    show,
)
