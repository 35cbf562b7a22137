"""Normal trainings of many architectures for an experiment, resumable, in parallel
processes when asked: each writes ``trained/archNNN/result.json`` when it is done."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from smashc.runtime import progress
from smashc.runtime.context import RunContext, open_context
from smashc.runtime.experiments.common import write_json
from smashc.runtime.final import train_final
from smashc.runtime.scoring import Scored


def true_error(d: Path) -> tuple[float, float]:
    """Validation error and loss after the last epoch of a final training in ``d``."""
    last = d.joinpath("final.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    rec = json.loads(last)
    return 1.0 - rec["val_acc"], rec["val_loss"]


def train_one(ctx: RunContext, s: Scored, d: Path, test_images: int | None = None) -> dict:
    """Trains one architecture normally into ``d``, going on from the checkpoint an
    interrupted training left there; writes and returns its result. ``test_images``: only
    the first that many of the test split are evaluated."""
    started = time.perf_counter()
    if test_images is not None:
        ds = ctx.data
        n = test_images
        ctx = replace(ctx, data=replace(ds, test_x=ds.test_x[:n], test_y=ds.test_y[:n]))
    final = train_final(ctx, s.arch, d, resume=True)
    err, loss = true_error(d)
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
    write_json(d / "result.json", result)
    return result


_WORKER: dict = {}


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    progress.hush()  # one bar, the parent's


def _train_worker(scfg, s: Scored, d: Path, test_images: int | None) -> dict:
    if "ctx" not in _WORKER:
        _WORKER["ctx"] = open_context(scfg)
    return train_one(_WORKER["ctx"], s, d, test_images)


def folder(out: Path, s: Scored) -> Path:
    return out / "trained" / f"arch{s.index:03d}"


def train_all(
    ctx: RunContext, picked: list[Scored], out: Path, jobs: int, test_images: int | None
) -> tuple[dict[int, dict], int]:
    """Trains the picked architectures that have no ``result.json`` yet (``jobs`` at a
    time); returns every picked one's result and how many were trained now."""
    results: dict[int, dict] = {}
    todo = []
    for s in picked:
        path = folder(out, s) / "result.json"
        if path.is_file():
            results[s.index] = json.loads(path.read_text(encoding="utf-8"))
        else:
            todo.append(s)
    bar = progress.bar(
        total=len(picked), initial=len(picked) - len(todo), desc="training", unit="arch"
    )
    try:
        if jobs <= 1 or len(todo) <= 1:
            for s in todo:
                results[s.index] = train_one(ctx, s, folder(out, s), test_images)
                bar.update(1)
            return results, len(todo)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        mp = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(jobs, mp, _worker_init, (threads,))
        try:
            futures = [
                pool.submit(_train_worker, ctx.cfg, s, folder(out, s), test_images) for s in todo
            ]
            for f in as_completed(futures):
                r = f.result()
                results[r["index"]] = r
                bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results, len(todo)
    finally:
        bar.close()
