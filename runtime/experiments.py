"""The paper's experiments (section 4.1): does the SMASH score predict the true error?

* ``correlation``: score K sampled architectures, train every m-th (in order of score)
  normally, and compare SMASH score and true (validation) error by Spearman's rho and
  Kendall's tau, next to two free baselines (parameters, MACs) and a random ranking;
  optionally the effect of the scoring knobs (BN recalibration, averaging over z) on rho;
* ``low-budget``: the same with a much smaller HyperNet;
* ``corrupt``: score architectures with corrupted encodings c (``runtime.corrupt``);
* ``arch-grad``: single-op changes proposed by dE/dc against random ones (``runtime.archgrad``).

Every experiment writes its resolved config and resumes where it stopped when run again
into the same folder: the SMASH checkpoint, every score and every trained architecture's
result are kept as they are finished.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import ConstantInputWarning
from tqdm import tqdm

from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error
from smashc.frontend import ast
from smashc.frontend.flatten import to_module
from smashc.runtime import runs, search
from smashc.runtime.archgrad import (
    Change,
    apply,
    encode_arch,
    encoding_gradient,
    predicted_change,
    single_changes,
)
from smashc.runtime.corrupt import MODES, corrupt, corruptible
from smashc.runtime.data import Dataset, Subset
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.sampler import Sampler, SearchSpace
from smashc.runtime.search import (
    PRESETS,
    FinalTraining,
    Scored,
    SearchConfig,
    SmashTraining,
    _count,
    _optional_count,
    _pyplot,
    _save_figure,
    _seed,
)
from smashc.runtime.stats import correlation as rank_correlation
from smashc.runtime.stats import every_mth

# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrelationConfig:
    """The correlation experiment (and, with a small HyperNet, the low-budget one).

    ``search.score.archs`` architectures are scored, every ``every``-th in order of score is
    trained with ``search.final``; ``search.score.bn_batches`` / ``z_samples`` are the
    scoring knobs of the main scores, ``knob_*`` the settings ``knobs`` compares.
    """

    search: SearchConfig
    every: int = 5
    jobs: int = 1  # final trainings run in this many processes
    knobs: bool = False
    knob_bn_batches: int = 4
    knob_z_samples: int = 4
    test_images: int | None = None  # None: the whole test split (only reported, never used)
    resamples: int = 2000  # bootstrap resamples of the confidence intervals
    checkpoint: str | None = None  # a trained SMASH network instead of training one
    reference: str | None = None  # low-budget: a correlation run whose trained archs to reuse

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CorruptConfig:
    search: SearchConfig
    archs: int = 20
    modes: tuple[str, ...] = MODES
    checkpoint: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ArchGradConfig:
    search: SearchConfig
    archs: int = 20  # base architectures
    proposals: int = 5  # gradient-proposed and random changes scored per architecture
    grad_batches: int = 4  # validation batches dE/dc is computed on
    resamples: int = 2000
    checkpoint: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _demo(**score) -> SearchConfig:
    base = PRESETS["demo"]
    return replace(base, score=replace(base.score, refine=0, **score))


def _smoke(**score) -> SearchConfig:
    base = PRESETS["smoke"]
    # 24 SMASH steps instead of 8: enough that architectures get different scores
    train = replace(base.train, epochs=6)
    return replace(base, train=train, score=replace(base.score, refine=0, **score))


def _paper(**score) -> SearchConfig:
    base = PRESETS["paper"]
    return replace(base, score=replace(base.score, refine=0, **score))


CORRELATION: dict[str, CorrelationConfig] = {
    # about 45 minutes on 2 CPU cores (docs/experiments.md): 150 scored, 30 trained
    "demo": CorrelationConfig(
        search=replace(
            _demo(archs=150, val_images=1000),
            final=FinalTraining(epochs=3, batch_size=64, lr=0.05, train_images=5000),
        ),
        every=5,
        jobs=2,
        test_images=2000,
    ),
    "smoke": CorrelationConfig(
        search=replace(
            _smoke(archs=6),
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
        search=replace(_paper(archs=250), final=FinalTraining(epochs=30)), every=5
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

CORRUPT: dict[str, CorruptConfig] = {
    "demo": CorruptConfig(search=_demo(val_images=500), archs=30),
    "smoke": CorruptConfig(search=_smoke(), archs=2),
    "paper": CorruptConfig(search=_paper(), archs=50),
}

ARCH_GRAD: dict[str, ArchGradConfig] = {
    "demo": ArchGradConfig(search=_demo(val_images=1000), archs=30, proposals=5),
    "smoke": ArchGradConfig(search=_smoke(), archs=2, proposals=2, grad_batches=1, resamples=200),
    "paper": ArchGradConfig(search=_paper(), archs=50, proposals=5),
}

SCORES = "scores.jsonl"


def _fail(code: str, message: str, where: str | Path | None = None) -> SmashError:
    span = COMMAND_LINE if where is None else Span(str(where), 1, 1, 1, 1)
    return SmashError([error(code, message, span)])


# an experiment's own settings: the flag that sets one (if any), and what it must be
_RULES = {
    "every": ("--every", _count(1)),
    "jobs": ("--jobs", _count(1)),
    "archs": ("--archs", _count(1)),
    "proposals": ("--proposals", _count(1)),
    "grad_batches": ("--grad-batches", _count(1)),
    "knob_bn_batches": (None, _count(1)),
    "knob_z_samples": (None, _count(1)),
    "test_images": (None, _optional_count(1)),
    "resamples": (None, _count(1)),
    "modes": (
        "--mode",
        (
            lambda v: 0 < len(v) == len(set(v)) and set(v) <= set(MODES),
            "a list of distinct modes among " + ", ".join(MODES),
        ),
    ),
}


def check(cfg) -> None:
    """A SmashError (E0704, one diagnostic per setting) for each of the experiment ``cfg``'s
    own settings out of range; its ``search`` settings are ``search.check_config``'s."""
    problems = []
    for f in dataclasses.fields(cfg):
        if f.name not in _RULES:
            continue
        flag, (ok, wanted) = _RULES[f.name]
        value = getattr(cfg, f.name)
        if not ok(value):
            said = f"{flag} must be {wanted}, got {value!r} ({f.name})" if flag else None
            problems.append(said or f"{f.name} must be {wanted}, got {value!r}")
    if problems:
        raise SmashError([error("E0704", p, COMMAND_LINE) for p in problems])


# --- shared setup: folder, config, the trained SMASH network --------------------------------


IGNORED = ("jobs", "knobs")  # settings that do not change any result


def start(out: Path, config: dict) -> None:
    """Creates ``out`` and writes ``config.json``; refuses a folder holding an experiment
    with other settings (its results would be reused as if they were this one's)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    new = runs.as_json(config)
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        old = old if isinstance(old, dict) else {}
        diff = runs.config_differences(
            {k: v for k, v in old.items() if k not in IGNORED},
            {k: v for k, v in new.items() if k not in IGNORED},
        )
        if diff:
            shown = "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")
            raise _fail(
                "E0706",
                f"{out} holds an experiment with other settings ({shown}): "
                "use another --out, or delete the folder to start over",
                path,
            )
    path.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")


def _from_json(cls, d: dict):
    """A flat config dataclass from its JSON form (lists back to tuples)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def checkpoint_config(path: Path, cfg: SearchConfig) -> SearchConfig:
    """``cfg`` with the dataset, split, search space, HyperNet and SMASH training of the run
    that wrote the checkpoint ``path`` (from the ``config.json`` beside it, when there is one),
    so that the validation images are the ones that run held out."""
    side = path.parent / "config.json"
    if not side.is_file():
        return cfg
    try:
        d = json.loads(side.read_text(encoding="utf-8"))
        return replace(
            cfg,
            dataset=d["dataset"],
            data_dir=cfg.data_dir if cfg.data_dir is not None else d.get("data_dir"),
            seed=d["seed"],
            val_size=d["val_size"],
            space=_from_json(SearchSpace, d["space"]),
            hypernet=_from_json(HyperNetConfig, d["hypernet"]),
            train=_from_json(SmashTraining, d["train"]),
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise _fail("E0705", f"not the config.json of a SMASH run ({exc})", side) from None


def load_model(path: Path, cfg: SearchConfig, device, epochs: int | None = None) -> OneShot:
    """The SMASH network of a checkpoint written by ``train_smash``; with ``epochs``, its
    training must have finished that many epochs."""
    if not path.is_file():
        raise _fail("E0705", "checkpoint not found", path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # any unreadable file is the user's, not a bug
        raise _fail("E0705", f"cannot read this checkpoint: {exc}", path) from None
    if not isinstance(state, dict) or "model" not in state:
        raise _fail("E0705", "not a SMASH checkpoint (written by smashc search)", path)
    if epochs is not None and int(state.get("epoch", 0)) < epochs:
        raise _fail(
            "E0705",
            f"HyperNet training stopped at epoch {state.get('epoch')} of {epochs}: "
            "finish it first (smashc search --resume with the run's flags)",
            path,
        )
    model = OneShot(cfg.space, cfg.hypernet).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise _fail(
            "E0705",
            "this checkpoint's network does not fit the experiment's search space and "
            f"HyperNet ({first[0].strip()}); keep the run's config.json beside it",
            path,
        ) from None
    return model


def checkpoint_model(cfg: SearchConfig, checkpoint: str, device) -> OneShot:
    """The SMASH network of ``checkpoint``; finished training is required when the run's
    config.json is beside it (without one, its length is unknown)."""
    side = Path(checkpoint).parent / "config.json"
    return load_model(Path(checkpoint), cfg, device, cfg.train.epochs if side.is_file() else None)


def smash_model(cfg: SearchConfig, ds: Dataset, train: Subset, out: Path, device) -> OneShot:
    """A SMASH network trained into ``out/smash``: resumed from its checkpoint, or loaded
    when that training has finished."""
    folder = out / "smash"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(cfg.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        state = runs.load_checkpoint(ckpt, "cpu")
        if state["epoch"] >= cfg.train.epochs:
            print(f"HyperNet training had finished: loading {ckpt}")
            return load_model(ckpt, cfg, device)
    return search.train_smash(cfg, ds, train, folder, True, device)


def _setup(cfg):
    """Device, data and the resolved config of an experiment (a checkpoint's run settings
    adopted, the space adapted to the dataset), and the checkpoint's SMASH network when one
    is given (loaded before anything is written, so a bad one leaves no folder behind)."""
    device = search.resolve_device(cfg.search.device)
    scfg = cfg.search
    if cfg.checkpoint is not None:
        if not Path(cfg.checkpoint).is_file():
            raise _fail("E0705", "checkpoint not found", cfg.checkpoint)
        scfg = checkpoint_config(Path(cfg.checkpoint), scfg)
    scfg, ds, train, val = search.prepare(scfg)
    cfg = replace(cfg, search=scfg)
    model = checkpoint_model(scfg, cfg.checkpoint, device) if cfg.checkpoint else None
    return cfg, device, ds, train, val, model


def _scoring_run(cfg, out: Path):
    """What the corrupt and arch-grad experiments start from: the resolved config, the
    device, the SMASH network (loaded from the checkpoint, or trained into ``out``) and the
    scoring and BN-calibration batches; the run's config is written to ``out``."""
    cfg, device, ds, train, val, model = _setup(cfg)
    start(out, cfg.to_json())
    scfg = cfg.search
    if model is None:
        try:
            model = smash_model(scfg, ds, train, out, device)
        except KeyboardInterrupt:
            raise runs.Interrupted from None
    batches = search.score_batches(scfg, val, ds, device)
    calibration = search.calibration_batches(scfg, train, ds, device)
    return cfg, device, model, batches, calibration


def sampled(cfg: SearchConfig, index: int) -> ast.Module:
    """The ``index``-th scored architecture (as ``search.score_all`` samples it)."""
    return Sampler(cfg.space, _seed(cfg.seed, 5, index)).sample(1.0, name=f"arch{index}")


def noise(cfg: SearchConfig, index: int, compiled: Compiled, device) -> list[torch.Tensor]:
    """The noise samples z that ``search.score_one`` uses for the ``index``-th architecture."""
    gen = torch.Generator().manual_seed(_seed(cfg.seed, 4, index))
    shape = (1, 1, *compiled.enc.tensor.shape[2:])
    return [torch.randn(shape, generator=gen).to(device) for _ in range(cfg.score.z_samples)]


def score_indices(
    model: OneShot,
    cfg: SearchConfig,
    indices: list[int],
    val: Subset,
    ds: Dataset,
    train: Subset,
    path: Path,
    device,
    desc: str = "scoring",
) -> dict[int, Scored]:
    """Like ``search.score_all``, but only the architectures ``indices``, into ``path``."""
    batches = search.score_batches(cfg, val, ds, device)
    calibration = search.calibration_batches(cfg, train, ds, device)
    done = search.load_scores(path)
    out = {}
    for i in tqdm(indices, desc=desc, unit="arch", dynamic_ncols=True):
        if i not in done:
            rec = search.score_one(
                model, sampled(cfg, i), batches, cfg, i, "sample", device, calibration
            )
            runs.append_jsonl(path, dataclasses.asdict(rec))
            done[i] = rec
        out[i] = done[i]
    return out


def _write_json(path: Path, obj) -> None:
    """Atomically: a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _stats(x, y, seed: int, resamples: int) -> dict:
    """Spearman's rho and Kendall's tau with bootstrap intervals (a constant sample, e.g. a
    bootstrap resample of tied scores, counts as no correlation, without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return {
            kind: dataclasses.asdict(rank_correlation(x, y, kind, resamples, seed=seed))
            for kind in ("spearman", "kendall")
        }


def _param_counts(model: OneShot, compiled: list[Compiled]) -> dict:
    gen = [sum(s.bottleneck * s.in_channels for s in c.enc.slots) for c in compiled]
    return {
        "hypernet_params": sum(p.numel() for p in model.hypernet.parameters()),
        "shared_params": sum(p.numel() for p in model.shared.parameters()),
        "generated_params_mean": float(np.mean(gen)) if gen else 0.0,
    }


# --- correlation -----------------------------------------------------------------------------


def _true_error(d: Path) -> tuple[float, float]:
    """Validation error and loss after the last epoch of a ``train_final`` run in ``d``."""
    last = d.joinpath("final.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    rec = json.loads(last)
    return 1.0 - rec["val_acc"], rec["val_loss"]


def train_one(
    cfg: CorrelationConfig, s: Scored, d: Path, ds: Dataset, train: Subset, val: Subset, device
) -> dict:
    """Trains one architecture normally into ``d``, going on from the checkpoint an
    interrupted training left there; writes and returns its result."""
    started = time.perf_counter()
    if cfg.test_images is not None:
        n = cfg.test_images
        ds = replace(ds, test_x=ds.test_x[:n], test_y=ds.test_y[:n])
    final = search.train_final(s.text, cfg.search, ds, train, val, d, device, resume=True)
    err, loss = _true_error(d)
    result = {
        "index": s.index,
        "smash_error": s.error,
        "true_error": err,
        "val_loss": loss,
        "test_error": final["test_error"],
        "params": s.params,
        "macs": s.macs,
        "epochs": final["epochs"],
        "seconds": time.perf_counter() - started,
    }
    _write_json(d / "result.json", result)
    return result


_WORKER: dict = {}


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    search.tqdm = lambda *a, **k: tqdm(*a, **{**k, "disable": True})  # one bar, the parent's


def _train_worker(cfg: CorrelationConfig, s: Scored, d: Path) -> dict:
    if "data" not in _WORKER:
        _WORKER["data"] = search.prepare(cfg.search)
    scfg, ds, train, val = _WORKER["data"]
    device = search.resolve_device(scfg.device)
    return train_one(replace(cfg, search=scfg), s, d, ds, train, val, device)


def train_all(
    cfg: CorrelationConfig,
    picked: list[Scored],
    out: Path,
    ds: Dataset,
    train: Subset,
    val: Subset,
    device,
) -> tuple[dict[int, dict], int]:
    """Trains the picked architectures that have no ``result.json`` yet (``cfg.jobs`` at a
    time); returns every picked one's result and how many were trained now."""
    results: dict[int, dict] = {}
    todo = []
    for s in picked:
        path = out / "trained" / f"arch{s.index:03d}" / "result.json"
        if path.is_file():
            results[s.index] = json.loads(path.read_text(encoding="utf-8"))
        else:
            todo.append(s)
    bar = tqdm(
        total=len(picked), initial=len(picked) - len(todo), desc="training", unit="arch",
        dynamic_ncols=True,
    )  # fmt: skip
    folder = lambda s: out / "trained" / f"arch{s.index:03d}"  # noqa: E731
    try:
        if cfg.jobs <= 1 or len(todo) <= 1:
            for s in todo:
                results[s.index] = train_one(cfg, s, folder(s), ds, train, val, device)
                bar.update(1)
            return results, len(todo)
        threads = max(1, (os.cpu_count() or 1) // cfg.jobs)
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(cfg.jobs, ctx, _worker_init, (threads,))
        try:
            futures = [pool.submit(_train_worker, cfg, s, folder(s)) for s in todo]
            for f in as_completed(futures):
                r = f.result()
                results[r["index"]] = r
                bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results, len(todo)
    finally:
        bar.close()


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
        raise _fail("E0706", "not an experiment folder (no config.json)", ref)
    old = json.loads(path.read_text(encoding="utf-8"))
    mine = runs.as_json(cfg.to_json())
    keys = ("dataset", "seed", "val_size", "space", "final")
    diff = runs.config_differences(
        {k: old.get("search", {}).get(k) for k in keys} | {"test_images": old.get("test_images")},
        {k: mine["search"][k] for k in keys} | {"test_images": mine["test_images"]},
    )
    if diff:
        raise _fail(
            "E0706",
            f"this correlation run sampled or trained other architectures ({'; '.join(diff[:3])})",
            path,
        )
    results = {}
    for f in sorted((ref / "trained").glob("arch*/result.json")):
        r = json.loads(f.read_text(encoding="utf-8"))
        results[r["index"]] = r
    if len(results) < 3:
        raise _fail("E0706", f"only {len(results)} trained architectures (3 needed)", ref)
    return results


def run_correlation(cfg: CorrelationConfig, out: Path, name: str = "correlation") -> dict:
    """The correlation experiment; returns its summary (also written to summary.json)."""
    check(cfg)
    trained = -(-cfg.search.score.archs // cfg.every)
    if cfg.reference is None and trained < 3:
        raise _fail(
            "E0704",
            f"--archs {cfg.search.score.archs} with --every {cfg.every} trains {trained} "
            "architectures: a rank correlation needs at least 3 (raise --archs or lower --every)",
        )
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    cfg, device, ds, train, val, model = _setup(cfg)
    scfg = cfg.search
    reference = _reference_results(cfg, Path(cfg.reference)) if cfg.reference else None
    start(out, cfg.to_json())
    try:
        t = time.perf_counter()
        if model is None:
            model = smash_model(scfg, ds, train, out, device)
        seconds["smash"] = time.perf_counter() - t

        t = time.perf_counter()
        if reference is None:
            scored = search.score_all(model, scfg, val, ds, out, device, train)
            ranks = {
                s.index: r
                for r, s in enumerate(sorted(scored, key=lambda s: (s.error, s.index)), 1)
            }
            picked = [scored[i] for i in every_mth([s.error for s in scored], cfg.every)]
        else:
            mine = score_indices(
                model, scfg, sorted(reference), val, ds, train, out / SCORES, device
            )
            picked = sorted(mine.values(), key=lambda s: (s.error, s.index))
            ranks = {s.index: r for r, s in enumerate(picked, 1)}
        seconds["scoring"] = time.perf_counter() - t
        arch_dir = out / "archs"
        arch_dir.mkdir(exist_ok=True)
        for s in picked:
            (arch_dir / f"arch{s.index:03d}.smash").write_text(s.text, encoding="utf-8")

        t = time.perf_counter()
        if reference is None:
            results, trained_now = train_all(cfg, picked, out, ds, train, val, device)
        else:
            results, trained_now = reference, 0
        seconds["training"] = time.perf_counter() - t

        t = time.perf_counter()
        knob_errors: dict[str, dict[int, float]] = {}
        if cfg.knobs:
            current = (scfg.score.bn_batches, scfg.score.z_samples)
            for variant, (bn, z) in _variants(cfg).items():
                if (bn, z) == current:
                    knob_errors[variant] = {s.index: s.error for s in picked}
                    continue
                vcfg = replace(scfg, score=replace(scfg.score, bn_batches=bn, z_samples=z))
                path = out / f"scores_{variant.replace('+', '_')}.jsonl"
                got = score_indices(
                    model, vcfg, [s.index for s in picked], val, ds, train, path, device,
                    f"scoring ({variant})",
                )  # fmt: skip
                knob_errors[variant] = {i: s.error for i, s in got.items()}
        seconds["knobs"] = time.perf_counter() - t
    except KeyboardInterrupt:
        raise runs.Interrupted from None

    counts = _param_counts(model, [model.compile(sampled(scfg, s.index)) for s in picked[:20]])
    summary = _correlation_report(cfg, out, picked, ranks, results, knob_errors)
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
    _write_json(out / "summary.json", summary)
    return summary


def _correlation_report(
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
    rng = np.random.default_rng(_seed(seed, 90))
    predictors = {
        "smash": smash,
        "params": [s.params for s in rows],
        "macs": [s.macs for s in rows],
        "random": list(rng.permutation(len(rows)).astype(float)),
    }
    stats = {k: _stats(v, true, seed, n) for k, v in predictors.items()}
    knobs = {}
    for variant, errors in knob_errors.items():
        bn, z = _variants(cfg)[variant]
        knobs[variant] = {
            "bn_batches": bn,
            "z_samples": z,
            **_stats([errors[s.index] for s in rows], true, seed, n),
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
    _scatter(smash, true, stats, out / "correlation.png", cfg)
    return {
        "archs_scored": cfg.search.score.archs if cfg.reference is None else len(picked),
        "every": cfg.every if cfg.reference is None else None,
        "trained": len(rows),
        "true_error": "validation error after normal training (the held-out split)",
        "correlation": stats,
        "knobs": knobs,
        "files": {
            "csv": str(out / "correlation.csv"),
            "plot": str(out / "correlation.png"),
            "config": str(out / "config.json"),
        },
    }


def _fmt(st: dict) -> str:
    return f"rho {st['spearman']['value']:+.2f}, tau {st['kendall']['value']:+.2f}"


def _scatter(smash, true, stats: dict, path: Path, cfg: CorrelationConfig) -> None:
    from matplotlib.lines import Line2D

    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(smash, true, s=22, color="#1f77b4", label=f"SMASH score: {_fmt(stats['smash'])}")
    ax.set_xlabel("SMASH validation error (generated weights)")
    ax.set_ylabel("true validation error (normal training)")
    rho = stats["smash"]["spearman"]
    ax.set_title(
        f"{len(smash)} architectures: Spearman rho {rho['value']:+.2f} "
        f"[{rho['low']:+.2f}, {rho['high']:+.2f}]",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    for key, label in (("params", "parameters"), ("macs", "MACs"), ("random", "random")):
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"{label}: {_fmt(stats[key])}")
    ax.legend(handles, labels, fontsize=8, loc="best")
    _save_figure(fig, path)


# --- corrupted encodings ---------------------------------------------------------------------


def run_corrupt(cfg: CorruptConfig, out: Path) -> dict:
    """Scores each architecture with its true c and with c corrupted one field at a time."""
    check(cfg)
    cfg, device, model, batches, calibration = _scoring_run(cfg, out)
    scfg = cfg.search
    enc = scfg.space.encoding()
    fields = corruptible(enc)
    path = out / "corrupt.jsonl"
    done = {(r["index"], r["field"], r["mode"]): r for r in runs.read_jsonl(path)}
    try:
        for i in tqdm(range(cfg.archs), desc="corrupting", unit="arch", dynamic_ncols=True):
            keys = [(i, "true", "-")] + [(i, f, m) for f in fields for m in cfg.modes]
            if all(k in done for k in keys):
                continue
            compiled = model.compile(sampled(scfg, i))
            zs = noise(scfg, i, compiled, device)
            c = compiled.enc.tensor
            for key in keys:
                if key in done:
                    continue
                _, field, mode = key
                if field == "true":
                    bad, changed = c, 0
                else:
                    rng = np.random.default_rng(
                        _seed(scfg.seed, 91, i, fields.index(field), MODES.index(mode))
                    )
                    bad = corrupt(c, enc, field, rng, mode)
                    changed = int((bad != c).sum())
                err = None
                if field == "true" or changed:
                    fake = replace(compiled, enc=replace(compiled.enc, tensor=bad))
                    err = search.smash_error(model, fake, batches, zs, calibration)
                rec = {"index": i, "field": field, "mode": mode, "error": err, "changed": changed}
                runs.append_jsonl(path, rec)
                done[key] = rec
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    return _corrupt_report(cfg, out, done, fields)


def _corrupt_report(cfg: CorruptConfig, out: Path, done: dict, fields) -> dict:
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
                    [i, field, mode, f"{true:.4f}", f"{rec['error']:.4f}", f"{gap:+.4f}",
                     rec["changed"]]
                )  # fmt: skip
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
    _write_json(out / "summary.json", summary)
    return summary


# --- dE/dc-proposed changes ------------------------------------------------------------------


def _change_key(ch: Change) -> str:
    return f"{ch.block}/{ch.layer}/{ch.conv}/{ch.attribute}/{ch.new}"


def run_arch_grad(cfg: ArchGradConfig, out: Path) -> dict:
    """Per architecture: dE/dc, the ``proposals`` single-op changes it predicts to lower E the
    most, and as many random ones; all scored by their actual SMASH error."""
    check(cfg)
    cfg, device, model, batches, calibration = _scoring_run(cfg, out)
    scfg = cfg.search
    enc = scfg.space.encoding()
    path = out / "arch_grad.jsonl"
    done = {(r["index"], r["kind"], r["rank"]): r for r in runs.read_jsonl(path)}
    try:
        for i in tqdm(range(cfg.archs), desc="arch-grad", unit="arch", dynamic_ncols=True):
            n = cfg.proposals
            keys = [(i, "base", 0)] + [(i, k, r) for k in ("gradient", "random") for r in range(n)]
            if all(k in done for k in keys):
                continue
            net = Sampler(scfg.space, _seed(scfg.seed, 5, i)).sample_arch(1.0, name=f"arch{i}")
            compiled = model.compile(to_module(net))
            base = search.score_one(
                model, to_module(net), batches, scfg, i, "sample", device, calibration
            )
            zs = noise(scfg, i, compiled, device)
            grads = [encoding_gradient(model, compiled, batches, z, cfg.grad_batches) for z in zs]
            grad = sum(g for g, _ in grads) / len(grads)
            changes = single_changes(net, scfg.space)
            if not changes:
                continue
            c0 = compiled.enc.tensor
            pred = [predicted_change(grad, c0, encode_arch(apply(net, ch), enc)) for ch in changes]
            order = sorted(range(len(changes)), key=lambda j: (pred[j], j))[:n]
            rng = np.random.default_rng(_seed(scfg.seed, 92, i))
            random = [int(j) for j in rng.choice(len(changes), min(n, len(changes)), replace=False)]
            cache: dict[int, float] = {}
            rec = {"index": i, "kind": "base", "rank": 0, "error": base.error, "loss": grads[0][1]}
            if (i, "base", 0) not in done:
                runs.append_jsonl(path, rec)
                done[(i, "base", 0)] = rec
            for kind, picks in (("gradient", order), ("random", random)):
                for r, j in enumerate(picks):
                    if (i, kind, r) in done:
                        continue
                    if j not in cache:
                        cand = to_module(apply(net, changes[j]))
                        cache[j] = search.score_one(
                            model, cand, batches, scfg, i, "sample", device, calibration
                        ).error
                    ch = changes[j]
                    rec = {
                        "index": i,
                        "kind": kind,
                        "rank": r,
                        **dataclasses.asdict(ch),
                        "predicted": pred[j],
                        "base_error": base.error,
                        "error": cache[j],
                        "actual": cache[j] - base.error,
                    }
                    runs.append_jsonl(path, rec)
                    done[(i, kind, r)] = rec
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    return _arch_grad_report(cfg, out, done)


def _arch_grad_report(cfg: ArchGradConfig, out: Path, done: dict) -> dict:
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
    corr = _stats(pred, actual, cfg.search.seed, cfg.resamples) if len(pred) >= 3 else None
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
    _write_json(out / "summary.json", summary)
    return summary


_CHANGE = tuple(f.name for f in dataclasses.fields(Change))
