"""What the benchmark scripts share: their common options (threads, device, ``--json``) and
the JSON line ``bench/run.py`` reads from each."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

from smashc.runtime import precision
from smashc.runtime.alloc import tune_process
from smashc.runtime.config import SmashTraining
from smashc.runtime.hypertrain import smash_optimizer
from smashc.runtime.oneshot import OneShot
from smashc.runtime.sampler import SearchSpace

ROOT = Path(__file__).resolve().parent.parent


def source_at(rev: str, path: str) -> str:
    """The text of ``path`` (relative to the repository root) at git revision ``rev``;
    ``.`` is the working tree."""
    if rev == ".":
        return (ROOT / path).read_text(encoding="utf-8")
    show = ["git", "-C", str(ROOT), "show", f"{rev}:{path}"]
    return subprocess.run(show, check=True, capture_output=True, text=True).stdout


def module_at(rev: str, path: str, name: str, into: Path, edit: Callable[[str], str] = str):
    """The module ``path`` of git revision ``rev`` (``.``: the working tree), imported under
    ``name`` from a copy written into ``into``, its text passed through ``edit`` first."""
    copy = into / f"{name}.py"
    copy.write_text(edit(source_at(rev, path)), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, copy)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def revisions_parser(
    doc: str, *, progress: float, archs: int, device: bool = False
) -> argparse.ArgumentParser:
    """``parser(doc, device=device)`` with the git revisions to compare, ``--progress`` and
    ``--archs``."""
    ap = parser(doc, device=device)
    ap.add_argument("revs", nargs="+", metavar="REV", help="git revision; . is the working tree")
    ap.add_argument("--progress", type=float, default=progress, help="0: early, 1: late")
    ap.add_argument("--archs", type=int, default=archs)
    return ap


def parser(doc: str, *, device: bool = False) -> argparse.ArgumentParser:
    """An argument parser described by the first line of ``doc``, with ``--threads``,
    ``--json`` and, with ``device``, ``--device`` and ``--precision``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    if device:
        ap.add_argument("--device", default="cpu")
        ap.add_argument(
            "--precision",
            choices=precision.CHOICES,
            default="auto",
            help="fp32, or bf16 autocast; auto: as smashc search picks it for the device",
        )
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments, with torch's thread count set from them, and malloc and the
    garbage collector set up as ``smashc search`` and ``smashc train`` set them
    (``runtime.alloc``)."""
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if "precision" in args:
        args.precision = precision.resolve(args.precision, torch.device(args.device))
    tune_process()
    return args


def emit(args: argparse.Namespace, figures) -> None:
    """The figures as one JSON line, when ``--json`` was given."""
    if args.json:
        print(json.dumps(figures))


def smash_trainer(
    space: SearchSpace,
    batch: int = 50,
    device: torch.device | None = None,
    prec: str = "fp32",
) -> tuple[OneShot, Callable]:
    """A OneShot model on ``space`` with ``smashc search``'s Adam and one synthetic batch, and
    ``step(net, compiled)``: the seconds of one SMASH training step of ``net`` (the
    compiled architecture's network, or another build of it) on that batch, its forward
    in precision ``prec`` (resolved: fp32 or bf16)."""
    device = device or torch.device("cpu")
    model = OneShot(space).to(device)
    opt = smash_optimizer(model, SmashTraining())
    x = torch.randn(batch, *space.input, device=device)
    y = torch.randint(0, space.classes, (batch,), device=device)

    def step(net, compiled) -> float:
        start = time.perf_counter()
        net.train()
        with precision.autocast(prec, device):
            loss = F.cross_entropy(net(x, model.generated(compiled)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return model, step
