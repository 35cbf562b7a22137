"""What the experiments share: their folder and config, the SMASH network they score with
(trained into the folder or loaded from a search's checkpoint), and their statistics."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import ConstantInputWarning

from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error
from smashc.runtime import checkpoints, lock, runs
from smashc.runtime.config import SearchConfig, SmashTraining, check_config
from smashc.runtime.context import RunContext, open_context
from smashc.runtime.hypernet import HyperNetConfig
from smashc.runtime.hypertrain import train_smash
from smashc.runtime.oneshot import Compiled, OneShot
from smashc.runtime.presets import PRESETS
from smashc.runtime.rules import EXPERIMENT, Flag
from smashc.runtime.sampler import SearchSpace
from smashc.runtime.seeds import derive
from smashc.runtime.stats import correlation as rank_correlation

__all__ = ["derive"]  # the experiments' seeds come from here with the rest

SCORES = "scores.jsonl"
CHECKPOINT_FLAG = Flag(
    "--checkpoint",
    (EXPERIMENT,),
    "a trained SMASH network (smashc search's OUT/checkpoint.pt) instead of training one",
    "PATH",
)
IGNORED = ("jobs", "knobs", "heldout", "groundtruth", "truth")  # change no kept result


def preset(name: str, **score) -> SearchConfig:
    """The search preset ``name`` as the experiments start from it: no refinement, the
    given scoring settings; the smoke preset trains 24 SMASH steps instead of 8, enough
    that architectures get different scores."""
    base = PRESETS[name]
    if name == "smoke":
        base = replace(base, train=replace(base.train, epochs=6))
    return replace(base, score=replace(base.score, refine=0, **score))


def fail(code: str, message: str, where: str | Path | None = None) -> SmashError:
    span = COMMAND_LINE if where is None else Span(str(where), 1, 1, 1, 1)
    return SmashError([error(code, message, span)])


def start(out: Path, config: dict) -> None:
    """Creates ``out`` and writes ``config.json``; refuses a folder holding an experiment
    with other settings (its results would be reused as if they were this one's) and one
    another run is writing into (``lock.hold``)."""
    out.mkdir(parents=True, exist_ok=True)
    lock.hold(out)
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
            raise fail(
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
        raise fail("E0705", f"not the config.json of a SMASH run ({exc})", side) from None


def load_model(path: Path, ctx: RunContext, epochs: int | None = None) -> OneShot:
    """The SMASH network of a checkpoint written by the HyperNet training; with ``epochs``,
    its training must have finished that many epochs."""
    if not path.is_file():
        raise fail("E0705", "checkpoint not found", path)
    state = checkpoints.load(path, ctx.device, code="E0705")
    if "model" not in state or not isinstance(state.get("epoch"), int):
        raise fail("E0705", "not a SMASH checkpoint (written by smashc search)", path)
    if epochs is not None and state["epoch"] < epochs:
        raise fail(
            "E0705",
            f"HyperNet training stopped at epoch {state.get('epoch')} of {epochs}: "
            "finish it first (smashc search --resume with the run's flags)",
            path,
        )
    model = OneShot(ctx.cfg.space, ctx.cfg.hypernet).to(ctx.device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise fail(
            "E0705",
            "this checkpoint's network does not fit the experiment's search space and "
            f"HyperNet ({first[0].strip()}); keep the run's config.json beside it",
            path,
        ) from None
    return model


def smash_model(ctx: RunContext, out: Path) -> OneShot:
    """A SMASH network trained into ``out/smash``: resumed from its checkpoint, or loaded
    when that training has finished."""
    folder = out / "smash"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(ctx.cfg.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    ckpt = folder / "checkpoint.pt"
    if ckpt.exists():
        fp = checkpoints.fingerprint(ctx.cfg, checkpoints.HYPERNET_SETTINGS)
        state = checkpoints.load(ckpt, "cpu", fp)  # as saved, so its epoch is a count
        if state["epoch"] >= ctx.cfg.train.epochs:
            print(f"HyperNet training had finished: loading {ckpt}")
            return load_model(ckpt, ctx)
    try:
        return train_smash(ctx, folder, True)
    except KeyboardInterrupt:
        raise runs.Interrupted from None


def _recorded_precision(out: Path | None) -> str | None:
    """The precision the experiment in ``out`` resolved ``auto`` to, if it has begun."""
    try:
        recorded = json.loads((out / "config.json").read_text(encoding="utf-8"))["search"]
    except (TypeError, OSError, ValueError, KeyError):
        return None
    return recorded.get("precision") if isinstance(recorded, dict) else None


def setup(cfg, out: Path | None = None) -> tuple:
    """An experiment's resolved config, its run context (a checkpoint's run settings
    adopted) and the checkpoint's SMASH network when one is given; all settings are checked
    first, and a bad checkpoint is refused before anything is written. ``auto`` precision
    goes on as the experiment already in ``out`` resolved it (on any machine)."""
    check_config(cfg)
    scfg = cfg.search
    recorded = _recorded_precision(out) if scfg.precision == "auto" else None
    if recorded in ("fp32", "bf16"):
        scfg = replace(scfg, precision=recorded)
    if cfg.checkpoint is not None:
        if not Path(cfg.checkpoint).is_file():
            raise fail("E0705", "checkpoint not found", cfg.checkpoint)
        scfg = checkpoint_config(Path(cfg.checkpoint), scfg)
    ctx = open_context(scfg)
    cfg = replace(cfg, search=ctx.cfg)
    model = None
    if cfg.checkpoint is not None:
        # finished training is required when the run's config.json is beside it
        side = Path(cfg.checkpoint).parent / "config.json"
        epochs = ctx.cfg.train.epochs if side.is_file() else None
        model = load_model(Path(cfg.checkpoint), ctx, epochs)
    return cfg, ctx, model


def open_experiment(cfg, out: Path) -> tuple:
    """``setup``, the folder ``out`` started with the config, and the SMASH network (the
    checkpoint's, or trained into ``out``)."""
    cfg, ctx, model = setup(cfg, out)
    start(out, cfg.to_json())
    ctx = replace(ctx, out=out)
    if model is None:
        model = smash_model(ctx, out)
    return cfg, ctx, model


def write_json(path: Path, obj) -> None:
    """Atomically: a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def stats(x, y, seed: int, resamples: int) -> dict:
    """Spearman's rho and Kendall's tau with bootstrap intervals (a constant sample, e.g. a
    bootstrap resample of tied scores, counts as no correlation, without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return {
            kind: dataclasses.asdict(rank_correlation(x, y, kind, resamples, seed=seed))
            for kind in ("spearman", "kendall")
        }


def param_counts(model: OneShot, compiled: list[Compiled]) -> dict:
    gen = [sum(s.bottleneck * s.in_channels for s in c.enc.slots) for c in compiled]
    return {
        "hypernet_params": sum(p.numel() for p in model.hypernet.parameters()),
        "shared_params": sum(p.numel() for p in model.shared.parameters()),
        "generated_params_mean": float(np.mean(gen)) if gen else 0.0,
    }
