"""The one resumable training loop: epochs of steps, checkpoints, Ctrl-C, divergence.

The HyperNet training, the final training and the experiments' trainings all run through
``run``. A training supplies only what is its own (a ``Training``): its batches, its step,
what it does at an epoch's end and what its checkpoint holds beyond the position. The loop
does the rest the same way for all of them:

* a checkpoint after every epoch, and where Ctrl-C or SIGTERM stops it (``runs.StopFlag``,
  checked between steps, so a checkpoint never holds a half-applied update), written by
  rank 0 alone when ``torchrun`` started several processes;
* resuming from that checkpoint at the exact step, so a resumed training ends as an
  uninterrupted one would;
* stopping with E0708 when the loss stops being a number (``runs.diverged``);
* a progress bar per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F  # noqa: N812

from smashc.runtime import checkpoints, distributed, precision, progress, runs


@dataclass(frozen=True)
class Plan:
    """The shape of a training and the words for it."""

    epochs: int
    steps: int  # per epoch
    label: str  # the progress bar's, e.g. "smash" (shown as "smash 2/3")
    unit: str  # what a step is called: "step", "batch"
    what: str  # the training, in messages: "the HyperNet training"
    lr_setting: str  # how to lower its learning rate, for E0708: "train.lr, now 0.001"
    fingerprint: str = ""  # of the settings its checkpoint depends on (checkpoints.fingerprint)


class Training(Protocol):
    def state(self) -> dict[str, Any]:
        """What the checkpoint holds besides the position (model, optimiser, ...)."""

    def restore(self, state: dict[str, Any]) -> None:
        """Takes back what ``state`` (a checkpoint's) holds; may refuse it (SmashError), and
        may move its ``step`` (a checkpoint of a step of another size)."""

    def start(self, epoch: int, step: int, resumed: bool) -> None:
        """Called once before the first step, with the position the loop starts at (after
        ``restore`` when ``resumed``); ``epoch`` is ``Plan.epochs`` when it had finished."""

    def batches(self, epoch: int, first: int) -> Iterable:
        """Epoch ``epoch``'s batches from the ``first``-th on."""

    def step(self, epoch: int, step: int, batch) -> tuple[float, dict[str, str]]:
        """One optimiser step: its loss, and what the bar shows next to it."""

    def end_epoch(self, epoch: int) -> None:
        """After the epoch's last step, before its checkpoint."""


def train_step(net, inputs: tuple, y: torch.Tensor, opt, sched, prec: str, device):
    """One optimiser and schedule step on the cross-entropy of ``net(*inputs)`` (logits, run
    in precision ``prec``) against ``y``; the batch's loss and accuracy, as floats."""
    with precision.autocast(prec, device):
        logits = net(*inputs)
        loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item(), (logits.argmax(1) == y).float().mean().item()


def cosine(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate annealed from its value to 0 over ``total`` steps (a half cosine)."""
    total = max(1, total)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )


def run(
    plan: Plan,
    training: Training,
    checkpoint: Path,
    resume: bool,
    device,
    group: distributed.Group = distributed.SINGLE,
) -> None:
    """Runs ``training`` to the end of ``plan``, from ``checkpoint`` when ``resume`` and one
    exists. Raises ``runs.Interrupted`` after saving on Ctrl-C / SIGTERM and a SmashError
    (E0708) when the loss diverges. In a process group every rank runs it: rank 0 reads
    the checkpoint and hands it to the others, rank 0 alone writes it, and a stop that
    any rank was asked for stops them all at the same step."""
    epoch0 = step0 = 0
    resumed = group.broadcast(resume and group.main and checkpoint.exists())
    if resumed:  # only a checkpoint of this training, as it was saved (checkpoints.load)
        where = device if group.world == 1 else "cpu"  # restore moves it to the device
        mine = checkpoints.load(checkpoint, where, plan.fingerprint) if group.main else None
        state = group.broadcast(mine)
        epoch0, step0 = checkpoints.position(state, checkpoint, plan.epochs, plan.steps)
        checkpoints.restore(training, state, checkpoint)
    training.start(epoch0, step0, resumed)

    def save(epoch: int, step: int) -> None:
        if group.main:
            state = {**training.state(), "epoch": epoch, "step": step}
            checkpoints.save(state, checkpoint, plan.fingerprint)

    stop = runs.StopFlag().install()
    try:
        for epoch in range(epoch0, plan.epochs):
            first = step0 if epoch == epoch0 else 0
            bar = progress.bar(
                total=plan.steps,
                initial=first,
                desc=f"{plan.label} {epoch + 1}/{plan.epochs}",
                unit=plan.unit,
            )
            for step, batch in enumerate(training.batches(epoch, first), start=first):
                if step >= plan.steps:
                    break
                if group.any(stop.requested):
                    bar.close()
                    save(epoch, step)
                    raise runs.Interrupted
                loss, shown = training.step(epoch, step, batch)
                if not math.isfinite(loss):
                    bar.close()
                    where = f"{plan.unit} {step}"
                    raise runs.diverged(plan.what, loss, epoch, where, plan.lr_setting)
                bar.set_postfix(**shown)
                bar.update(1)
            bar.close()
            training.end_epoch(epoch)
            save(epoch + 1, 0)
    except KeyboardInterrupt:
        raise runs.Interrupted from None
    finally:
        stop.uninstall()
