"""The final training: one architecture trained normally (free weights), evaluated, exported.

It writes into its folder ``final.jsonl`` (a record per epoch), ``final.json`` (test
metrics), ``curves.png``, ``architecture.smash``, ``model/`` (the importable package) and
``model.onnx`` (the same network in ONNX, where the ``onnx`` package is installed), and
resumes from ``checkpoint.pt`` through ``loop.run``.

In a process group it is data-parallel (``DistributedDataParallel``): every rank draws
the same batches of ``final.batch_size`` and trains on its slice of each (rows ``rank``,
``rank + world``, ...), so the step averages the gradients of the same images one process
would see. Each rank's BatchNorm normalises its own slice; DDP hands rank 0's running
statistics to the others at each forward. Rank 0 writes everything.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

from smashc.compiler import (
    Network,
    export,
    export_onnx,
    fast_module,
    for_training,
    free_module,
    to_text,
    totals,
)
from smashc.diagnostics import SmashError, Span, error
from smashc.runtime import checkpoints, loop, plots, precision, runs
from smashc.runtime.config import FinalTraining
from smashc.runtime.context import RunContext
from smashc.runtime.data import Subset
from smashc.runtime.hypertrain import fused
from smashc.runtime.seeds import Stream

# what a final training writes into its folder; a fresh one removes these first
FILES = (
    "checkpoint.pt",
    "final.json",
    "final.jsonl",
    "curves.png",
    "architecture.smash",
    "model/__init__.py",
    "model/module.py",
    "model/weights.pt",
    "model/ir.txt",
    "model.onnx",
)


def final_optimizer(model: torch.nn.Module, fc: FinalTraining) -> torch.optim.SGD:
    """SGD with the final training's momentum, Nesterov and weight decay; fused (1.5 ms per
    step as a loop, 0.5 fused, for a 1.8 M-parameter network)."""
    return torch.optim.SGD(
        model.parameters(),
        lr=fc.lr,
        momentum=fc.momentum,
        nesterov=fc.nesterov,
        weight_decay=fc.weight_decay,
        fused=fused(next(model.parameters()).device),
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches) -> tuple[float, float]:
    """Loss and accuracy in float32, as the exported model computes them by default
    (whatever precision it was trained in)."""
    model.eval()
    loss = correct = total = 0.0
    for x, y in batches.epoch(0):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return loss / max(total, 1), correct / max(total, 1)


def misfit(net: Network, ctx: RunContext) -> str | None:
    """Why ``net`` cannot be trained on the run's dataset (its input or classes), or None."""
    ds = ctx.data
    if net.input == ds.shape and net.classes == ds.classes:
        return None
    shape = "x".join(map(str, net.input))
    return (
        f"the network takes {shape} inputs and {net.classes} classes, but the dataset "
        f"'{ds.name}' has {'x'.join(map(str, ds.shape))} images and {ds.classes} classes; "
        "change its 'input' and 'classes' lines"
    )


def _slices(batches, group):
    """``batches`` cut to this rank's rows of each."""
    for x, y in batches:
        yield x[group.rank :: group.world], y[group.rank :: group.world]


class _FinalTraining:
    """The final training's part of ``loop.run``: SGD steps on free weights, and after each
    epoch the validation loss and accuracy, logged to ``final.jsonl`` (rank 0's share of
    the training loss and accuracy, in a process group)."""

    def __init__(self, ctx: RunContext, model, net, out: Path, source: str) -> None:
        fc = ctx.cfg.final
        self.ctx, self.model, self.net, self.out, self.source = ctx, model, net, out, source
        self.evaluated = net  # the network itself, not a DDP wrapper around it
        if ctx.group.world > 1:
            ids = [ctx.device] if ctx.device.type == "cuda" else None
            # conv weights in channels_last (fast_module's layout) get gradients in that
            # layout, which DDP copies into its contiguous buckets; it warns of the copy
            warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
            self.net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        train = ctx.train
        if fc.train_images is not None and fc.train_images < len(train):
            train = Subset(train.x[: fc.train_images], train.y[: fc.train_images])
        self.data = ctx.batches(
            train, fc.batch_size, Stream.FINAL_BATCHES, augment=True, drop_last=True
        )
        self.val = ctx.batches(ctx.val, 500)
        self.opt = final_optimizer(model, fc)
        self.sched = loop.cosine(self.opt, fc.epochs * len(self.data))
        self.history: list[dict] = []  # finished epochs' records
        self.sums = [0.0, 0.0, 0]  # the current epoch's loss, accuracy and batches

    def plan(self) -> loop.Plan:
        fc = self.ctx.cfg.final
        lr = f"--lr, final.lr, now {fc.lr:g}"
        fp = checkpoints.fingerprint(self.ctx.cfg, checkpoints.FINAL_SETTINGS)
        return loop.Plan(fc.epochs, len(self.data), "final", "batch", "the final training", lr, fp)

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "sums": self.sums,
            "history": self.history,
            "source": self.source,
        }

    def restore(self, state: dict) -> None:
        if state["source"] != self.source:
            msg = f"{self.out} holds the training of another architecture: leave out --resume"
            where = Span(str(self.out / "checkpoint.pt"), 1, 1, 1, 1)
            raise SmashError([error("E0707", msg, where)])
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.sums, self.history = state["sums"], state["history"]

    def start(self, epoch: int, step: int, resumed: bool) -> None:
        if not self.ctx.group.main:
            return
        if resumed and epoch >= self.ctx.cfg.final.epochs:
            print("the final training had finished: evaluating and exporting it")
        elif resumed:
            print(f"resuming the final training at epoch {epoch + 1}, batch {step}")
        # the log holds exactly the finished epochs (a killed run may have logged one more)
        (self.out / "final.jsonl").write_text(
            "".join(json.dumps(rec) + "\n" for rec in self.history), encoding="utf-8"
        )
        (self.out / "architecture.smash").write_text(self.source, encoding="utf-8")

    def batches(self, epoch: int, first: int):
        if first == 0:
            self.sums = [0.0, 0.0, 0]
        self.net.train()
        return _slices(self.data.epoch(epoch, start=first), self.ctx.group)

    def step(self, epoch: int, step: int, batch) -> tuple[float, dict[str, str]]:
        x, y = batch
        value, acc = loop.train_step(
            self.net, (x,), y, self.opt, self.sched, self.ctx.precision, self.ctx.device
        )
        s = self.sums = [self.sums[0] + value, self.sums[1] + acc, self.sums[2] + 1]
        return value, {"loss": f"{s[0] / s[2]:.3f}", "acc": f"{s[1] / s[2]:.3f}"}

    def end_epoch(self, epoch: int) -> None:
        val_loss, val_acc = evaluate(self.evaluated, self.val)
        n = max(self.sums[2], 1)
        rec = {
            "epoch": epoch + 1,
            "train_loss": self.sums[0] / n,
            "train_acc": self.sums[1] / n,
            "val_loss": val_loss,
            "val_acc": val_acc,
        }
        self.history.append(rec)
        if self.ctx.group.main:
            runs.append_jsonl(self.out / "final.jsonl", rec)


def train_final(
    ctx: RunContext, net: Network, out: Path, resume: bool = False, text: str | None = None
) -> dict:
    """Trains ``net`` normally into ``out``; writes metrics, curves and the exported model.

    ``text`` is the architecture as its user wrote it (kept in ``architecture.smash``;
    by default the canonical text of ``net``). A checkpoint is written after every epoch
    and where Ctrl-C stops the training (``runs.Interrupted``); with ``resume`` the training
    goes on from it and ends as an uninterrupted one would. Without ``resume`` an earlier
    training in ``out`` is discarded."""
    source = to_text(net) if text is None else text
    problem = misfit(net, ctx)
    if problem is not None:
        raise SmashError([error("E0704", problem, net.span)])
    main = ctx.group.main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if main and not resume:
        for stale in FILES:
            (out / stale).unlink(missing_ok=True)
    torch.manual_seed(ctx.seed(Stream.FINAL_INIT))
    ir = for_training(net)
    model = free_module(ir).to(ctx.device)
    fast = fast_module(model)  # trains and evaluates model's own parameters
    training = _FinalTraining(ctx, model, fast, out, source)
    loop.run(training.plan(), training, out / "checkpoint.pt", resume, ctx.device, ctx.group)
    test_loss, test_acc = evaluate(fast, ctx.batches(ctx.data.test, 500))
    params, macs = totals(ir)
    summary = {
        "test_acc": test_acc,
        "test_error": 1 - test_acc,
        "test_loss": test_loss,
        "params": params,
        "macs": macs,
        "epochs": ctx.cfg.final.epochs,
        "trained_in": precision.resolve(ctx.precision, ctx.device),  # evaluated in fp32
    }
    if not main:
        return summary
    (out / "final.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plots.curves(training.history, out / "curves.png")
    export(model, ir, out / "model")
    export_onnx(model.cpu(), ir, out / "model.onnx")
    return summary
