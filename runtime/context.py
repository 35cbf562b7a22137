"""A run's context: its checked settings, device, precision, data, folder and seeds.

Every phase of a run (HyperNet training, scoring, final training, the experiments) takes
one ``RunContext`` instead of loose arguments. ``open_context`` builds it in an order that
keeps user errors ahead of side effects: the settings are checked first (E0704, before any
device is asked for or data read), then the device and precision are resolved, then the
data is loaded and split; ``open_run`` also checks a folder to resume and writes the
resolved ``config.json``. Started by ``torchrun``, ``open_context`` joins the run's
process group once the device is known (``runtime.distributed``), and only rank 0 checks
and writes the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.runtime import distributed, fits, lock, precision, runs
from smashc.runtime.config import SearchConfig, check_config
from smashc.runtime.data import Batches, Dataset, Subset, load, split
from smashc.runtime.seeds import Stream, derive


@dataclass(frozen=True)
class RunContext:
    """What every phase of a run computes with. ``cfg`` is resolved: its precision is
    concrete and its search space takes the dataset's input shape and classes."""

    cfg: SearchConfig
    device: torch.device
    data: Dataset
    train: Subset
    val: Subset
    out: Path | None = None  # the run's folder, once open_run has made it
    group: distributed.Group = distributed.SINGLE  # this process's place in the run

    @property
    def precision(self) -> str:
        return self.cfg.precision

    def seed(self, stream: Stream, *parts: int) -> int:
        """The seed of ``stream`` (and ``parts``) in this run (``seeds.derive``)."""
        return derive(self.cfg.seed, stream, *parts)

    def batches(self, part: Subset, batch_size: int, stream: Stream | None = None, **kw) -> Batches:
        """``part`` in batches on this run's device, shuffled by ``stream`` (else in order)."""
        if stream is None:
            return Batches(self.data, part, batch_size, 0, shuffle=False, device=self.device)
        return Batches(self.data, part, batch_size, self.seed(stream), device=self.device, **kw)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SmashError(
            [error("E0704", "--device cuda: no CUDA device is available", COMMAND_LINE)]
        )
    return torch.device(name)


def run_precision(name: str, device: torch.device, resumed: Path | None = None) -> str:
    """``name`` resolved for ``device`` (``runtime.precision``); ``auto`` in a resumed run
    takes the precision its ``config.json`` recorded, so it goes on computing as it began.
    (One that cannot be read is left to ``runs.check_resumable`` to report.)"""
    if name == "auto" and resumed is not None:
        try:
            stored = json.loads((resumed / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if isinstance(stored, dict) and stored.get("precision") in ("fp32", "bf16"):
            return stored["precision"]
    return precision.resolve(name, device)


def open_context(
    cfg: SearchConfig, resumed: Path | None = None, searches: bool = True
) -> RunContext:
    """The context of a run of ``cfg``: settings checked, device and precision resolved
    (``auto`` precision as the run in ``resumed`` recorded it), data loaded and split, the
    settings checked against the data (``fits.check_run``; the search space's too when the
    run ``searches``); the process group joined when ``torchrun`` started this process."""
    check_config(cfg)
    group, device = distributed.join(resolve_device(cfg.device))
    if cfg.final.batch_size % group.world:
        msg = (
            f"final.batch_size {cfg.final.batch_size} must be a multiple of the "
            f"{group.world} processes: each trains on its 1/{group.world} of every batch"
        )
        raise SmashError([error("E0753", msg, COMMAND_LINE)])
    # rank 0's, which read the resumed run's config.json (every rank computes alike)
    cfg = replace(cfg, precision=group.broadcast(run_precision(cfg.precision, device, resumed)))
    ds = load(cfg.dataset, cfg.data_dir)
    cfg = replace(cfg, space=replace(cfg.space, input=ds.shape, classes=ds.classes))
    train, val = split(ds, cfg.val_size, cfg.seed)
    fits.check_run(cfg, ds, train, searches)
    return RunContext(cfg, device, ds, train, val, group=group)


def open_run(cfg: SearchConfig, out: Path, resume: bool, searches: bool = True) -> RunContext:
    """``open_context`` plus the run's folder ``out``, created, with the resolved config in
    ``config.json``, held by this run alone (``lock.hold``; by rank 0 of a process group).
    Resuming, only a folder whose run had these settings (``runs.check_resumable``)."""
    ctx = open_context(cfg, out if resume else None, searches)
    if not ctx.group.main:
        return replace(ctx, out=out)
    if resume:
        runs.check_resumable(out, ctx.cfg.to_json())
    out.mkdir(parents=True, exist_ok=True)
    lock.hold(out)
    (out / "config.json").write_text(
        json.dumps(ctx.cfg.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    return replace(ctx, out=out)
